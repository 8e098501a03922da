//! `/etc/login.defs`: the `KEY VALUE` settings file shadow-utils reads (and
//! pam_unix, for a few keys). Parsed the way shadow-utils' `lib/getdef.c`
//! (`def_load`, 4.13) does: one setting a line, the key up to the first blank,
//! the value after it with leading blanks and double quotes skipped and cut at
//! the next double quote; lines whose first non-blank is `#` are comments; a
//! later definition of a key replaces an earlier one.
//!
//! One leniency: a ` # comment` after the value is dropped, as pam_unix's
//! reader (`pam_modutil_search_key`) drops everything after a `#`.
#![forbid(unsafe_code)]

use std::io;
use std::path::Path;

/// The settings of a login.defs file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginDefs {
    entries: Vec<(String, String)>,
}

impl LoginDefs {
    pub fn parse(text: &str) -> LoginDefs {
        let entries = text.lines().filter_map(parse_line).collect();
        LoginDefs { entries }
    }

    /// The file at `path`; `Ok(None)` when there is none.
    pub fn read(path: &Path) -> io::Result<Option<LoginDefs>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(LoginDefs::parse(&String::from_utf8_lossy(&bytes)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The value of `key` (case-sensitive, as in shadow-utils); the last
    /// definition wins.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A decimal number; `None` when the key is missing or not a number.
    pub fn get_number(&self, key: &str) -> Option<i64> {
        self.get(key)?.parse().ok()
    }
}

fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim_matches([' ', '\t', '\r', '\n']);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, rest) = line.split_once([' ', '\t'])?;
    let value = rest.trim_start_matches([' ', '\t', '"']);
    let value = value.split('"').next().unwrap_or_default();
    let value = strip_trailing_comment(value).trim_end_matches([' ', '\t']);
    Some((key.to_owned(), value.to_owned()))
}

/// `VALUE # comment` → `VALUE`; a `#` inside a value (`a#b`) stays.
fn strip_trailing_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    let cut = (1..bytes.len()).find(|&i| bytes[i] == b'#' && matches!(bytes[i - 1], b' ' | b'\t'));
    match cut {
        Some(i) => &value[..i],
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_and_values_separated_by_blanks() {
        let defs = LoginDefs::parse(
            "# /etc/login.defs - Configuration control definitions\n\
             \n\
             MAIL_DIR        /var/mail\n\
             ENCRYPT_METHOD\tSHA512\n\
             \x20  PASS_MAX_DAYS 99999  \n",
        );
        assert_eq!(defs.get("MAIL_DIR"), Some("/var/mail"));
        assert_eq!(defs.get("ENCRYPT_METHOD"), Some("SHA512"));
        assert_eq!(defs.get_number("PASS_MAX_DAYS"), Some(99999));
        assert_eq!(defs.get("PASS_MIN_DAYS"), None);
    }

    #[test]
    fn comments_are_skipped() {
        let defs = LoginDefs::parse(
            "#ENCRYPT_METHOD MD5\n\
             \t# SHA_CRYPT_MIN_ROUNDS 5000\n\
             YESCRYPT_COST_FACTOR 7 # slower\n",
        );
        assert_eq!(defs.get("ENCRYPT_METHOD"), None);
        assert_eq!(defs.get("SHA_CRYPT_MIN_ROUNDS"), None);
        assert_eq!(defs.get_number("YESCRYPT_COST_FACTOR"), Some(7));
    }

    #[test]
    fn keys_are_case_sensitive_and_the_last_definition_wins() {
        let defs =
            LoginDefs::parse("ENCRYPT_METHOD MD5\nencrypt_method DES\nENCRYPT_METHOD SHA512\n");
        assert_eq!(defs.get("ENCRYPT_METHOD"), Some("SHA512"));
        assert_eq!(defs.get("encrypt_method"), Some("DES"));
    }

    #[test]
    fn quotes_are_stripped_and_keys_without_values_ignored() {
        let defs = LoginDefs::parse("ENV_PATH \"PATH=/usr/bin:/bin\"\nLONELY\nCRLF 5\r\n");
        assert_eq!(defs.get("ENV_PATH"), Some("PATH=/usr/bin:/bin"));
        assert_eq!(defs.get("LONELY"), None);
        assert_eq!(defs.get_number("CRLF"), Some(5));
    }

    #[test]
    fn numbers_that_are_not_numbers_are_missing() {
        let defs = LoginDefs::parse("A lots\nB -1\nC 12x\n");
        assert_eq!(defs.get_number("A"), None);
        assert_eq!(defs.get_number("B"), Some(-1));
        assert_eq!(defs.get_number("C"), None);
    }

    #[test]
    fn a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            LoginDefs::read(&dir.path().join("login.defs")).unwrap(),
            None
        );
        std::fs::write(dir.path().join("login.defs"), "UMASK 022\n").unwrap();
        let defs = LoginDefs::read(&dir.path().join("login.defs"))
            .unwrap()
            .unwrap();
        assert_eq!(defs.get("UMASK"), Some("022"));
    }
}
