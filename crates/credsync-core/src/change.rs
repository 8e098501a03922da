//! One change, two stores, no split. Every password change — `passwd`,
//! `recover`, `import`, a fleet entry — goes through `apply` (or, with the
//! hashes made elsewhere, `apply_hashed`), which writes in one fixed order:
//!
//! 1. hash every new password (crypt for Linux, Argon2id for the application),
//!    in parallel (`hashing_threads`: the cores, bounded by the batch's
//!    Argon2 memory ceiling) and before any lock is taken;
//! 2. take the locks (`Stores::lock`), re-check every user;
//! 3. record the intents durably in the database;
//! 4. replace `/etc/shadow` once, for the whole batch;
//! 5. in one transaction, turn the intents into records (history kept, session
//!    epoch bumped) and clear them.
//!
//! A failure in 4 abandons the intents, so both stores stay as they were; a
//! crash anywhere is finished by the next command (see `stores`).
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::audit::{self, Event};
use crate::config::{Argon2Config, Config};
use crate::error::Error;
use crate::fault;
use crate::secret::Password;
use crate::store::app_hash::AppHasher;
use crate::store::{FleetStamp, Intent, Provenance};
use crate::stores::Stores;
use crate::system::crypt::{self, HashMethod, LinuxHash};
use crate::system::shadow::{self, Aging, LastChange};
use crate::system::{Paths, opasswd, passwd, signals};
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

/// A user's new password.
pub struct NewPassword {
    pub user: UserName,
    pub password: Password,
}

pub struct Request {
    pub changes: Vec<NewPassword>,
    /// Force a change at next login (shadow field 3 = 0, record flag set).
    pub must_change: bool,
    pub provenance: Provenance,
}

struct Hashed {
    linux: LinuxHash,
    app: String,
}

pub fn apply(
    paths: &Paths,
    config: &Config,
    method: &HashMethod,
    store_owner: u32,
    request: Request,
) -> Result<(), Error> {
    // Fail before the slow hashing when a user is unknown; re-checked under the lock.
    check_users_exist(
        &shadow::read_unlocked(paths)?,
        request.changes.iter().map(|c| &c.user),
    )?;
    let hashed = hash_all(&request.changes, method, &config.argon2)?;
    let changes = request
        .changes
        .into_iter()
        .zip(hashed)
        .map(|(change, hashed)| HashedChange {
            user: change.user,
            linux: hashed.linux,
            app: Some(hashed.app),
            fleet: None,
        })
        .collect();
    apply_hashed(
        paths,
        config,
        store_owner,
        HashedRequest {
            changes,
            must_change: request.must_change,
            provenance: request.provenance,
            aging: None,
        },
    )
    .map(drop)
}

/// A change whose hashes were made elsewhere: a line of `import --hashed`,
/// or a fleet entry the conductor hashed once for every node.
pub struct HashedChange {
    pub user: UserName,
    pub linux: LinuxHash,
    /// `None`: derived from the password at its first `verify`.
    pub app: Option<String>,
    /// The fleet entry this change applies (recorded with the record).
    pub fleet: Option<FleetStamp>,
}

pub struct HashedRequest {
    pub changes: Vec<HashedChange>,
    pub must_change: bool,
    pub provenance: Provenance,
    /// Shadow's aging fields to write; `None`: the local policy's.
    pub aging: Option<Aging>,
}

/// What [`apply_hashed`] did for each change, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Both stores were written (the session epoch went up).
    Written,
    /// A fleet entry both stores held already: only its version was recorded.
    AlreadyHeld,
}

/// Steps 2 to 5 of a change, with the hashes given. A fleet entry that both
/// stores hold already (the same Linux hash, Argon2id hash and must-change
/// flag) rewrites nothing and ends no session: only its version is recorded.
pub fn apply_hashed(
    paths: &Paths,
    config: &Config,
    store_owner: u32,
    request: HashedRequest,
) -> Result<Vec<Applied>, Error> {
    // From before the first lock to after the last release, signals wait
    // (`ShadowLock` holds its own too); a signal that came meanwhile is
    // dropped once the locks are gone: the change is finished and reported
    // either way (an interrupted one would be finished by the next command,
    // but a whole one is better).
    let held = signals::Blocked::new();
    let mut stores = Stores::lock(paths, config, store_owner)?;
    check_users_exist(&stores.shadow, request.changes.iter().map(|c| &c.user))?;
    let mut intents = Vec::with_capacity(request.changes.len());
    let mut outcome = Vec::with_capacity(request.changes.len());
    let mut current = Vec::new();
    for change in request.changes {
        let old_linux = stores
            .shadow
            .entry(&change.user)
            .map(|e| e.hash)
            .expect("checked above");
        let intent = Intent {
            user: change.user,
            old_linux,
            new_linux: change.linux,
            app_hash: change.app,
            provenance: request.provenance.clone(),
            must_change: request.must_change,
            fleet: change.fleet,
        };
        if intent.fleet.is_some() && holds_already(&stores, &intent)? {
            outcome.push(Applied::AlreadyHeld);
            current.push(intent);
        } else {
            outcome.push(Applied::Written);
            intents.push(intent);
        }
    }
    let aging = request.aging.unwrap_or_else(|| config.policy.aging());
    let written = if intents.is_empty() {
        Ok(())
    } else {
        write_both(paths, config, &mut stores, &intents, aging)
    };
    let noted = written.is_ok().then(|| {
        current
            .iter()
            .try_for_each(|intent| stores.store.note_fleet_current(intent))
    });
    drop(stores);
    held.discard_pending();
    if let Err(e) = written {
        for intent in &intents {
            audit::log_failed_change(&intent.user, intent.provenance.source.as_str());
        }
        return Err(e);
    }
    noted.transpose()?;
    for intent in &intents {
        audit::log(Event::Changed {
            user: &intent.user,
            by: &intent.provenance.by,
            how: intent.provenance.source.as_str(),
            auid: intent.provenance.auid,
        });
    }
    Ok(outcome)
}

/// Whether both stores already hold what `intent` would write.
fn holds_already(stores: &Stores, intent: &Intent) -> Result<bool, Error> {
    let Some(record) = stores.store.record(&intent.user)? else {
        return Ok(false);
    };
    Ok(intent.old_linux == intent.new_linux
        && record.linux_hash == intent.new_linux
        && !record.locked
        && record.must_change == intent.must_change
        && (intent.app_hash.is_none() || record.app_hash == intent.app_hash))
}

/// Steps 3 to 5: the intents, `/etc/shadow`, the records.
fn write_both(
    paths: &Paths,
    config: &Config,
    stores: &mut Stores,
    intents: &[Intent],
    aging: Aging,
) -> Result<(), Error> {
    fault::reached("locked");
    stores.store.record_intents(intents)?;
    fault::reached("intent-recorded");

    let mut updated = stores.shadow.clone();
    for intent in intents {
        let last_change = LastChange::after_change(intent.provenance.at.day, intent.must_change);
        updated.set_password(&intent.user, &intent.new_linux, last_change);
        updated.set_aging(&intent.user, aging);
    }
    // pam_pwhistory's order: the history first, then shadow. A crash between
    // leaves the current password in the history, which is harmless.
    let written =
        keep_history(paths, config, intents).and_then(|()| Ok(stores.lock.write(&mut updated)?));
    if let Err(e) = written {
        // Report the cause. An intent that can't be dropped now is dropped
        // by the next command that takes the locks: shadow lacks its hash.
        let _ = stores.store.abandon_intents(intents);
        return Err(e);
    }
    stores.shadow = updated;

    stores.store.complete_intents(intents).map_err(|e| {
        Error::Failure(format!(
            "/etc/shadow was changed but the record could not be updated ({e}); run 'credsync sync' to finish"
        ))
    })?;
    fault::reached("intent-cleared");
    Ok(())
}

/// Adds each replaced hash to pam_pwhistory's `/etc/security/opasswd`, as
/// pam_pwhistory does before `passwd` writes, so both tools share one
/// history. Skipped when the policy keeps no history, or when the root has no
/// `/etc/security` (an image or fixture without PAM's configuration). A batch
/// reads and replaces the file once, whatever its size.
fn keep_history(paths: &Paths, config: &Config, intents: &[Intent]) -> Result<(), Error> {
    let file = paths.opasswd();
    let remember = config.policy.history;
    if remember == 0 || !file.parent().is_some_and(Path::is_dir) {
        return Ok(());
    }
    let accounts = passwd::read_passwd(&paths.passwd())
        .map_err(|e| Error::Failure(format!("cannot read {}: {e}", paths.passwd().display())))?;
    // The first account of each name, as getpwnam finds it.
    let mut uids: HashMap<&str, u32> = HashMap::with_capacity(accounts.len());
    for account in &accounts {
        uids.entry(account.name.as_str()).or_insert(account.uid);
    }
    let remember = u32::try_from(remember).unwrap_or(u32::MAX);
    let failed = |e: opasswd::OpasswdError| Error::Failure(e.to_string());
    let mut history = opasswd::OpasswdFile::read(&file).map_err(failed)?;
    let mut changed = false;
    for intent in intents {
        if let Some(&uid) = uids.get(intent.user.as_str()) {
            changed |= history.save_old(&intent.user, uid, &intent.old_linux, remember);
        }
    }
    if changed {
        history.write(&file).map_err(failed)?;
    }
    Ok(())
}

fn check_users_exist<'a>(
    shadow: &shadow::ShadowFile,
    users: impl Iterator<Item = &'a UserName>,
) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for user in users {
        if shadow.entry(user).is_none() {
            return Err(Error::UnknownUser(user.clone()));
        }
        if !seen.insert(user) {
            return Err(Error::Invalid(format!(
                "user '{user}' appears more than once"
            )));
        }
    }
    Ok(())
}

/// Both hashes of every password, spread over [`hashing_threads`] threads
/// that take the next password from a shared counter (so one slow thread
/// holds up no chunk), each with one Argon2 work area for all its passwords.
/// The first failure stops the others at their next password.
fn hash_all(
    changes: &[NewPassword],
    method: &HashMethod,
    argon2: &Argon2Config,
) -> Result<Vec<Hashed>, Error> {
    let cores = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let workers = hashing_threads(changes.len(), cores, argon2);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let work = || -> Result<Vec<(usize, Hashed)>, Error> {
        let mut hasher = AppHasher::new(&argon2.cost)?;
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(change) = changes.get(i) else { break };
            match hash_one(&change.password, method, &mut hasher) {
                Ok(hashed) => done.push((i, hashed)),
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(done)
    };
    let results: Vec<thread::Result<_>> = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut slots: Vec<Option<Hashed>> = std::iter::repeat_with(|| None)
        .take(changes.len())
        .collect();
    for result in results {
        let done = result.map_err(|_| Error::Failure("a hashing thread failed".into()))??;
        for (i, hashed) in done {
            slots[i] = Some(hashed);
        }
    }
    slots
        .into_iter()
        .map(|slot| slot.ok_or_else(|| Error::Failure("a password was not hashed".into())))
        .collect()
}

/// How many threads hash a batch of `items`: one per core, no more than
/// there are passwords, and no more Argon2 work areas (`memory_kib` each)
/// than fit in `max_batch_memory_mib` — but always one, whatever the ceiling.
pub fn hashing_threads(items: usize, cores: usize, argon2: &Argon2Config) -> usize {
    let ceiling_kib = u64::from(argon2.max_batch_memory_mib) * 1024;
    let per_thread_kib = u64::from(argon2.memory_kib).max(1);
    let fit = usize::try_from(ceiling_kib / per_thread_kib).unwrap_or(usize::MAX);
    cores.min(items).min(fit).max(1)
}

fn hash_one(
    password: &Password,
    method: &HashMethod,
    hasher: &mut AppHasher,
) -> Result<Hashed, Error> {
    let linux = crypt::hash_password(password, method)?;
    let app = hasher.hash(password)?;
    Ok(Hashed { linux, app })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::app_hash::Argon2Cost;
    use crate::system::crypt::Algorithm;

    fn argon2(memory_kib: u32, max_batch_memory_mib: u32) -> Argon2Config {
        Argon2Config {
            cost: Argon2Cost {
                memory_kib,
                iterations: 1,
                parallelism: 1,
            },
            max_batch_memory_mib,
        }
    }

    #[test]
    fn threads_follow_cores_items_and_the_memory_ceiling() {
        let default = Argon2Config::default();
        assert_eq!(hashing_threads(1000, 2, &default), 2, "cores");
        assert_eq!(hashing_threads(1, 8, &default), 1, "one password");
        assert_eq!(hashing_threads(1000, 64, &default), 13, "256 MiB / 19 MiB");
        assert_eq!(hashing_threads(1000, 8, &argon2(65_536, 256)), 4);
        assert_eq!(
            hashing_threads(1000, 8, &argon2(1_048_576, 256)),
            1,
            "at least one"
        );
        assert_eq!(hashing_threads(1000, 8, &argon2(8, 0)), 1);
        assert_eq!(hashing_threads(0, 8, &default), 1);
    }

    /// A batch adds every replaced hash to pam_pwhistory's file in one
    /// replacement, with each user's uid from passwd.
    #[test]
    fn a_batch_keeps_every_users_history_in_one_write() {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        std::fs::create_dir_all(etc.join("security")).unwrap();
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0::/root:/bin/sh\nann:x:1001:1001::/h:/bin/sh\nbob:x:1002:1002::/h:/bin/sh\n",
        )
        .unwrap();
        let paths = Paths::under(tmp.path());
        let intent = |user: &str, old: &str| Intent {
            user: UserName::parse(user).unwrap(),
            old_linux: LinuxHash::from_field(old).unwrap(),
            new_linux: LinuxHash::from_field("$y$new").unwrap(),
            app_hash: None,
            provenance: Provenance {
                at: crate::clock::Now::at(0),
                by: "root".into(),
                source: crate::store::Source::Import,
                auid: None,
            },
            must_change: false,
            fleet: None,
        };
        let intents = [intent("ann", "$y$ann-old"), intent("bob", "$y$bob-old")];
        keep_history(&paths, &Config::default(), &intents).unwrap();
        assert_eq!(
            std::fs::read_to_string(paths.opasswd()).unwrap(),
            "ann:1001:1:$y$ann-old\nbob:1002:1:$y$bob-old\n"
        );
    }

    #[test]
    fn every_password_gets_its_own_hashes_in_order() {
        let method = HashMethod {
            algorithm: Algorithm::Sha512,
            rounds: Some(1000),
        };
        let changes: Vec<NewPassword> = (0..7)
            .map(|i| NewPassword {
                user: UserName::parse(&format!("user{i}")).unwrap(),
                password: Password::new(format!("Pass#{i}").into_bytes()).unwrap(),
            })
            .collect();
        let hashed = hash_all(&changes, &method, &argon2(64, 1)).unwrap();
        assert_eq!(hashed.len(), changes.len());
        for (change, hashed) in changes.iter().zip(&hashed) {
            assert!(crypt::verify(&change.password, &hashed.linux));
            assert!(crate::store::app_hash::verify(
                &change.password,
                &hashed.app
            ));
        }
        let other = Password::new(b"Pass#0".to_vec()).unwrap();
        assert!(!crypt::verify(&other, &hashed[1].linux));
    }
}
