//! Hashing and checking Linux passwords through the system's libcrypt
//! (libxcrypt): `crypt_gensalt_rn` then `crypt_rn`, the reentrant calls, so the
//! hashes are exactly those pam_unix and `passwd` write and accept.
//! (STUB: interface only; the FFI is being written.)

use crate::secret::Password;
use std::fmt;

/// The password field of a shadow entry: a crypt string, or a locked/disabled
/// marker such as `!$y$...`, `!`, `*`. Never holds `:` or a line break.
#[derive(Clone, PartialEq, Eq)]
pub struct LinuxHash(String);

impl LinuxHash {
    /// Accepts any shadow password field that can be written back safely.
    pub fn from_field(field: &str) -> Option<Self> {
        if field.contains([':', '\n', '\r', '\0']) {
            None
        } else {
            Some(LinuxHash(field.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// A leading `!` is a lock (`passwd -l`, `usermod -L`).
    pub fn is_locked(&self) -> bool {
        self.0.starts_with('!')
    }
}

/// Hashes are not secrets in the way passwords are, but they never go to logs.
impl fmt::Debug for LinuxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinuxHash(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Yescrypt,
    GostYescrypt,
    Sha512,
    Sha256,
    Blowfish,
    Md5,
}

/// A hash method and its cost, as pam_unix or login.defs would choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashMethod {
    pub algorithm: Algorithm,
    /// `rounds=` / `YESCRYPT_COST_FACTOR` / `SHA_CRYPT_*_ROUNDS`; `None` is libcrypt's default.
    pub rounds: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("the system's libcrypt does not support the {0} hash method")]
    Unsupported(&'static str),
    #[error("the system's libcrypt failed to hash the password")]
    Failed,
}

pub fn hash_password(_password: &Password, _method: &HashMethod) -> Result<LinuxHash, CryptError> {
    Err(CryptError::Failed)
}

pub fn verify(_password: &Password, _hash: &LinuxHash) -> bool {
    false
}
