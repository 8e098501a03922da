//! pam_pwhistory's password history, `/etc/security/opasswd`, read and changed
//! exactly as pam_pwhistory of Linux-PAM 1.5.2 does (`modules/pam_pwhistory/
//! opasswd.c`), so that `passwd` and credsync keep one history between them.
//!
//! The file has one line per user, `user:uid:count:hash1,hash2,...`, the
//! oldest hash first. As pam_pwhistory reads it: everything from a `#` on is a
//! comment, leading blanks are skipped, `count` is never trusted (it is
//! recomputed from the list) but must read as a number (or be empty) for the
//! line to count, and the first such line of a user is the one checked.
//!
//! - [`OpasswdFile::save_old`] is pam_pwhistory's `save_old_pass`: the hash
//!   being replaced (the user's current `/etc/shadow` hash) is appended last,
//!   unless it already is the last one, and the list is cut from the front to
//!   `remember` hashes; a user without a line gets `user:uid:1:hash`.
//! - [`OpasswdFile::matches_any`] is `check_old_pass`: the new password is
//!   crypt-compared with every hash of the user. Locked or disabled entries
//!   (`!`, `*`, `!$y$...`, which pam_pwhistory saves too) never match.
//! - pam_pwhistory saves *before* it checks, in one password change, so
//!   `remember=N` refuses the current password and the N-1 before it. Do the
//!   same: `save_old`, then `matches_any`, on the one in-memory file. Writing
//!   it only when the change goes ahead leaves the same file as pam_pwhistory
//!   once a change succeeds (pam_pwhistory writes already on a refused
//!   attempt; the next change then finds the hash already last).
//! - Every line this module does not rewrite stays byte-identical: comments,
//!   blank lines, other users, malformed lines. A rewritten line is
//!   `user:uid:count:list\n` with the uid field kept verbatim. Where this
//!   differs from pam_pwhistory it is on purpose: a line of the user whose
//!   `count` is not a number is kept (pam_pwhistory silently drops it when it
//!   saves), and a file without a final newline gets one when it is changed
//!   (pam_pwhistory would glue the next user's line onto the last one).
//!
//! [`OpasswdFile::write`] replaces the file the way pam_pwhistory does —
//! temporary in the same directory with the original's owner and mode (0600
//! root:root for a new file), fsync, the previous version hard-linked as
//! `opasswd.old` (best effort, as there), rename — but safely: the temporary `opasswd+` is created with
//! `O_EXCL|O_NOFOLLOW` and removed on failure, the directory is fsynced after
//! the rename, and a file that changed on disk since it was read is not
//! overwritten. A missing directory is an error and is not created:
//! pam_pwhistory fails the password change then too.
//!
//! Locking: pam_pwhistory takes no lock of any kind (it runs before pam_unix
//! takes `lckpwdf()`), so nothing can exclude it. The caller of `write` must
//! hold `/etc/.pwd.lock` (a `ShadowLock`), which keeps other credsync runs out
//! and makes a leftover `opasswd+` provably one from a crash.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::secret::Password;
use crate::system::crypt::{self, LinuxHash};
use crate::system::fresh::{self, with_suffix};
use crate::system::passwd::lines;
use crate::system::signals;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// pam_pwhistory's options that credsync honours, from the module arguments of
/// a `password ... pam_pwhistory.so ARGS` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PwhistoryOptions {
    /// How many hashes the file keeps per user; 0 turns the module off (it
    /// returns PAM_IGNORE and leaves the file alone).
    pub remember: u32,
    /// Whether root is refused a reused password too; without it root only
    /// gets the warning "Password has been already used." and the change goes
    /// ahead.
    pub enforce_for_root: bool,
}

impl PwhistoryOptions {
    /// pam_pwhistory's default for `remember=`.
    pub const DEFAULT_REMEMBER: u32 = 10;
    /// pam_pwhistory clamps `remember=` to at most this.
    pub const MAX_REMEMBER: u32 = 400;

    /// pam_pwhistory's `parse_option` over every argument in order (a later
    /// one wins): `remember=` and `enforce_for_root`, names matched without
    /// regard to case. The number is read as `strtol` reads it (leading
    /// blanks, a sign, the digits; `remember=5x` is 5, `remember=x` is 0),
    /// stored in a C `int` and clamped to 0..=400. Other arguments (`retry=`,
    /// `use_authtok`, `debug`, ...) are ignored.
    pub fn from_module_args<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut options = PwhistoryOptions::default();
        for arg in args {
            let arg = arg.as_ref().as_bytes();
            if arg.eq_ignore_ascii_case(b"enforce_for_root") {
                options.enforce_for_root = true;
            } else if let Some(value) = strip_prefix_ignore_case(arg, b"remember=") {
                // `options->remember = strtol(...)`: long to int keeps the low
                // 32 bits (gcc), then the clamp.
                let as_int = strtol(value) as i32;
                options.remember = as_int.clamp(0, Self::MAX_REMEMBER as i32) as u32;
            }
        }
        options
    }
}

impl Default for PwhistoryOptions {
    fn default() -> Self {
        PwhistoryOptions {
            remember: Self::DEFAULT_REMEMBER,
            enforce_for_root: false,
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// `strtol(text, NULL, 10)`: leading blanks, an optional sign, then as many
/// digits as there are; out of range saturates at the `long` limits.
fn strtol(text: &[u8]) -> i64 {
    let text = &text[text.iter().take_while(|&&b| is_c_space(b)).count()..];
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let limit = 1i128 << 63;
    let magnitude = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i128, |acc, &b| {
            (acc * 10 + i128::from(b - b'0')).min(limit)
        });
    let value = if negative { -magnitude } else { magnitude };
    value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// One hash from a user's history.
#[derive(Clone, PartialEq, Eq)]
pub enum OldHash {
    /// A shadow password field: a crypt string, or a locked or disabled marker
    /// (`!`, `*`, `!$y$...`) that never matches.
    Field(LinuxHash),
    /// Bytes no shadow field holds (a `\r` from a CRLF file, text that is not
    /// UTF-8): kept, never matches.
    Raw(Vec<u8>),
}

impl OldHash {
    fn from_bytes(bytes: &[u8]) -> Self {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(LinuxHash::from_field)
            .map_or_else(|| OldHash::Raw(bytes.to_vec()), OldHash::Field)
    }

    /// Whether `password` hashes to this entry, through the system's libcrypt.
    pub fn matches(&self, password: &Password) -> bool {
        match self {
            OldHash::Field(hash) => crypt::verify(password, hash),
            OldHash::Raw(_) => false,
        }
    }
}

/// Hashes never go to logs.
impl fmt::Debug for OldHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OldHash(<redacted>)")
    }
}

/// A history line as pam_pwhistory's `parse_entry` splits it.
struct Entry<'a> {
    user: &'a [u8],
    uid: &'a [u8],
    /// The fourth field, up to the next `:`; `None` when the line has only three.
    hashes: Option<&'a [u8]>,
}

impl<'a> Entry<'a> {
    /// The line's entry, if pam_pwhistory reads one from it: the text before
    /// any NUL (C strings end there) and before any `#`, leading blanks
    /// skipped, one trailing `\n` dropped, at least three `:`-separated fields
    /// and a `count` that `strtol` reads to its end.
    fn parse(line: &'a [u8]) -> Option<Self> {
        let text = line.split(|&b| b == 0).next().unwrap_or_default();
        let text = text.split(|&b| b == b'#').next().unwrap_or_default();
        let text = &text[text.iter().take_while(|&&b| is_c_space(b)).count()..];
        let text = text.strip_suffix(b"\n").unwrap_or(text);
        if text.is_empty() {
            return None;
        }
        let mut fields = text.split(|&b| b == b':');
        let user = fields.next()?;
        let uid = fields.next()?;
        let count = fields.next()?;
        if !is_whole_number(count) {
            return None;
        }
        Some(Entry {
            user,
            uid,
            hashes: fields.next(),
        })
    }

    /// The list as `save_old_pass` counts it: empty when the field is missing
    /// or empty, else every comma-separated item, empty ones included.
    fn list(&self) -> Vec<&'a [u8]> {
        match self.hashes {
            None | Some(b"") => Vec::new(),
            Some(field) => field.split(|&b| b == b',').collect(),
        }
    }
}

/// `strtol(count, &end, 10)` followed by `*end == '\0'`: an empty field, or
/// blanks, a sign and at least one digit, nothing after.
fn is_whole_number(field: &[u8]) -> bool {
    if field.is_empty() {
        return true;
    }
    let rest = &field[field.iter().take_while(|&&b| is_c_space(b)).count()..];
    let digits = rest
        .strip_prefix(b"-")
        .or(rest.strip_prefix(b"+"))
        .unwrap_or(rest);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// The whole history file, line by line, each line's raw bytes kept with its
/// `\n` (the last may have none), so that it is written back exactly.
#[derive(Debug, Clone, Default)]
pub struct OpasswdFile {
    lines: Vec<Vec<u8>>,
    /// The bytes on disk this was read from, `None` if there was no file: a
    /// write refuses to replace anything else.
    base: Option<Vec<u8>>,
}

impl OpasswdFile {
    /// The file as it was read from disk.
    pub fn parse(bytes: Vec<u8>) -> Self {
        OpasswdFile {
            lines: lines(&bytes).map(<[u8]>::to_vec).collect(),
            base: Some(bytes),
        }
    }

    /// Reads the file at `path` (`/etc/security/opasswd`). A missing file is an
    /// empty history, as pam_pwhistory takes it; a symlink or anything but a
    /// regular file is refused.
    pub fn read(path: &Path) -> Result<Self, OpasswdError> {
        Ok(match read_current(path)? {
            Some((bytes, _)) => OpasswdFile::parse(bytes),
            None => OpasswdFile::default(),
        })
    }

    /// The bytes to write: the lines, concatenated.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.lines.concat()
    }

    /// The user's history, oldest first, from the user's first well-formed
    /// line (the one pam_pwhistory checks); empty items are left out (they are
    /// never compared). Empty if the user has no line.
    pub fn hashes(&self, user: &UserName) -> Vec<OldHash> {
        self.lines
            .iter()
            .filter_map(|line| Entry::parse(line))
            .find(|entry| entry.user == user.as_str().as_bytes())
            .map(|entry| {
                entry
                    .list()
                    .into_iter()
                    .filter(|item| !item.is_empty())
                    .map(OldHash::from_bytes)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `password` matches any hash in the user's history
    /// (pam_pwhistory's `check_old_pass`: crypt with the stored hash as
    /// setting, compare).
    pub fn matches_any(&self, password: &Password, user: &UserName) -> bool {
        self.hashes(user).iter().any(|old| old.matches(password))
    }

    /// Records `current`, the user's hash that a change is about to replace,
    /// as pam_pwhistory's `save_old_pass` does, and says whether the file
    /// changed. Nothing changes when `remember` is 0, when `current` is empty,
    /// or when `current` is already the last hash. Otherwise every well-formed
    /// line of the user (pam_pwhistory rewrites each one) becomes
    /// `user:uid:count:list,current` with the oldest hashes dropped so that at
    /// most `remember` remain; a user without such a line gets
    /// `user:uid:1:current` at the end of the file. `uid` is only used for a
    /// new line.
    pub fn save_old(
        &mut self,
        user: &UserName,
        uid: u32,
        current: &LinuxHash,
        remember: u32,
    ) -> bool {
        let current = current.as_str().as_bytes();
        if remember == 0 || current.is_empty() {
            return false;
        }
        let user = user.as_str().as_bytes();
        let mut found = false;
        let mut changed = false;
        for line in &mut self.lines {
            let Some(entry) = Entry::parse(line) else {
                continue;
            };
            if entry.user != user {
                continue;
            }
            found = true;
            let mut list = entry.list();
            // "Don't save the current password twice."
            if list.last() == Some(&current) {
                continue;
            }
            list.push(current);
            let keep = usize::try_from(remember).unwrap_or(usize::MAX).max(1);
            let list = &list[list.len().saturating_sub(keep)..];
            let mut rewritten = Vec::with_capacity(line.len() + current.len() + 16);
            rewritten.extend_from_slice(user);
            rewritten.push(b':');
            rewritten.extend_from_slice(entry.uid);
            rewritten.extend_from_slice(format!(":{}:", list.len()).as_bytes());
            rewritten.extend_from_slice(&list.join(&b","[..]));
            rewritten.push(b'\n');
            *line = rewritten;
            changed = true;
        }
        if !found {
            self.end_last_line();
            // pam_pwhistory prints the uid with `%d`.
            let mut line = format!("{}:{}:1:", user_text(user), uid as i32).into_bytes();
            line.extend_from_slice(current);
            line.push(b'\n');
            self.lines.push(line);
            changed = true;
        }
        if changed {
            self.end_last_line();
        }
        changed
    }

    fn end_last_line(&mut self) {
        if let Some(last) = self.lines.last_mut()
            && !last.ends_with(b"\n")
        {
            last.push(b'\n');
        }
    }

    /// Replaces the file at `path` with this content, keeping the previous
    /// version as `<path>.old` (module docs: how, and why the caller must hold
    /// `/etc/.pwd.lock`). Refuses with `Changed` if the file on disk is not
    /// the one this was read from; on success this becomes the base of the
    /// next write. On any error the file is as it was.
    pub fn write(&mut self, path: &Path) -> Result<(), OpasswdError> {
        let _signals = signals::Blocked::new();
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let current = read_current(path)?;
        let (owner, mode) = match &current {
            Some((bytes, meta)) => {
                if self.base.as_ref() != Some(bytes) {
                    return Err(OpasswdError::Changed { path: shown(path) });
                }
                ((meta.uid(), meta.gid()), meta.mode() & 0o777)
            }
            None if self.base.is_some() => {
                return Err(OpasswdError::Changed { path: shown(path) });
            }
            None if !dir.is_dir() => {
                return Err(OpasswdError::DirectoryMissing { path: shown(dir) });
            }
            // pam_pwhistory's mode for a new file; its owner root:root is
            // the directory's on a real system, and under `--root` run by
            // an ordinary user the only owner it can give.
            None => {
                let meta = std::fs::metadata(dir).map_err(|e| io_error("read", dir, e))?;
                ((meta.uid(), meta.gid()), 0o600)
            }
        };

        let new = self.to_bytes();
        let temp = with_suffix(path, "+");
        let mut remove = RemoveOnDrop(Some(temp.clone()));
        write_temp(&temp, &new, owner, mode)?;

        // The backup, best effort as in pam_pwhistory: a backup that can't
        // be made does not stop the history from being kept.
        if current.is_some() {
            let backup = with_suffix(path, ".old");
            let _ = std::fs::remove_file(&backup);
            let _ = std::fs::hard_link(path, &backup);
        }
        std::fs::rename(&temp, path).map_err(|e| io_error("replace", path, e))?;
        remove.0 = None;
        // Makes the rename durable; the change is made and visible already,
        // so a failure here is not a failed write.
        let _ = File::open(dir).and_then(|d| d.sync_all());
        self.base = Some(new);
        Ok(())
    }
}

/// A user name is ASCII (`UserName`), so the bytes are its text.
fn user_text(user: &[u8]) -> String {
    String::from_utf8_lossy(user).into_owned()
}

/// Records the hash a change replaces in the history file at `path`: read,
/// [`OpasswdFile::save_old`], write if anything changed. Says whether the file
/// was written. The caller holds `/etc/.pwd.lock`.
pub fn record_replaced_hash(
    path: &Path,
    user: &UserName,
    uid: u32,
    current: &LinuxHash,
    remember: u32,
) -> Result<bool, OpasswdError> {
    let mut file = OpasswdFile::read(path)?;
    if !file.save_old(user, uid, current, remember) {
        return Ok(false);
    }
    file.write(path)?;
    Ok(true)
}

#[derive(Debug, thiserror::Error)]
pub enum OpasswdError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a regular file; the password history cannot be kept there")]
    NotRegular { path: String },
    #[error(
        "the directory {path} is missing, so the password history cannot be kept (passwd fails too); create it (mode 0755, owner root)"
    )]
    DirectoryMissing { path: String },
    /// The file on disk is not what was read: writing would undo someone's change.
    #[error(
        "{path} was changed by another program while credsync was working; nothing was written; try again"
    )]
    Changed { path: String },
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> OpasswdError {
    OpasswdError::Io {
        action,
        path: shown(path),
        source,
    }
}

/// The file's bytes and metadata, `None` if there is no file. Opened without
/// following a symlink, and only a regular file is read.
fn read_current(path: &Path) -> Result<Option<(Vec<u8>, std::fs::Metadata)>, OpasswdError> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(OpasswdError::NotRegular { path: shown(path) });
        }
        Err(e) => return Err(io_error("open", path, e)),
    };
    let meta = file.metadata().map_err(|e| io_error("read", path, e))?;
    if !meta.is_file() {
        return Err(OpasswdError::NotRegular { path: shown(path) });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| io_error("read", path, e))?;
    Ok(Some((bytes, meta)))
}

/// Writes `bytes` to a fresh `temp` with the given owner and mode, fsynced. A
/// leftover `temp` is removed first: the caller holds `/etc/.pwd.lock`, so it
/// is from a writer that crashed (pam_pwhistory's own temporaries are
/// `opasswd.tmpXXXXXX`, never this name).
fn write_temp(temp: &Path, bytes: &[u8], owner: (u32, u32), mode: u32) -> Result<(), OpasswdError> {
    let mut file =
        fresh::create(temp, owner, mode).map_err(|(action, e)| io_error(action, temp, e))?;
    let error = |action| move |e| io_error(action, temp, e);
    file.write_all(bytes).map_err(error("write"))?;
    file.sync_all().map_err(error("write"))?;
    Ok(())
}

/// Removes the temporary file when dropped, unless emptied.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::crypt::{Algorithm, HashMethod};

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    fn hash(field: &str) -> LinuxHash {
        LinuxHash::from_field(field).unwrap()
    }

    fn password(text: &str) -> Password {
        Password::new(text.as_bytes().to_vec()).unwrap()
    }

    /// A real crypt hash of `text` (SHA-512: fast, and what libcrypt checks
    /// like any other method).
    fn crypt_of(text: &str) -> LinuxHash {
        let method = HashMethod {
            algorithm: Algorithm::Sha512,
            rounds: None,
        };
        crypt::hash_password(&password(text), &method).unwrap()
    }

    fn text(file: &OpasswdFile) -> String {
        String::from_utf8(file.to_bytes()).unwrap()
    }

    /// What a user's line holds, as plain strings.
    fn listed(file: &OpasswdFile, name: &str) -> Vec<String> {
        file.hashes(&user(name))
            .into_iter()
            .map(|h| match h {
                OldHash::Field(h) => h.as_str().to_owned(),
                OldHash::Raw(raw) => format!("raw:{}", String::from_utf8_lossy(&raw)),
            })
            .collect()
    }

    const MIXED: &[u8] = b"# history kept by pam_pwhistory\n\
        \n\
        bob:1002:1:$6$b$bob\n\
        \x20 alice:1001:7:$6$a$one,!,$6$a$two # a note\n\
        alice:1001:1:$6$a$second-line\n\
        carol:1003:x:$6$c$bad-count\n\
        weird line without fields\r\n\
        \xff\xfe not utf-8";

    #[test]
    fn parse_and_write_back_are_byte_identical() {
        let cases: [&[u8]; 6] = [
            MIXED,
            b"",
            b"\n",
            b"alice:1001:1:$6$a$one",
            b"alice:1001:1:$6$a$one\n",
            b"a\r\nb\0c\n",
        ];
        for bytes in cases {
            assert_eq!(OpasswdFile::parse(bytes.to_vec()).to_bytes(), bytes);
        }
    }

    #[test]
    fn the_first_well_formed_line_of_a_user_is_the_history() {
        let file = OpasswdFile::parse(MIXED.to_vec());
        // Leading blanks skipped, the comment cut off (the blank before `#`
        // stays part of the last hash, as in pam_pwhistory), `count` ignored.
        assert_eq!(listed(&file, "alice"), ["$6$a$one", "!", "$6$a$two "]);
        assert_eq!(listed(&file, "bob"), ["$6$b$bob"]);
        // `count` must be a number for the line to count at all.
        assert!(listed(&file, "carol").is_empty());
        assert!(listed(&file, "dave").is_empty());
        // A prefix of a name is not the name.
        assert!(listed(&file, "ali").is_empty());
    }

    #[test]
    fn count_is_read_the_way_strtol_reads_it() {
        for ok in ["", "0", "12", " 3", "+4", "-5", "99999999999999999999"] {
            assert!(is_whole_number(ok.as_bytes()), "{ok:?}");
        }
        for bad in [" ", "+", "3 ", "0x5", "x", "1.0"] {
            assert!(!is_whole_number(bad.as_bytes()), "{bad:?}");
        }
        let file = OpasswdFile::parse(b"alice:1001:\nbob:1002\ncarol:1003: 2:h\n".to_vec());
        assert!(listed(&file, "alice").is_empty(), "no fourth field");
        assert!(listed(&file, "bob").is_empty(), "no count field");
        assert_eq!(listed(&file, "carol"), ["h"]);
    }

    #[test]
    fn entries_that_are_no_shadow_field_are_kept_raw() {
        let file = OpasswdFile::parse(b"alice:1001:2:$6$a$one,$6$a$two\r\n".to_vec());
        assert_eq!(listed(&file, "alice"), ["$6$a$one", "raw:$6$a$two\r"]);
    }

    #[test]
    fn a_password_in_the_history_matches_and_locked_entries_never_do() {
        let old = crypt_of("Old#Pass1234");
        let locked = format!("!{}", old.as_str());
        let line = format!("alice:1001:3:!,*,{locked},{}\n", old.as_str());
        let file = OpasswdFile::parse(line.clone().into_bytes());
        assert!(file.matches_any(&password("Old#Pass1234"), &user("alice")));
        assert!(!file.matches_any(&password("New#Pass5678"), &user("alice")));
        assert!(!file.matches_any(&password("Old#Pass1234"), &user("bob")));

        // Only the locked copy: nothing matches.
        let only_locked = format!("alice:1001:3:!,*,{locked}\n");
        let file = OpasswdFile::parse(only_locked.into_bytes());
        assert!(!file.matches_any(&password("Old#Pass1234"), &user("alice")));
    }

    #[test]
    fn a_yescrypt_hash_matches_too() {
        let method = HashMethod {
            algorithm: Algorithm::Yescrypt,
            rounds: None,
        };
        let old = crypt::hash_password(&password("Old#Pass1234"), &method).unwrap();
        let file = OpasswdFile::parse(format!("alice:1001:1:{}\n", old.as_str()).into_bytes());
        assert!(file.matches_any(&password("Old#Pass1234"), &user("alice")));
        assert!(!file.matches_any(&password("Old#Pass1235"), &user("alice")));
    }

    #[test]
    fn save_old_appends_the_replaced_hash_last_and_trims_from_the_front() {
        let mut file = OpasswdFile::default();
        for (i, expected) in [
            "alice:1001:1:h1\n",
            "alice:1001:2:h1,h2\n",
            "alice:1001:3:h1,h2,h3\n",
            "alice:1001:3:h2,h3,h4\n",
            "alice:1001:3:h3,h4,h5\n",
        ]
        .into_iter()
        .enumerate()
        {
            let current = hash(&format!("h{}", i + 1));
            assert!(file.save_old(&user("alice"), 1001, &current, 3));
            assert_eq!(text(&file), expected);
        }
        // A lower `remember` cuts the list at the next save.
        assert!(file.save_old(&user("alice"), 1001, &hash("h6"), 1));
        assert_eq!(text(&file), "alice:1001:1:h6\n");
    }

    #[test]
    fn save_old_does_not_save_the_current_hash_twice() {
        let mut file = OpasswdFile::parse(b"alice:1001:2:h1,h2\n".to_vec());
        assert!(!file.save_old(&user("alice"), 1001, &hash("h2"), 5));
        // Only the last one counts: h1 is saved again.
        assert!(file.save_old(&user("alice"), 1001, &hash("h1"), 5));
        assert_eq!(text(&file), "alice:1001:3:h1,h2,h1\n");
    }

    #[test]
    fn save_old_does_nothing_for_remember_0_or_an_empty_hash() {
        let mut file = OpasswdFile::parse(b"alice:1001:1:h1\n".to_vec());
        assert!(!file.save_old(&user("alice"), 1001, &hash("h2"), 0));
        assert!(!file.save_old(&user("bob"), 1002, &hash(""), 5));
        assert_eq!(text(&file), "alice:1001:1:h1\n");
    }

    #[test]
    fn save_old_saves_locked_hashes_too() {
        let mut file = OpasswdFile::default();
        file.save_old(&user("testu"), 1001, &hash("!"), 5);
        file.save_old(&user("testu"), 1001, &hash("!$y$j9T$s$h"), 5);
        assert_eq!(text(&file), "testu:1001:2:!,!$y$j9T$s$h\n");
    }

    #[test]
    fn save_old_leaves_every_other_line_as_it_was() {
        let mut file = OpasswdFile::parse(MIXED.to_vec());
        assert!(file.save_old(&user("alice"), 1001, &hash("$6$a$now"), 3));
        let expected: &[u8] = b"# history kept by pam_pwhistory\n\
            \n\
            bob:1002:1:$6$b$bob\n\
            alice:1001:3:!,$6$a$two ,$6$a$now\n\
            alice:1001:2:$6$a$second-line,$6$a$now\n\
            carol:1003:x:$6$c$bad-count\n\
            weird line without fields\r\n\
            \xff\xfe not utf-8\n";
        assert_eq!(file.to_bytes(), expected);
    }

    #[test]
    fn save_old_gives_a_new_user_a_line_at_the_end_after_a_newline() {
        let mut file = OpasswdFile::parse(b"bob:1002:1:h0".to_vec());
        assert!(file.save_old(&user("alice"), 1001, &hash("h1"), 5));
        assert_eq!(text(&file), "bob:1002:1:h0\nalice:1001:1:h1\n");

        // The same for a rewrite in the middle of such a file.
        let mut file = OpasswdFile::parse(b"alice:1001:1:h1\nbob:1002:1:h0".to_vec());
        assert!(file.save_old(&user("alice"), 1001, &hash("h2"), 5));
        assert_eq!(text(&file), "alice:1001:2:h1,h2\nbob:1002:1:h0\n");
    }

    #[test]
    fn save_old_keeps_the_uid_field_and_empty_items_as_written() {
        let mut file = OpasswdFile::parse(b"alice:01001:1:h1,\nbob:1002:0:\n".to_vec());
        assert!(file.save_old(&user("alice"), 1001, &hash("h2"), 2));
        assert!(file.save_old(&user("bob"), 1002, &hash("h9"), 2));
        // `h1,` is two items; trimming to 2 drops h1 and keeps the empty one.
        assert_eq!(text(&file), "alice:01001:2:,h2\nbob:1002:1:h9\n");
    }

    /// One password change as pam_pwhistory runs it: save the current hash,
    /// then check the new password. True if the new password is refused.
    fn attempt(file: &mut OpasswdFile, current: &LinuxHash, new: &str, remember: u32) -> bool {
        file.save_old(&user("alice"), 1001, current, remember);
        file.matches_any(&password(new), &user("alice"))
    }

    #[test]
    fn remember_n_refuses_the_current_password_and_the_n_minus_1_before_it() {
        let [a, b, c, d] = [
            "Pw1#abcdefgh",
            "Pw2#abcdefgh",
            "Pw3#abcdefgh",
            "Pw4#abcdefgh",
        ];
        let hashes: Vec<LinuxHash> = [a, b, c, d].iter().map(|p| crypt_of(p)).collect();
        let mut file = OpasswdFile::default();
        // A -> B -> C -> D, each change saving the hash it replaces.
        for (current, next) in hashes.iter().zip([b, c, d]) {
            assert!(!attempt(&mut file, current, next, 3));
        }
        let current = &hashes[3];
        for refused in [d, c, b] {
            assert!(attempt(&mut file.clone(), current, refused, 3), "{refused}");
        }
        // After a refused reuse of B the file holds B, C, D (A dropped, D
        // added), as the research saw pam_pwhistory leave it; A is accepted.
        let mut after = file.clone();
        assert!(attempt(&mut after, current, b, 3));
        assert_eq!(after.hashes(&user("alice")).len(), 3);
        assert!(!after.matches_any(&password(a), &user("alice")));
        assert!(!attempt(&mut file, current, a, 3));
    }

    #[test]
    fn module_arguments_are_read_as_pam_pwhistory_reads_them() {
        let options = |args: &[&str]| PwhistoryOptions::from_module_args(args);
        assert_eq!(
            options(&[]),
            PwhistoryOptions {
                remember: 10,
                enforce_for_root: false
            }
        );
        assert_eq!(
            options(&["use_authtok", "REMEMBER=5", "Enforce_For_Root", "retry=3"]),
            PwhistoryOptions {
                remember: 5,
                enforce_for_root: true
            }
        );
        for (arg, remember) in [
            ("remember=3", 3),
            ("remember= 7", 7),
            ("remember=5x", 5),
            ("remember=x", 0),
            ("remember=", 0),
            ("remember=-2", 0),
            ("remember=401", 400),
            ("remember=99999999999999999999", 0),
            // strtol gives 2^32 + 1; the C int keeps 1.
            ("remember=4294967297", 1),
        ] {
            assert_eq!(options(&[arg]).remember, remember, "{arg}");
        }
        assert_eq!(options(&["remember=2", "remember=6"]).remember, 6);
        assert!(!options(&["enforce_for_root=1"]).enforce_for_root);
    }

    #[test]
    fn a_missing_file_is_an_empty_history_and_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opasswd");
        assert!(listed(&OpasswdFile::read(&path).unwrap(), "alice").is_empty());
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let err = OpasswdFile::read(&path).unwrap_err();
        assert!(matches!(err, OpasswdError::NotRegular { .. }), "{err}");
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_new_file_is_0600_root_and_has_no_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opasswd");
        assert!(record_replaced_hash(&path, &user("alice"), 1001, &hash("h1"), 5).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"alice:1001:1:h1\n");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 0, 0o600)
        );
        assert_eq!(names_in(dir.path()), ["opasswd"]);
    }

    #[test]
    fn a_write_keeps_owner_mode_and_the_previous_version_as_old() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opasswd");
        std::fs::write(&path, b"# kept\nalice:1001:1:h1").unwrap();
        std::os::unix::fs::chown(&path, Some(0), Some(42)).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
        let before = std::fs::metadata(&path).unwrap().ino();

        assert!(record_replaced_hash(&path, &user("alice"), 1001, &hash("h2"), 5).unwrap());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"# kept\nalice:1001:2:h1,h2\n"
        );
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 42, 0o640)
        );
        // The backup is the previous file itself, hard-linked.
        let old = std::fs::metadata(dir.path().join("opasswd.old")).unwrap();
        assert_eq!(old.ino(), before);
        assert_eq!(
            std::fs::read(dir.path().join("opasswd.old")).unwrap(),
            b"# kept\nalice:1001:1:h1"
        );
        assert_eq!(names_in(dir.path()), ["opasswd", "opasswd.old"]);

        // Nothing to save: nothing written, not even the backup.
        assert!(!record_replaced_hash(&path, &user("alice"), 1001, &hash("h2"), 5).unwrap());
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), meta.ino());
    }

    #[test]
    fn a_leftover_temporary_is_replaced_and_none_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opasswd");
        std::fs::write(dir.path().join("opasswd+"), b"half-written").unwrap();
        record_replaced_hash(&path, &user("alice"), 1001, &hash("h1"), 5).unwrap();
        assert_eq!(names_in(dir.path()), ["opasswd"]);
    }

    #[test]
    fn a_file_changed_since_it_was_read_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opasswd");
        let mut stale = OpasswdFile::read(&path).unwrap();
        stale.save_old(&user("alice"), 1001, &hash("h1"), 5);
        // Another program (pam_pwhistory takes no lock) writes meanwhile.
        std::fs::write(&path, b"bob:1002:1:h0\n").unwrap();
        let err = stale.write(&path).unwrap_err();
        assert!(matches!(err, OpasswdError::Changed { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"bob:1002:1:h0\n");

        let mut read = OpasswdFile::read(&path).unwrap();
        let mut copy = read.clone();
        read.save_old(&user("alice"), 1001, &hash("h1"), 5);
        read.write(&path).unwrap();
        // The written file is the base of the next write; an older copy is not.
        read.save_old(&user("alice"), 1001, &hash("h2"), 5);
        read.write(&path).unwrap();
        copy.save_old(&user("carol"), 1003, &hash("h3"), 5);
        assert!(matches!(
            copy.write(&path),
            Err(OpasswdError::Changed { .. })
        ));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"bob:1002:1:h0\nalice:1001:2:h1,h2\n"
        );
        assert_eq!(names_in(dir.path()), ["opasswd", "opasswd.old"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("security/opasswd");
        let err = record_replaced_hash(&path, &user("alice"), 1001, &hash("h1"), 5).unwrap_err();
        assert!(
            matches!(err, OpasswdError::DirectoryMissing { .. }),
            "{err}"
        );
        assert!(!dir.path().join("security").exists());
    }

    #[test]
    fn a_failed_write_leaves_the_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opasswd");
        std::fs::write(&path, b"alice:1001:1:h1\n").unwrap();
        let mut file = OpasswdFile::read(&path).unwrap();
        file.save_old(&user("alice"), 1001, &hash("h2"), 5);
        // A directory where the file should be renamed to: rename fails.
        std::fs::remove_file(&path).unwrap();
        std::fs::create_dir(&path).unwrap();
        assert!(file.write(&path).is_err());
        assert!(path.is_dir());
        assert_eq!(names_in(dir.path()), ["opasswd"]);
    }

    /// The real pam_pwhistory, run by `pamtester` as root in a private mount
    /// namespace: a sandbox's `passwd`, `shadow`, `pam.d` and `security`
    /// bind-mounted over the host's, so its `/etc/security/opasswd` is the
    /// sandbox's file and the host's `/etc` is never touched. The PAM service
    /// holds pam_pwhistory and pam_permit only, so `/etc/shadow` is only read.
    mod real_pam_pwhistory {
        use super::*;
        use std::process::{Command, Stdio};

        const SCRIPT: &str = r#"set -e
d=$1
for f in passwd shadow pam.d security; do
    mount --bind "$d/$f" "/etc/$f" || { echo "cannot bind-mount $d/$f over /etc/$f" >&2; exit 97; }
done
echo sandbox-ready >&2
exec pamtester pwhtest alice chauthtok
"#;

        const UID: u32 = 1001;

        struct Sandbox {
            dir: tempfile::TempDir,
        }

        impl Sandbox {
            /// The history lives in `security/`, which starts empty (no `opasswd`).
            fn new(remember: u32) -> Self {
                let dir = tempfile::tempdir().unwrap();
                let root = dir.path();
                std::fs::write(
                    root.join("passwd"),
                    format!(
                        "root:x:0:0:root:/root:/bin/sh\nalice:x:{UID}:{UID}::/nonexistent:/bin/sh\n"
                    ),
                )
                .unwrap();
                std::fs::create_dir(root.join("pam.d")).unwrap();
                std::fs::write(
                    root.join("pam.d/pwhtest"),
                    format!(
                        "password required pam_pwhistory.so remember={remember} enforce_for_root\n\
                         password required pam_permit.so\n"
                    ),
                )
                .unwrap();
                std::fs::create_dir(root.join("security")).unwrap();
                let sandbox = Sandbox { dir };
                sandbox.set_current(&hash("!"));
                sandbox
            }

            /// alice's hash in the sandbox's shadow: what pam_pwhistory saves.
            fn set_current(&self, current: &LinuxHash) {
                std::fs::write(
                    self.dir.path().join("shadow"),
                    format!(
                        "root:*:19000:0:99999:7:::\nalice:{}:19000:0:99999:7:::\n",
                        current.as_str()
                    ),
                )
                .unwrap();
            }

            fn opasswd(&self) -> PathBuf {
                self.dir.path().join("security/opasswd")
            }

            /// `pamtester pwhtest alice chauthtok` with `new` typed twice:
            /// whether PAM accepted it, and what it printed.
            fn change_to(&self, new: &str) -> (bool, String) {
                let mut child = Command::new("unshare")
                    .args([
                        "--mount",
                        "--propagation",
                        "private",
                        "sh",
                        "-c",
                        SCRIPT,
                        "sh",
                    ])
                    .arg(self.dir.path())
                    .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| {
                        panic!("cannot run unshare (util-linux) for the pam_pwhistory tests: {e}")
                    });
                // A sandbox that failed to start is reported below.
                let _ = child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{new}\n{new}\n").as_bytes());
                let out = child.wait_with_output().unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                assert!(
                    stderr.contains("sandbox-ready"),
                    "these tests need root, a private mount namespace (unshare --mount) \
                     and pamtester; the sandbox could not be built: {stderr}"
                );
                let shown = stderr + &String::from_utf8_lossy(&out.stdout);
                (out.status.success(), shown)
            }
        }

        const FRESH: &str = "Fresh#Pass0000";
        const REUSED: &str = "Password has been already used. Choose another.";

        #[test]
        fn a_history_written_by_pam_pwhistory_is_read_and_matched() {
            let sandbox = Sandbox::new(3);
            sandbox.set_current(&crypt_of("Old#Pass1111"));
            assert!(sandbox.change_to(FRESH).0);
            sandbox.set_current(&crypt_of("Old#Pass2222"));
            assert!(sandbox.change_to(FRESH).0);

            let file = OpasswdFile::read(&sandbox.opasswd()).unwrap();
            assert_eq!(file.hashes(&user("alice")).len(), 2);
            for used in ["Old#Pass1111", "Old#Pass2222"] {
                assert!(file.matches_any(&password(used), &user("alice")), "{used}");
            }
            assert!(!file.matches_any(&password(FRESH), &user("alice")));
        }

        #[test]
        fn a_history_written_here_is_honoured_by_pam_pwhistory() {
            let sandbox = Sandbox::new(3);
            let mut file = OpasswdFile::read(&sandbox.opasswd()).unwrap();
            file.save_old(&user("alice"), UID, &crypt_of("Used#Pass3333"), 3);
            file.write(&sandbox.opasswd()).unwrap();
            sandbox.set_current(&crypt_of("Current#Pass44"));

            let (accepted, shown) = sandbox.change_to("Used#Pass3333");
            assert!(!accepted, "{shown}");
            assert!(shown.contains(REUSED), "{shown}");
            // The current password is refused too: pam_pwhistory saved it first.
            let (accepted, shown) = sandbox.change_to("Current#Pass44");
            assert!(!accepted && shown.contains(REUSED), "{shown}");
            let (accepted, shown) = sandbox.change_to(FRESH);
            assert!(accepted, "{shown}");
        }

        /// The same history file, changed by pam_pwhistory and by `save_old`
        /// step by step, stays byte-identical: trimming, "don't save twice",
        /// a distrusted count, locked hashes, other users, comments.
        #[test]
        fn save_old_writes_what_pam_pwhistory_writes() {
            let sandbox = Sandbox::new(3);
            let start = b"# opasswd\n\
                bob:1002:1:$6$b$bob\n\
                \n\
                \x20 alice:1001:9:!,$6$x$old # note\n\
                alice:1001:1:$6$x$second\n";
            std::fs::write(sandbox.opasswd(), start).unwrap();
            let mut ours = OpasswdFile::parse(start.to_vec());

            let second = crypt_of("Step#Pass0002");
            // The same hash twice in a row is not saved twice.
            let steps = [
                crypt_of("Step#Pass0001"),
                second.clone(),
                second,
                hash("!"),
                crypt_of("Step#Pass0003"),
                crypt_of("Step#Pass0004"),
            ];
            for (i, current) in steps.iter().enumerate() {
                sandbox.set_current(current);
                let (accepted, shown) = sandbox.change_to(FRESH);
                assert!(accepted, "step {i}: {shown}");
                ours.save_old(&user("alice"), UID, current, 3);
                assert_eq!(
                    String::from_utf8_lossy(&std::fs::read(sandbox.opasswd()).unwrap()),
                    String::from_utf8_lossy(&ours.to_bytes()),
                    "step {i}"
                );
            }
        }

        #[test]
        fn a_new_file_is_made_as_pam_pwhistory_makes_it() {
            let current = crypt_of("Old#Pass1111");
            let theirs = Sandbox::new(5);
            theirs.set_current(&current);
            assert!(theirs.change_to(FRESH).0);

            let dir = tempfile::tempdir().unwrap();
            let ours = dir.path().join("opasswd");
            record_replaced_hash(&ours, &user("alice"), UID, &current, 5).unwrap();

            assert_eq!(
                std::fs::read(theirs.opasswd()).unwrap(),
                std::fs::read(&ours).unwrap()
            );
            let mode_owner = |path: &Path| {
                let meta = std::fs::metadata(path).unwrap();
                (meta.mode(), meta.uid(), meta.gid())
            };
            assert_eq!(mode_owner(&theirs.opasswd()), mode_owner(&ours));
        }
    }
}
