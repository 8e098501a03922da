//! The Linux account: `/etc/passwd` and `/etc/shadow` read and written the way
//! shadow-utils does, the locks every password tool shares, hashing through the
//! system's libcrypt, the PAM client, syslog, and process hygiene for setuid runs.
//!
//! Every path is taken under an optional root directory (`--root`), so the same
//! code serves the live system, offline images and test fixtures.

pub mod crypt;
pub mod faillock;
pub(crate) mod fresh;
pub mod linux_audit;
pub mod method;
pub mod opasswd;
pub mod pam;
pub mod passwd;
pub mod privilege;
pub mod pwquality;
pub mod shadow;
pub mod signals;
pub mod syslog;
pub mod terminal;

use std::path::{Path, PathBuf};

/// Where every file credsync touches lives, under `/` or under `--root DIR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    /// The live system.
    pub fn system() -> Self {
        Paths {
            root: PathBuf::from("/"),
        }
    }

    /// All system paths taken under `root`.
    pub fn under(root: &Path) -> Self {
        Paths {
            root: root.to_path_buf(),
        }
    }

    pub fn is_alternate_root(&self) -> bool {
        self.root != Path::new("/")
    }

    fn join(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// An absolute path from a configuration file, taken under the root.
    pub fn under_root(&self, absolute: &str) -> PathBuf {
        self.join(absolute.trim_start_matches('/'))
    }

    pub fn etc(&self) -> PathBuf {
        self.join("etc")
    }
    pub fn passwd(&self) -> PathBuf {
        self.join("etc/passwd")
    }
    pub fn group(&self) -> PathBuf {
        self.join("etc/group")
    }
    pub fn shadow(&self) -> PathBuf {
        self.join("etc/shadow")
    }
    pub fn login_defs(&self) -> PathBuf {
        self.join("etc/login.defs")
    }
    pub fn pam_d(&self) -> PathBuf {
        self.join("etc/pam.d")
    }
    pub fn config(&self) -> PathBuf {
        self.join("etc/credsync/credsync.toml")
    }
    pub fn faillock_conf(&self) -> PathBuf {
        self.join("etc/security/faillock.conf")
    }
    /// pam_pwhistory's history of old password hashes, shared with `passwd`.
    pub fn opasswd(&self) -> PathBuf {
        self.join("etc/security/opasswd")
    }
    pub fn pwquality_conf(&self) -> PathBuf {
        self.join("etc/security/pwquality.conf")
    }
    pub fn store_dir(&self) -> PathBuf {
        self.join("var/lib/credsync")
    }
}
