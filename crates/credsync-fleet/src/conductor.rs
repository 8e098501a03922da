//! The conductor's commands: `set`, `import`, `reconcile`, `status`, and
//! `keygen`. A password is judged by the local policy and hashed once here
//! (the fleet's crypt method, and Argon2id); only the signed hashes leave.
#![forbid(unsafe_code)]

use crate::config::{FleetConfig, Role};
use crate::entry::{self, Entry};
use crate::report::{Report, Standing};
use crate::transport::{Etcd, Kv, Put, Transport};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use credsync_core::account::UserName;
use credsync_core::clock::{Now, utc_text};
use credsync_core::config::Config;
use credsync_core::error::Error;
use credsync_core::judge::{Candidate, Judge};
use credsync_core::requests::Site;
use credsync_core::secret::Password;
use credsync_core::store::app_hash::AppHasher;
use credsync_core::system::Paths;
use credsync_core::system::crypt::{self, Algorithm, HashMethod};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use zeroize::Zeroizing;

/// Everything a conductor command needs.
pub struct Conductor {
    pub paths: Paths,
    pub config: Config,
    pub fleet: FleetConfig,
    pub store_owner: u32,
    /// Who is setting passwords: the login user behind `sudo`, else the caller.
    pub by: String,
}

/// One user's new desired state, before it is versioned and signed.
pub struct Desired {
    pub user: UserName,
    pub password: Password,
}

/// Versions a node's report may claim; above it, the report is ignored.
const MAX_REPORTED: u64 = 1 << 62;

/// The version after `version`, within what every node's store holds.
fn next(version: u64) -> Result<u64, Error> {
    version
        .checked_add(1)
        .filter(|&v| i64::try_from(v).is_ok())
        .ok_or_else(|| Error::Failure(format!("version {version} is the last there can be")))
}

fn failure(e: impl std::fmt::Display) -> Error {
    Error::Failure(e.to_string())
}

impl Conductor {
    pub fn require_conductor(fleet: &FleetConfig) -> Result<(), Error> {
        if fleet.role == Role::Conductor {
            Ok(())
        } else {
            Err(Error::Denied(
                "this host is a fleet node, not its conductor (role in /etc/credsync/fleet.toml)"
                    .into(),
            ))
        }
    }

    fn signing_key(&self) -> Result<SigningKey, Error> {
        let path = self
            .fleet
            .signing_key
            .as_deref()
            .ok_or_else(|| Error::Denied("no signing_key in the fleet configuration".into()))?;
        read_signing_key(path)
    }

    /// The keys whose entries the conductor reads as its own: the configured
    /// public keys and its signing key's.
    fn trusted(&self, key: &SigningKey) -> Vec<VerifyingKey> {
        let mut trusted = self.fleet.public_keys.clone();
        trusted.push(key.verifying_key());
        trusted
    }

    fn method(&self) -> Result<HashMethod, Error> {
        match &self.fleet.crypt_method {
            Some(name) => Ok(HashMethod {
                algorithm: Algorithm::from_name(name).ok_or_else(|| {
                    Error::Invalid(format!(
                        "crypt_method '{name}' is not a method credsync knows"
                    ))
                })?,
                rounds: None,
            }),
            None => Site {
                paths: &self.paths,
                config: &self.config,
                store_owner: self.store_owner,
            }
            .hash_method(),
        }
    }

    /// Judges every password by the local policy, refusing the batch with
    /// every rule each one breaks.
    fn judge(&self, batch: &[Desired]) -> Result<(), Error> {
        let judge = Judge::new(&self.paths, &self.config, self.store_owner)?;
        let mut refusals = Vec::new();
        for desired in batch {
            let problems = judge.quality_problems(&Candidate {
                user: &desired.user,
                new: &desired.password,
                old: None,
            })?;
            if !problems.is_empty() {
                refusals.push(format!("'{}': {}", desired.user, problems.join(", ")));
            }
        }
        if refusals.is_empty() {
            Ok(())
        } else {
            Err(Error::Policy(format!(
                "the password policy refuses {}; nothing was published",
                refusals.join("; ")
            )))
        }
    }

    /// `fleet set` and `fleet import`: judge, hash once, sign, and write
    /// every entry in one etcd transaction that compares each key's
    /// `mod_revision` with the one read. Returns each user's new version.
    pub async fn publish(
        &self,
        batch: Vec<Desired>,
        must_change: bool,
    ) -> Result<Vec<(String, u64)>, Error> {
        self.judge(&batch)?;
        let key = self.signing_key()?;
        let method = self.method()?;
        let mut hasher = AppHasher::new(&self.config.argon2.cost).map_err(failure)?;
        let mut etcd = Etcd::connect(&self.fleet).await.map_err(failure)?;
        let now = Now::read().unix_secs;
        let aging = self.config.policy.aging();
        let reported = self.reported_versions(&mut etcd).await?;
        let mut writes = Vec::new();
        let mut versions = Vec::new();
        for desired in batch {
            let key_name = self.fleet.user_key(desired.user.as_str());
            let held = reported.get(desired.user.as_str()).copied().unwrap_or(0);
            let (version, expected) = self
                .current(&mut etcd, &key, &key_name, &desired.user, held)
                .await?;
            let entry = Entry {
                fleet: self.fleet.fleet.clone(),
                user: desired.user.clone(),
                version: next(version)?,
                crypt: crypt::hash_password(&desired.password, &method).map_err(failure)?,
                argon2id: hasher.hash(&desired.password).map_err(failure)?,
                must_change,
                aging,
                set_at: now,
                set_by: self.by.clone(),
            };
            versions.push((desired.user.to_string(), entry.version));
            writes.push((key_name, entry.sign(&key), expected));
        }
        self.write(&mut etcd, &key, writes).await?;
        Ok(versions)
    }

    /// The version the next entry for `user` takes, and the key's
    /// `mod_revision` to compare (0 when absent): one more than both the
    /// version at the key and every version a node reports applied (a
    /// replayed older entry at the key included). An
    /// entry at the key that no fleet key signed is replaced (its version
    /// means nothing), and so is a key deleted by hand: the nodes' reports
    /// keep the next version above anything they hold, which they would
    /// otherwise refuse as a replay.
    async fn current(
        &self,
        etcd: &mut Etcd,
        key: &SigningKey,
        key_name: &str,
        user: &UserName,
        reported: u64,
    ) -> Result<(u64, i64), Error> {
        let Some(kv) = etcd.read(key_name).await.map_err(failure)? else {
            return Ok((reported, 0));
        };
        let at_key = match Entry::open(
            &kv.value,
            &self.trusted(key),
            &self.fleet.fleet,
            user.as_str(),
        ) {
            Ok(entry) => entry.version,
            Err(refusal) => {
                eprintln!("credsync-fleet: replacing the entry at {key_name}: {refusal}");
                0
            }
        };
        Ok((at_key.max(reported), kv.mod_revision))
    }

    /// The highest version of each user that any node reports holding, from
    /// one read of the nodes' reports.
    async fn reported_versions(&self, etcd: &mut Etcd) -> Result<HashMap<String, u64>, Error> {
        let nodes = etcd
            .read_prefix(&self.fleet.nodes_prefix())
            .await
            .map_err(failure)?;
        let mut highest: HashMap<String, u64> = HashMap::new();
        for report in nodes
            .kvs
            .iter()
            .filter(|kv| kv.key.ends_with("/report") || kv.key.ends_with("/seen"))
            .filter_map(|kv| serde_json::from_slice::<Report>(&kv.value).ok())
        {
            for (user, held) in &report.users {
                // No conductor numbers that high: a node reporting it is
                // broken or compromised, and must not push the next version
                // past what every node can store.
                if held.applied > MAX_REPORTED {
                    eprintln!(
                        "credsync-fleet: ignoring node {}'s report of {user} at version {}",
                        report.node, held.applied
                    );
                    continue;
                }
                let top = highest.entry(user.clone()).or_default();
                *top = (*top).max(held.applied);
            }
        }
        Ok(highest)
    }

    async fn write(
        &self,
        etcd: &mut Etcd,
        key: &SigningKey,
        writes: Vec<(String, String, i64)>,
    ) -> Result<i64, Error> {
        match etcd.put_all_if(writes).await.map_err(failure)? {
            Put::Done(revision) => Ok(revision),
            Put::Conflict(now) => Err(self.conflict(key, now)),
        }
    }

    /// The documented race error: who changed the key first, and when.
    fn conflict(&self, key: &SigningKey, now: Option<Kv>) -> Error {
        let detail = now
            .and_then(|kv| {
                let user = kv.key.rsplit('/').next()?.to_owned();
                Entry::open(&kv.value, &self.trusted(key), &self.fleet.fleet, &user).ok()
            })
            .map(|e| {
                format!(
                    "changed by {} at {} (version {})",
                    e.set_by,
                    utc_text(e.set_at),
                    e.version
                )
            })
            .unwrap_or_else(|| "changed by someone else meanwhile".into());
        Error::Busy(format!("{detail}; nothing was published: retry"))
    }

    /// `fleet reconcile` on the conductor: every named user's entry (or
    /// every entry) signed again under the next version, with the same
    /// hashes. Nodes that hold them record the version; nodes whose user
    /// drifted (with `fleet_wins`) apply it again.
    pub async fn reconcile(&self, only: &[UserName]) -> Result<Vec<(String, u64)>, Error> {
        let key = self.signing_key()?;
        let mut etcd = Etcd::connect(&self.fleet).await.map_err(failure)?;
        let snapshot = etcd
            .read_prefix(&self.fleet.users_prefix())
            .await
            .map_err(failure)?;
        let reported = self.reported_versions(&mut etcd).await?;
        let prefix = self.fleet.users_prefix();
        let now = Now::read().unix_secs;
        let mut writes = Vec::new();
        let mut versions = Vec::new();
        for kv in &snapshot.kvs {
            let Some(user) = kv.key.strip_prefix(&prefix) else {
                continue;
            };
            if !only.is_empty() && !only.iter().any(|u| u.as_str() == user) {
                continue;
            }
            let mut entry = Entry::open(&kv.value, &self.trusted(&key), &self.fleet.fleet, user)
                .map_err(|r| {
                    Error::Failure(format!("{}: {r}; set the password again instead", kv.key))
                })?;
            let held = reported.get(user).copied().unwrap_or(0);
            entry.version = next(entry.version.max(held))?;
            entry.set_at = now;
            entry.set_by = self.by.clone();
            versions.push((user.to_owned(), entry.version));
            writes.push((kv.key.clone(), entry.sign(&key), kv.mod_revision));
        }
        if let Some(missing) = only
            .iter()
            .find(|u| !versions.iter().any(|(name, _)| name == u.as_str()))
        {
            return Err(Error::Invalid(format!(
                "user '{missing}' has no fleet entry; set it with 'credsync fleet set {missing}'"
            )));
        }
        if !writes.is_empty() {
            self.write(&mut etcd, &key, writes).await?;
        }
        Ok(versions)
    }

    /// `fleet status`: each user's desired version and where every node stands.
    pub async fn status(&self) -> Result<Vec<UserStatus>, Error> {
        let key = self.signing_key()?;
        let mut etcd = Etcd::connect(&self.fleet).await.map_err(failure)?;
        let users = etcd
            .read_prefix(&self.fleet.users_prefix())
            .await
            .map_err(failure)?;
        let nodes = etcd
            .read_prefix(&self.fleet.nodes_prefix())
            .await
            .map_err(failure)?;
        let mut reports: BTreeMap<String, Option<Report>> = BTreeMap::new();
        let mut seen: BTreeMap<String, i64> = BTreeMap::new();
        let prefix = self.fleet.nodes_prefix();
        for kv in &nodes.kvs {
            let Some((node, what)) = kv.key.strip_prefix(&prefix).and_then(|k| k.split_once('/'))
            else {
                continue;
            };
            match what {
                "report" => {
                    let report = serde_json::from_slice::<Report>(&kv.value).ok();
                    reports.insert(node.to_owned(), report);
                }
                "seen" => {
                    reports.entry(node.to_owned()).or_insert(None);
                    if let Ok(last) = serde_json::from_slice::<Report>(&kv.value) {
                        seen.insert(node.to_owned(), last.at);
                    }
                }
                _ => {}
            }
        }
        let now = Now::read().unix_secs;
        let silent_after = i64::try_from(self.fleet.silent_after.as_secs()).unwrap_or(i64::MAX);
        let users_prefix = self.fleet.users_prefix();
        let mut out = Vec::new();
        for kv in &users.kvs {
            let Some(user) = kv.key.strip_prefix(&users_prefix) else {
                continue;
            };
            let desired = Entry::open(&kv.value, &self.trusted(&key), &self.fleet.fleet, user);
            let (version, set_by, set_at, problem) = match &desired {
                Ok(e) => (e.version, e.set_by.clone(), e.set_at, None),
                Err(r) => (0, String::new(), 0, Some(r.to_string())),
            };
            let nodes = reports
                .iter()
                .map(|(node, report)| {
                    // A live report that stopped being renewed is as silent as none.
                    let stale = report.as_ref().is_some_and(|r| now - r.at > silent_after);
                    let report = report.as_ref().filter(|_| !stale);
                    let standing = Standing::of(version, report, seen.get(node).copied(), user);
                    NodeStatus::new(
                        node,
                        &standing,
                        report.and_then(|r| r.users.get(user)).map(|u| u.applied),
                    )
                })
                .collect();
            out.push(UserStatus {
                user: user.to_owned(),
                version,
                set_by,
                set_at,
                problem,
                nodes,
            });
        }
        Ok(out)
    }
}

#[derive(Debug, Serialize)]
pub struct UserStatus {
    pub user: String,
    /// The desired version (0 when the entry at the key is not one of the fleet's).
    pub version: u64,
    pub set_by: String,
    pub set_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub nodes: Vec<NodeStatus>,
}

#[derive(Debug, Serialize)]
pub struct NodeStatus {
    pub node: String,
    /// `in step`, `behind`, `failed`, `drift` or `silent`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl NodeStatus {
    fn new(node: &str, standing: &Standing, applied: Option<u64>) -> NodeStatus {
        let detail = match standing {
            Standing::Failed { error } => Some(error.clone()),
            Standing::Drift { detail } => Some(detail.clone()),
            Standing::Silent { since: Some(at) } => Some(format!("since {}", utc_text(*at))),
            Standing::Silent { since: None } => Some("never reported".into()),
            Standing::InStep | Standing::Behind { .. } => None,
        };
        NodeStatus {
            node: node.to_owned(),
            state: standing.word(),
            applied,
            detail,
        }
    }
}

/// A signing key file: the 32-byte secret in base64, owned by root, mode 0600.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, Error> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::Failure(format!(
            "cannot read the signing key {}: {e}",
            path.display()
        ))
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::Denied(format!(
            "the signing key {} is readable by others; chmod 600 it",
            path.display()
        )));
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        Error::Failure(format!(
            "cannot read the signing key {}: {e}",
            path.display()
        ))
    })?);
    let bytes = Zeroizing::new(BASE64.decode(text.trim()).unwrap_or_default());
    let secret: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| Error::Invalid(format!("{} is not an Ed25519 signing key", path.display())))?;
    let key = SigningKey::from_bytes(&secret);
    let mut secret = secret;
    zeroize::Zeroize::zeroize(&mut secret);
    Ok(key)
}

/// `fleet keygen --out FILE`: a new signing key, written 0600 to a new file;
/// returns the public key for the nodes' `public_keys`.
pub fn keygen(out: &Path) -> Result<String, Error> {
    let key = SigningKey::generate(&mut rand_core::OsRng);
    let secret = Zeroizing::new(BASE64.encode(key.to_bytes()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| Error::Failure(format!("cannot create {}: {e}", out.display())))?;
    writeln!(file, "{}", secret.as_str())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::Failure(format!("cannot write {}: {e}", out.display())))?;
    Ok(entry::encode_public(&key.verifying_key()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_stop_where_a_store_would() {
        assert_eq!(next(0).unwrap(), 1);
        assert_eq!(next(41).unwrap(), 42);
        assert!(next(i64::MAX as u64).is_err());
        assert!(next(u64::MAX).is_err());
        assert!(
            next(MAX_REPORTED).is_ok(),
            "the highest report believed still has a next"
        );
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(utc_text(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_text(1_796_256_000), "2026-12-03T00:00:00Z");
        assert_eq!(utc_text(951_782_400 + 3661), "2000-02-29T01:01:01Z");
    }

    #[test]
    fn a_generated_key_reads_back_and_must_be_private() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("signing.key");
        let public = keygen(&path).unwrap();
        let key = read_signing_key(&path).unwrap();
        assert_eq!(entry::encode_public(&key.verifying_key()), public);
        assert!(
            keygen(&path).is_err(),
            "an existing key is never overwritten"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(read_signing_key(&path), Err(Error::Denied(_))));
    }
}
