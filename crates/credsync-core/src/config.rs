//! `/etc/credsync/credsync.toml` (under `--root` too). Every key is optional;
//! a missing file means all defaults. Unknown keys are an error, so a typo never
//! silently weakens a setting.
#![forbid(unsafe_code)]

use crate::policy::PolicyConfig;
use crate::store::app_hash::Argon2Cost;
use crate::system::crypt::{Algorithm, HashMethod};
use serde::Deserialize;
use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub hash: HashConfig,
    pub argon2: Argon2Config,
    pub verify: VerifyConfig,
    pub pam: PamConfig,
    pub locks: LockConfig,
    pub policy: PolicyConfig,
    pub api: ApiConfig,
}

/// The Linux hash method; when unset, the PAM stack, then login.defs, decide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashConfig {
    pub method: Option<String>,
    pub rounds: Option<u32>,
}

/// `[argon2]`: the application's hash cost, and how much memory a batch
/// (`import`) may spend on hashing at once. Reads as the [`Argon2Cost`] it
/// holds, which is what every single hash needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(from = "Argon2Section")]
pub struct Argon2Config {
    pub cost: Argon2Cost,
    /// Ceiling on Argon2 work areas in use at once, in MiB: a batch hashes
    /// on at most this / `memory_kib` threads (and never more than the
    /// machine's cores), but always on one.
    pub max_batch_memory_mib: u32,
}

impl Default for Argon2Config {
    fn default() -> Self {
        Argon2Section::default().into()
    }
}

impl Deref for Argon2Config {
    type Target = Argon2Cost;
    fn deref(&self) -> &Argon2Cost {
        &self.cost
    }
}

/// The `[argon2]` section as written: the cost's keys and the ceiling, side by side.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Argon2Section {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    max_batch_memory_mib: u32,
}

impl Default for Argon2Section {
    fn default() -> Self {
        let cost = Argon2Cost::default();
        Argon2Section {
            memory_kib: cost.memory_kib,
            iterations: cost.iterations,
            parallelism: cost.parallelism,
            max_batch_memory_mib: 256,
        }
    }
}

impl From<Argon2Section> for Argon2Config {
    fn from(section: Argon2Section) -> Self {
        Argon2Config {
            cost: Argon2Cost {
                memory_kib: section.memory_kib,
                iterations: section.iterations,
                parallelism: section.parallelism,
            },
            max_batch_memory_mib: section.max_batch_memory_mib,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerifyConfig {
    /// Members of these groups may `verify` any account (the application's
    /// service account); everyone else only their own.
    pub groups: Vec<String>,
    /// Pause after a failed `verify`, like pam_unix's delay, against guessing.
    pub failure_delay_ms: u64,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            groups: Vec::new(),
            failure_delay_ms: 2000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PamConfig {
    pub service: String,
    /// pam_credsync.so enrols a user credsync doesn't manage yet when their
    /// password changes through PAM; off, it leaves them alone.
    pub enrol_on_change: bool,
}

impl Default for PamConfig {
    fn default() -> Self {
        PamConfig {
            service: "credsync".to_owned(),
            enrol_on_change: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockConfig {
    /// How long to wait for the password files before giving up as busy.
    pub timeout_secs: u64,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig { timeout_secs: 15 }
    }
}

/// `[api]`: the service (`credsyncd`) and who may use it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Members of these groups (the application's service account) may call
    /// `Verify`, `ChangePassword`, `GetStatus` and `Monitor` for any managed
    /// account; everyone else (root aside) only for their own. By default
    /// `credsync-web`, the group of the self-service page's own user, which
    /// exists only where the credsync-web package is installed.
    pub groups: Vec<String>,
    /// Connections served at once; one more is answered `Busy` and closed.
    pub max_connections: usize,
    /// Connections one ordinary user (neither root nor in `groups`) may hold
    /// at once, so that no local user can take every connection.
    pub max_connections_per_user: usize,
    /// Longest request, in bytes; a longer one is answered `InvalidArgument`
    /// and its connection closed.
    pub max_request_bytes: usize,
    /// A connection that sends nothing, or leaves a message unfinished, for
    /// this long is closed (a `Monitor` stream is exempt once started).
    pub idle_timeout_secs: u64,
    /// The service exits after this long without a connection (socket
    /// activation starts it again); 0: never.
    pub exit_idle_secs: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            groups: vec!["credsync-web".to_owned()],
            max_connections: 128,
            max_connections_per_user: 8,
            max_request_bytes: 64 * 1024,
            idle_timeout_secs: 30,
            exit_idle_secs: 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is invalid: {detail}")]
    Invalid { path: String, detail: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let invalid = |detail: String| ConfigError::Invalid {
            path: path.display().to_string(),
            detail,
        };
        let config: Config = toml::from_str(&text).map_err(|e| invalid(e.message().to_owned()))?;
        config.hash_method().map_err(&invalid)?;
        config
            .argon2
            .validate()
            .map_err(|e| invalid(e.to_string()))?;
        if config.api.max_connections == 0
            || config.api.max_connections_per_user == 0
            || config.api.max_request_bytes < 1024
        {
            return Err(invalid(
                "api.max_connections and api.max_connections_per_user must be at least 1, and api.max_request_bytes at least 1024"
                    .to_owned(),
            ));
        }
        Ok(config)
    }

    /// The configured Linux hash method, if any, with its cost checked.
    pub fn hash_method(&self) -> Result<Option<HashMethod>, String> {
        let Some(name) = &self.hash.method else {
            return match self.hash.rounds {
                Some(_) => Err("hash.rounds needs hash.method".to_owned()),
                None => Ok(None),
            };
        };
        let algorithm = Algorithm::from_name(name)
            .ok_or_else(|| format!("hash.method: unknown method '{}'", name.escape_default()))?;
        if let (Some(rounds), Some(range)) = (self.hash.rounds, algorithm.rounds_range())
            && !range.contains(&rounds)
        {
            return Err(format!(
                "hash.rounds: {rounds} is outside {}..={} for {algorithm}",
                range.start(),
                range.end()
            ));
        }
        Ok(Some(HashMethod {
            algorithm,
            rounds: self.hash.rounds,
        }))
    }

    pub fn lock_timeout(&self) -> Duration {
        Duration::from_secs(self.locks.timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped file lists every key with the code's default: with every
    /// `# key = value` line taken in, it parses to the defaults (but for the
    /// values marked as examples).
    #[test]
    fn the_shipped_file_shows_the_defaults() {
        let shipped = include_str!("../../../packaging/credsync.toml");
        let taken_in: String = shipped
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting)
                    if setting.split_once(" = ").is_some_and(|(key, _)| {
                        !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }) =>
                {
                    setting
                }
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let mut parsed: Config = toml::from_str(&taken_in).unwrap();
        assert_eq!(
            parsed.hash.method.as_deref(),
            Some("yescrypt"),
            "the example is read"
        );
        parsed.hash = HashConfig::default();
        parsed.verify.groups.clear();
        parsed.api.groups = ApiConfig::default().groups;
        assert_eq!(parsed, Config::default());
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("credsync.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path)
    }

    #[test]
    fn a_missing_file_means_defaults() {
        let config = Config::load(Path::new("/nonexistent/credsync.toml")).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.pam.service, "credsync");
        assert_eq!(config.lock_timeout(), Duration::from_secs(15));
    }

    #[test]
    fn reads_every_section() {
        let config = load(
            "[hash]\nmethod = \"sha512\"\nrounds = 5000\n\
             [argon2]\nmemory_kib = 8\niterations = 1\nparallelism = 1\n\
             [verify]\ngroups = [\"appsvc\"]\nfailure_delay_ms = 0\n",
        )
        .unwrap();
        assert_eq!(
            config.hash_method().unwrap(),
            Some(HashMethod {
                algorithm: Algorithm::Sha512,
                rounds: Some(5000)
            })
        );
        assert_eq!(config.argon2.memory_kib, 8);
        assert_eq!(config.argon2.max_batch_memory_mib, 256, "the default");
        assert_eq!(config.verify.groups, vec!["appsvc"]);
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        assert!(load("[hash]\nmethd = \"sha512\"\n").is_err());
        assert!(
            load("[hash]\nmethod = \"rot13\"\n")
                .unwrap_err()
                .to_string()
                .contains("rot13")
        );
        assert!(load("[argon2]\niterations = 0\n").is_err());
        assert!(load("[argon2]\nmax_batch_memory = 64\n").is_err());
        assert_eq!(
            load("[argon2]\nmax_batch_memory_mib = 64\n")
                .unwrap()
                .argon2
                .max_batch_memory_mib,
            64
        );
        let err = load("[hash]\nmethod = \"yescrypt\"\nrounds = 12\n").unwrap_err();
        assert!(err.to_string().contains("outside 1..=11"), "{err}");
        assert!(load("[hash]\nrounds = 5\n").is_err());
    }
}
