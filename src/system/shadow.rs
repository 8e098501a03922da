//! `/etc/shadow` read and written the way shadow-utils does (STUB: interface only).

use super::Paths;
use super::crypt::LinuxHash;
use crate::account::UserName;
use std::time::Duration;

/// Field 3 of a shadow entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastChange {
    /// Empty field: aging disabled.
    Unset,
    /// `0`: the user must change the password at next login.
    MustChange,
    /// Days since 1970-01-01 UTC.
    Day(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    pub name: String,
    pub hash: LinuxHash,
    pub last_change: LastChange,
}

#[derive(Debug, Clone, Default)]
pub struct ShadowFile {
    raw: Vec<u8>,
}

impl ShadowFile {
    pub fn parse(raw: Vec<u8>) -> Self {
        ShadowFile { raw }
    }
    pub fn entry(&self, _user: &UserName) -> Option<ShadowEntry> {
        None
    }
    pub fn entries(&self) -> Vec<ShadowEntry> {
        Vec::new()
    }
    pub fn set_password(&mut self, _user: &UserName, _hash: &LinuxHash, _last: LastChange) -> bool {
        false
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        self.raw.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    #[error("the password files are locked by another program{}; try again", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Busy { pid: Option<u32> },
    #[error("{path} is missing")]
    Missing { path: String },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
}

/// Both locks every password tool shares, held in order: `.pwd.lock` then `shadow.lock`.
pub struct ShadowLock {
    paths: Paths,
}

impl ShadowLock {
    pub fn acquire(paths: &Paths, _timeout: Duration) -> Result<Self, ShadowError> {
        Ok(ShadowLock {
            paths: paths.clone(),
        })
    }
    pub fn read(&self) -> Result<ShadowFile, ShadowError> {
        read_unlocked(&self.paths)
    }
    pub fn write(&self, _file: &ShadowFile) -> Result<(), ShadowError> {
        Ok(())
    }
}

pub fn read_unlocked(paths: &Paths) -> Result<ShadowFile, ShadowError> {
    let path = paths.shadow();
    match std::fs::read(&path) {
        Ok(raw) => Ok(ShadowFile::parse(raw)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ShadowError::Missing {
            path: path.display().to_string(),
        }),
        Err(source) => Err(ShadowError::Io {
            action: "read",
            path: path.display().to_string(),
            source,
        }),
    }
}
