//! The page's settings: `/etc/credsync/web.toml` (or `--config`), every key
//! optional, unknown keys refused so that a typo is not silently ignored.
//! `--listen` and `--api` on the command line win over the file.
#![forbid(unsafe_code)]

use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_PATH: &str = "/etc/credsync/web.toml";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8088";
pub const DEFAULT_API: &str = "/run/credsync/io.credsync.Credentials";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where to listen; 127.0.0.1 by default, behind the appliance's proxy.
    pub listen: SocketAddr,
    /// credsyncd's socket.
    pub api: PathBuf,
    /// Serve HTTPS with this certificate chain and key (PEM); both or neither.
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Mark the session cookie `Secure` without serving TLS here: set it when
    /// a proxy in front terminates HTTPS. Always on with TLS.
    pub secure_cookie: bool,
    /// A session ends after this long without a request...
    pub session_idle_minutes: u64,
    /// ...and after this long in any case.
    pub session_max_hours: u64,
    /// Login attempts one client address may make per minute (a burst of
    /// this many, then one every 60/n seconds), on top of the service's lockout.
    pub login_attempts_per_minute: u32,
    /// The largest request body (forms are a few hundred bytes).
    pub max_request_bytes: usize,
    /// Connections served at once; one more is closed at once.
    pub max_connections: usize,
    /// A client must send its request's headers and body within this time.
    pub request_timeout_secs: u64,
    /// Calls to credsyncd in flight at once.
    pub api_connections: usize,
    /// Proxies whose `X-Forwarded-For` names the client (the rightmost
    /// address is taken); from any other peer the header is ignored. By
    /// default loopback, where the appliance's proxy sits (and where any
    /// local user could reach credsyncd without the page anyway).
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("a valid default address"),
            api: PathBuf::from(DEFAULT_API),
            tls_certificate: None,
            tls_key: None,
            secure_cookie: false,
            session_idle_minutes: 15,
            session_max_hours: 8,
            login_attempts_per_minute: 10,
            max_request_bytes: 8192,
            max_connections: 256,
            request_timeout_secs: 10,
            api_connections: 16,
            trusted_proxies: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
        }
    }
}

impl Config {
    /// Reads `path`; a missing file at the default path means the defaults,
    /// a missing file named on the command line is an error.
    pub fn load(path: &Path, named: bool) -> Result<Config, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => {
                return Ok(Config::default());
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Config::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.tls_certificate.is_some() != self.tls_key.is_some() {
            return Err("tls_certificate and tls_key go together: set both or neither".into());
        }
        for (key, value, most) in [
            (
                "session_idle_minutes",
                self.session_idle_minutes,
                7 * 24 * 60,
            ),
            ("session_max_hours", self.session_max_hours, 30 * 24),
            (
                "login_attempts_per_minute",
                u64::from(self.login_attempts_per_minute),
                10_000,
            ),
            ("max_request_bytes", self.max_request_bytes as u64, 1 << 20),
            ("max_connections", self.max_connections as u64, 65_536),
            ("request_timeout_secs", self.request_timeout_secs, 3600),
            ("api_connections", self.api_connections as u64, 1024),
        ] {
            if !(1..=most).contains(&value) {
                return Err(format!("{key} must be from 1 to {most}"));
            }
        }
        Ok(())
    }

    pub fn tls(&self) -> bool {
        self.tls_certificate.is_some()
    }

    pub fn session_idle(&self) -> Duration {
        Duration::from_secs(self.session_idle_minutes * 60)
    }

    pub fn session_max(&self) -> Duration {
        Duration::from_secs(self.session_max_hours * 3600)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.api, PathBuf::from(DEFAULT_API));
        assert!(!config.tls());
    }

    #[test]
    fn a_typo_is_refused_by_name() {
        let error = Config::parse("listne = \"0.0.0.0:80\"").unwrap_err();
        assert!(error.contains("listne"), "{error}");
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let error = Config::parse("tls_certificate = \"/etc/ssl/c.pem\"").unwrap_err();
        assert!(error.contains("tls_key"), "{error}");
    }

    #[test]
    fn zero_limits_are_refused() {
        let error = Config::parse("login_attempts_per_minute = 0").unwrap_err();
        assert!(error.contains("login_attempts_per_minute"), "{error}");
        let error = Config::parse("request_timeout_secs = 18446744073709551615").unwrap_err();
        assert!(
            error.contains("request_timeout_secs must be from 1 to 3600"),
            "{error}"
        );
    }

    #[test]
    fn the_shipped_file_parses_to_the_defaults() {
        let shipped = include_str!("../../../packaging/web.toml");
        let config = Config::parse(shipped).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.login_attempts_per_minute, 10);
        assert_eq!(config.session_idle_minutes, 15);
    }
}
