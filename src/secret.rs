//! Secrets: a password is bytes that are wiped when dropped and never printed.
#![forbid(unsafe_code)]

use std::fmt;
use zeroize::Zeroizing;

/// Longest password accepted from any input, in bytes: the most libxcrypt
/// (`CRYPT_MAX_PASSPHRASE_SIZE` - 1) and PAM (`PAM_MAX_RESP_SIZE` - 1) take, so
/// a password credsync accepts is one every other login path accepts too.
pub const MAX_PASSWORD_LEN: usize = 511;

/// A password as the user typed it: arbitrary bytes except NUL and newline, which
/// could never reach libcrypt or a line-oriented file intact.
pub struct Password(Zeroizing<Vec<u8>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than {MAX_PASSWORD_LEN} bytes")]
    TooLong,
    #[error("the password contains a NUL byte")]
    Nul,
    #[error("the password contains a line break")]
    LineBreak,
}

impl Password {
    /// Takes ownership of `bytes` (wiping them on every path) and checks them.
    pub fn new(bytes: Vec<u8>) -> Result<Self, PasswordError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.is_empty() {
            return Err(PasswordError::Empty);
        }
        if bytes.len() > MAX_PASSWORD_LEN {
            return Err(PasswordError::TooLong);
        }
        if bytes.contains(&0) {
            return Err(PasswordError::Nul);
        }
        if bytes.iter().any(|&b| b == b'\n' || b == b'\r') {
            return Err(PasswordError::LineBreak);
        }
        Ok(Password(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// For "new password and confirmation differ".
    pub fn same_as(&self, other: &Password) -> bool {
        constant_time_eq(self.as_bytes(), other.as_bytes())
    }
}

/// Compares in time that depends only on the lengths, not on where the bytes
/// differ (used for passwords and for hashes recomputed from them).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bytes_that_cannot_reach_a_file_intact() {
        assert_eq!(Password::new(vec![]).unwrap_err(), PasswordError::Empty);
        assert_eq!(
            Password::new(b"a\nb".to_vec()).unwrap_err(),
            PasswordError::LineBreak
        );
        assert_eq!(
            Password::new(b"a\0b".to_vec()).unwrap_err(),
            PasswordError::Nul
        );
        let long = vec![b'x'; MAX_PASSWORD_LEN + 1];
        assert_eq!(Password::new(long).unwrap_err(), PasswordError::TooLong);
    }

    #[test]
    fn accepts_colons_and_non_utf8() {
        assert!(Password::new(b"a:b".to_vec()).is_ok());
        assert!(Password::new(vec![0xff, 0xfe, b'x']).is_ok());
    }

    #[test]
    fn debug_never_shows_the_content() {
        let p = Password::new(b"hunter2-secret".to_vec()).unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn compares_by_content() {
        let a = Password::new(b"same".to_vec()).unwrap();
        assert!(a.same_as(&Password::new(b"same".to_vec()).unwrap()));
        assert!(!a.same_as(&Password::new(b"samf".to_vec()).unwrap()));
        assert!(!a.same_as(&Password::new(b"sam".to_vec()).unwrap()));
    }
}
