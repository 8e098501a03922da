//! Names of accounts, checked once at the edge so no file can be corrupted by them.
#![forbid(unsafe_code)]

use std::fmt;

/// A user name that is safe in every colon-separated file and in a log line:
/// 1..=32 bytes of `[A-Za-z0-9._-]`, optionally ending in `$` (Samba machine
/// accounts), not starting with `-`. This is shadow-utils' portable rule, which
/// also rules out `:`, newline, NUL and anything non-ASCII.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{}' is not a valid user name", .0.escape_default())]
pub struct InvalidUserName(pub String);

impl UserName {
    pub fn parse(name: &str) -> Result<Self, InvalidUserName> {
        let bytes = name.as_bytes();
        let body = bytes.strip_suffix(b"$").unwrap_or(bytes);
        let valid = !body.is_empty()
            && bytes.len() <= 32
            && body[0] != b'-'
            && body
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(UserName(name.to_owned()))
        } else {
            Err(InvalidUserName(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["admin", "alice.b", "svc_app-1", "host$", "A1"] {
            assert!(UserName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_names_that_would_corrupt_a_file() {
        for bad in [
            "",
            "a:b",
            "a\nb",
            "a\0b",
            "-rf",
            "é",
            "a b",
            "$",
            &"x".repeat(33),
        ] {
            assert!(UserName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
