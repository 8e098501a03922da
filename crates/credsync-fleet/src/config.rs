//! `/etc/credsync/fleet.toml`: which fleet, which etcd, which keys, and which
//! side wins a conflict. Every file it names is read under `--root` like the
//! rest of the system's files.
#![forbid(unsafe_code)]

use crate::entry::{self, check_fleet_name};
use credsync_core::system::Paths;
use ed25519_dalek::VerifyingKey;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const FILE: &str = "/etc/credsync/fleet.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Signs and writes desired state (`fleet set`, `import`, `reconcile`, `status`).
    Conductor,
    /// Runs the agent: applies entries, reports its versions.
    Node,
}

/// Which side wins when a fleet-managed user was changed on the node itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conflict {
    /// Report the drift; the next desired state, or `fleet reconcile`, re-applies.
    FleetWins,
    /// Report the drift and never overwrite it; only a reconcile run on the
    /// node itself (`credsync fleet reconcile` there) applies the fleet's state.
    ReportOnly,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    fleet: String,
    role: Role,
    node: Option<String>,
    endpoints: Vec<String>,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    #[serde(default)]
    public_keys: Vec<String>,
    signing_key: Option<PathBuf>,
    #[serde(default = "default_conflict")]
    conflict: Conflict,
    crypt_method: Option<String>,
    #[serde(default = "default_report_ttl")]
    report_ttl_secs: u64,
    #[serde(default = "default_drift_check")]
    drift_check_secs: u64,
    #[serde(default = "default_silent")]
    silent_after_secs: u64,
}

fn default_conflict() -> Conflict {
    Conflict::FleetWins
}
fn default_report_ttl() -> u64 {
    30
}
fn default_drift_check() -> u64 {
    30
}
fn default_silent() -> u64 {
    120
}

#[derive(Debug)]
pub struct FleetConfig {
    pub fleet: String,
    pub role: Role,
    /// This node's name in the fleet (its report key); the host name by default.
    pub node: String,
    pub endpoints: Vec<String>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Keys whose signatures a node accepts (more than one while rotating).
    pub public_keys: Vec<VerifyingKey>,
    /// The conductor's private key (a file of 32 bytes in base64, mode 0600).
    pub signing_key: Option<PathBuf>,
    pub conflict: Conflict,
    /// The Linux hash method for the fleet's hashes (conductor); the
    /// conductor's own when unset.
    pub crypt_method: Option<String>,
    pub report_ttl: Duration,
    pub drift_check: Duration,
    /// `fleet status` calls a node silent when its last report is older.
    pub silent_after: Duration,
}

impl FleetConfig {
    pub fn load(paths: &Paths) -> Result<FleetConfig, String> {
        let path = paths.under_root(FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let invalid = |detail: String| format!("{}: {detail}", path.display());
        let file: File = toml::from_str(&text).map_err(|e| invalid(e.message().to_owned()))?;
        check_fleet_name(&file.fleet).map_err(&invalid)?;
        let node = match file.node {
            Some(node) => node,
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .ok_or_else(|| invalid("node is unset and the host name is unreadable".into()))?,
        };
        check_fleet_name(&node).map_err(|e| invalid(e.replace("fleet name", "node name")))?;
        if file.endpoints.is_empty() {
            return Err(invalid("endpoints is empty".into()));
        }
        if let Some(plain) = file.endpoints.iter().find(|e| !e.starts_with("https://")) {
            return Err(invalid(format!(
                "endpoint '{plain}' is not https://: the fleet talks to etcd over TLS only"
            )));
        }
        let public_keys = file
            .public_keys
            .iter()
            .map(|k| entry::public_key(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(&invalid)?;
        match file.role {
            Role::Node if public_keys.is_empty() => {
                return Err(invalid(
                    "a node needs public_keys: the conductor's key(s) it trusts".into(),
                ));
            }
            Role::Conductor if file.signing_key.is_none() => {
                return Err(invalid("a conductor needs signing_key".into()));
            }
            _ => {}
        }
        if !(5..=3600).contains(&file.report_ttl_secs) {
            return Err(invalid("report_ttl_secs must be 5-3600".into()));
        }
        if !(1..=86_400).contains(&file.drift_check_secs) {
            return Err(invalid("drift_check_secs must be 1-86400".into()));
        }
        let under = |p: &Path| paths.under_root(&p.to_string_lossy());
        Ok(FleetConfig {
            fleet: file.fleet,
            role: file.role,
            node,
            endpoints: file.endpoints,
            ca: under(&file.ca),
            cert: under(&file.cert),
            key: under(&file.key),
            public_keys,
            signing_key: file.signing_key.as_deref().map(under),
            conflict: file.conflict,
            crypt_method: file.crypt_method,
            report_ttl: Duration::from_secs(file.report_ttl_secs),
            drift_check: Duration::from_secs(file.drift_check_secs),
            silent_after: Duration::from_secs(file.silent_after_secs),
        })
    }

    pub fn users_prefix(&self) -> String {
        format!("/credsync/{}/users/", self.fleet)
    }

    pub fn user_key(&self, user: &str) -> String {
        format!("{}{user}", self.users_prefix())
    }

    pub fn nodes_prefix(&self) -> String {
        format!("/credsync/{}/nodes/", self.fleet)
    }

    /// This node's report (with a lease: it goes when the node does).
    pub fn report_key(&self, node: &str) -> String {
        format!("{}{node}/report", self.nodes_prefix())
    }

    /// This node's last report again, without a lease: what `status` calls
    /// "silent since", and the versions a silent node held.
    pub fn seen_key(&self, node: &str) -> String {
        format!("{}{node}/seen", self.nodes_prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<FleetConfig, String> {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc/credsync")).unwrap();
        std::fs::write(root.path().join("etc/credsync/fleet.toml"), text).unwrap();
        FleetConfig::load(&Paths::under(root.path()))
    }

    const BASE: &str = "fleet = \"lab\"\nnode = \"n1\"\nendpoints = [\"https://127.0.0.1:2379\"]\n\
        ca = \"/etc/ca.pem\"\ncert = \"/etc/c.pem\"\nkey = \"/etc/c.key\"\n";
    fn key() -> String {
        let public = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        format!("public_keys = [\"{}\"]\n", entry::encode_public(&public))
    }

    #[test]
    fn a_node_and_a_conductor_each_need_their_keys() {
        let node = load(&format!("{BASE}role = \"node\"\n{}", key())).unwrap();
        assert_eq!(node.role, Role::Node);
        assert_eq!(node.conflict, Conflict::FleetWins);
        assert_eq!(node.report_key("n1"), "/credsync/lab/nodes/n1/report");
        assert_eq!(node.user_key("admin"), "/credsync/lab/users/admin");
        assert!(node.ca.ends_with("etc/ca.pem") && node.ca.starts_with(std::env::temp_dir()));
        let err = load(&format!("{BASE}role = \"node\"\n")).unwrap_err();
        assert!(err.contains("public_keys"), "{err}");
        let err = load(&format!("{BASE}role = \"conductor\"\n")).unwrap_err();
        assert!(err.contains("signing_key"), "{err}");
    }

    #[test]
    fn plain_http_bad_names_and_unknown_keys_are_refused() {
        let plain = BASE.replace("https://", "http://");
        let err = load(&format!("{plain}role = \"node\"\n{}", key())).unwrap_err();
        assert!(err.contains("TLS only"), "{err}");
        let err = load(&format!(
            "{}role = \"node\"\n{}",
            BASE.replace("\"lab\"", "\"../x\""),
            key()
        ))
        .unwrap_err();
        assert!(err.contains("fleet name"), "{err}");
        let err = load(&format!("{BASE}role = \"node\"\n{}colour = 1\n", key())).unwrap_err();
        assert!(err.contains("colour"), "{err}");
        let err = load(&format!(
            "{BASE}role = \"node\"\npublic_keys = [\"nope\"]\n"
        ))
        .unwrap_err();
        assert!(err.contains("Ed25519"), "{err}");
    }
}
