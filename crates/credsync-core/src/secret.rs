//! Secrets: a password is bytes that are wiped when dropped and never printed.
#![forbid(unsafe_code)]

use std::fmt;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Longest password accepted from any input, in bytes: the most libxcrypt
/// (`CRYPT_MAX_PASSPHRASE_SIZE` - 1) and PAM (`PAM_MAX_RESP_SIZE` - 1) take, so
/// a password credsync accepts is one every other login path accepts too.
pub const MAX_PASSWORD_LEN: usize = 511;

/// A password as the user typed it: arbitrary bytes except NUL and newline, which
/// could never reach libcrypt or a line-oriented file intact. Its buffer is
/// wiped in place when it is dropped (or `zeroize`d), whatever the field's type.
#[derive(Zeroize, ZeroizeOnDrop)]
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
        assert_eq!(format!("{p:#?}"), "Password(<redacted>)");
        let raw = Password::new(b"caf\xe9-secret".to_vec()).unwrap();
        assert_eq!(format!("{raw:?}"), "Password(<redacted>)");
    }

    #[test]
    fn a_refusal_never_quotes_the_password() {
        for bad in [&b"hunter2\0x"[..], b"hunter2\nx", b"hunter2\rx"] {
            let message = Password::new(bad.to_vec()).unwrap_err().to_string();
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    /// Dropping a password wipes it: the type promises it (the compiler
    /// checks the promise), and the wipe overwrites the buffer where it is.
    #[test]
    fn a_password_is_wiped_in_place() {
        fn wiped_on_drop<T: ZeroizeOnDrop>() {}
        wiped_on_drop::<Password>();

        let mut p = Password::new(b"Wipe#Me-0123456789".to_vec()).unwrap();
        let buffer = (p.0.as_ptr(), p.0.capacity());
        p.zeroize();
        assert!(p.as_bytes().is_empty(), "content left after the wipe");
        // Still the same, still owned allocation: wiped where the bytes were,
        // not copied elsewhere or handed back to the allocator unwiped.
        assert_eq!((p.0.as_ptr(), p.0.capacity()), buffer);
    }

    #[test]
    fn compares_by_content() {
        let a = Password::new(b"same".to_vec()).unwrap();
        assert!(a.same_as(&Password::new(b"same".to_vec()).unwrap()));
        assert!(!a.same_as(&Password::new(b"samf".to_vec()).unwrap()));
        assert!(!a.same_as(&Password::new(b"sam".to_vec()).unwrap()));
    }
}
