//! pam_faillock's failure tally, shared with it: credsync reads and writes the
//! same files, in the same format, under the same lock and by the same rules as
//! Linux-PAM 1.5.2's pam_faillock and `faillock` (`modules/pam_faillock/`), so a
//! failed `verify` and a failed SSH login add up to one lockout, and
//! `faillock --user X` lists both.
//!
//! What it owns:
//! - [`FaillockConf`], `faillock.conf` (and pam_faillock's module arguments)
//!   parsed as `read_config_file`/`set_conf_opt` parse them: `#` comments, `key
//!   value`, `key=value` or `key = value`, the last occurrence wins, a bad value
//!   keeps the previous one, a line of 1023 characters or more refuses the file.
//! - The tally file `DIR/USER`: an array of 64-byte native-endian records
//!   ([`TallyRecord`]), no header. Every access opens it read-write, takes
//!   `flock(LOCK_EX)` for the whole read-modify-write, and gives it to the user
//!   with mode 0660 as `open_tally` does; writing creates the directory (0755,
//!   one level) and the file.
//! - The rules: [`assess`] is `check_tally` (is the user locked, until when),
//!   [`check`] the `preauth` action, [`record_failure`] the `authfail` action
//!   (`write_tally`), [`record_success`] the `authsucc` action, [`reset_tally`]
//!   (and [`reset`], which finds the file and the owner) `faillock --reset`.
//!
//! Guarantees: a failure is never recorded while the user is locked (pam_faillock
//! records none either); records pam_faillock wrote are read as it reads them
//! and written back byte for byte but for what its own rules change; the tally
//! never holds more than 1024 records; every change happens under the lock.
//!
//! Deliberate differences, all on the safe side: the file is opened with
//! `O_NOFOLLOW` and must be a regular file; the wait for the lock is bounded
//! ([`LOCK_WAIT`]) instead of endless; a tally that cannot be opened for lack of
//! permission is an error (pam_faillock treats it as "not locked" and records
//! nothing); the directory gets mode 0755 whatever the umask.
#![forbid(unsafe_code)]

use super::Paths;
use super::passwd::{GroupEntry, PasswdEntry, read_passwd};
use crate::account::UserName;
use crate::clock::Now;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fmt;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// pam_faillock's tally directory when `faillock.conf` names none.
pub const DEFAULT_DIR: &str = "/var/run/faillock";

/// The source credsync writes into its records; `faillock` shows it with type
/// `SVC`, like the PAM service name pam_faillock writes.
pub const CREDSYNC_SOURCE: &str = "credsync";

/// How long credsync waits for another program's lock on a tally.
/// pam_faillock holds it for microseconds; it would wait forever.
pub const LOCK_WAIT: Duration = Duration::from_secs(15);

/// pam_faillock's upper bound for every time setting (`MAX_TIME_INTERVAL`).
const MAX_TIME_INTERVAL: u32 = 604_800;
/// `FAILLOCK_CONF_MAX_LINELEN`: `fgets` into a buffer one byte larger.
const MAX_LINE_LEN: usize = 1023;
/// `MAX_RECORDS`: the most records read from, or kept in, a tally.
const MAX_RECORDS: usize = 1024;
const SOURCE_LEN: usize = 52;

const STATUS_VALID: u16 = 0x1;
const STATUS_RHOST: u16 = 0x2;
const STATUS_TTY: u16 = 0x4;

// ---------------------------------------------------------------------------
// faillock.conf

/// pam_faillock's settings. `Default` is its built-in defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaillockConf {
    /// The tally directory, an absolute path (pam_faillock refuses others).
    pub dir: PathBuf,
    /// Failures that lock the account; 0 never locks.
    pub deny: u16,
    /// Seconds within which failures count together (at most 604800).
    pub fail_interval: u32,
    /// Seconds a lock lasts after the latest failure; 0 (`never`): until reset.
    pub unlock_time: u32,
    /// The same for root and `admin_group` members; `None` follows `unlock_time`.
    pub root_unlock_time: Option<u32>,
    /// Members of this group are treated like root; empty: no such group.
    /// (Bytes that are not UTF-8 are replaced.)
    pub admin_group: String,
    /// Root and `admin_group` members are locked too.
    pub even_deny_root: bool,
    pub audit: bool,
    pub silent: bool,
    pub no_log_info: bool,
    /// pam_faillock skips users that are not in `/etc/passwd`.
    pub local_users_only: bool,
    pub nodelay: bool,
}

impl Default for FaillockConf {
    fn default() -> Self {
        FaillockConf {
            dir: PathBuf::from(DEFAULT_DIR),
            deny: 3,
            fail_interval: 900,
            unlock_time: 600,
            root_unlock_time: None,
            admin_group: String::new(),
            even_deny_root: false,
            audit: false,
            silent: false,
            no_log_info: false,
            local_users_only: false,
            nodelay: false,
        }
    }
}

/// A setting pam_faillock ignores (it logs these to syslog and carries on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfNote {
    UnknownOption(String),
    /// A value that is not a number in range; the previous value stays.
    BadNumber {
        key: &'static str,
        value: String,
    },
    /// A `dir` that is not an absolute path; the previous one stays.
    RelativeDir(String),
}

impl fmt::Display for ConfNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfNote::UnknownOption(key) => {
                write!(f, "unknown option '{}' ignored", key.escape_default())
            }
            ConfNote::BadNumber { key, value } => write!(
                f,
                "'{}' is not a valid {key}; the previous value stays",
                value.escape_default()
            ),
            ConfNote::RelativeDir(value) => write!(
                f,
                "dir '{}' is not an absolute path; the previous directory stays",
                value.escape_default()
            ),
        }
    }
}

/// A line pam_faillock's reader cannot take: it then fails every login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line {line} is longer than the 1022 characters pam_faillock accepts")]
pub struct LineTooLong {
    pub line: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: {source}; pam_faillock refuses the whole file, so logins through it fail; shorten the line",
        path.display()
    )]
    TooLong { path: PathBuf, source: LineTooLong },
}

impl FaillockConf {
    /// The settings in the file at `path` (`faillock.conf`), on top of the
    /// defaults. A missing file is the defaults, as for pam_faillock's default
    /// file.
    pub fn load(path: &Path) -> Result<Self, ConfError> {
        Self::default().load_over(path)
    }

    /// [`load`](Self::load) on top of these settings instead of the defaults
    /// (see [`parse_over`](Self::parse_over)); a missing file changes nothing.
    pub fn load_over(self, path: &Path) -> Result<Self, ConfError> {
        match std::fs::read(path) {
            Ok(text) => self
                .parse_over(&text)
                .map(|(conf, _)| conf)
                .map_err(|source| ConfError::TooLong {
                    path: path.to_path_buf(),
                    source,
                }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(self),
            Err(source) => Err(ConfError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The settings in a `faillock.conf` text, on top of the defaults.
    pub fn parse(text: &[u8]) -> Result<Self, LineTooLong> {
        Self::parse_noting(text).map(|(conf, _)| conf)
    }

    /// [`parse`](Self::parse), with the settings pam_faillock would ignore.
    pub fn parse_noting(text: &[u8]) -> Result<(Self, Vec<ConfNote>), LineTooLong> {
        Self::default().parse_over(text)
    }

    /// The settings in a `faillock.conf` text on top of these instead of
    /// pam_faillock's defaults: what the text does not set (or sets to a
    /// value pam_faillock refuses) keeps its value here.
    pub fn parse_over(self, text: &[u8]) -> Result<(Self, Vec<ConfNote>), LineTooLong> {
        let mut conf = self;
        let mut notes = Vec::new();
        for line in config_lines(text)? {
            if let Some((key, value)) = split_setting(line) {
                conf.set(key, value, &mut notes);
            }
        }
        Ok((conf, notes))
    }

    /// Module arguments of a `pam_faillock.so` line, which override the file
    /// (`args_parse`): `key=value` or a bare flag; `preauth`, `authfail`,
    /// `authsucc` and the last `conf=` are not settings.
    pub fn apply_module_args<'a>(
        &mut self,
        args: impl IntoIterator<Item = &'a str>,
    ) -> Vec<ConfNote> {
        let args: Vec<&[u8]> = args.into_iter().map(str::as_bytes).collect();
        let conf_index = args.iter().rposition(|a| a.starts_with(b"conf="));
        let mut notes = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            if Some(i) == conf_index || matches!(*arg, b"preauth" | b"authfail" | b"authsucc") {
                continue;
            }
            // Copied into a buffer of 1023 characters first.
            let arg = &arg[..arg.len().min(MAX_LINE_LEN)];
            let (key, value) = match arg.iter().position(|&b| b == b'=') {
                Some(eq) => (&arg[..eq], &arg[eq + 1..]),
                None => (arg, &b""[..]),
            };
            self.set(key, value, &mut notes);
        }
        notes
    }

    /// The file a `pam_faillock.so` line reads instead of the default: its
    /// last `conf=` argument.
    pub fn module_conf_file<'a>(args: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        args.into_iter()
            .filter_map(|a| a.strip_prefix("conf="))
            .last()
    }

    /// `set_conf_opt`.
    fn set(&mut self, key: &[u8], value: &[u8], notes: &mut Vec<ConfNote>) {
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let bad = |key: &'static str| ConfNote::BadNumber {
            key,
            value: text(value),
        };
        match key {
            b"dir" => {
                if value.first() == Some(&b'/') {
                    self.dir = PathBuf::from(std::ffi::OsStr::from_bytes(value));
                } else {
                    notes.push(ConfNote::RelativeDir(text(value)));
                }
            }
            // `sscanf("%hu")`: C's conversion wraps, it does not refuse.
            b"deny" => match scan_unsigned(value) {
                Some(n) => self.deny = n as u16,
                None => notes.push(bad("deny")),
            },
            b"fail_interval" => match bounded_seconds(value) {
                Some(n) => self.fail_interval = n,
                None => notes.push(bad("fail_interval")),
            },
            b"unlock_time" => match time_setting(value) {
                Some(n) => self.unlock_time = n,
                None => notes.push(bad("unlock_time")),
            },
            b"root_unlock_time" => match time_setting(value) {
                Some(n) => self.root_unlock_time = Some(n),
                None => notes.push(bad("root_unlock_time")),
            },
            b"admin_group" => self.admin_group = text(value),
            b"even_deny_root" => self.even_deny_root = true,
            b"audit" => self.audit = true,
            b"silent" => self.silent = true,
            b"no_log_info" => self.no_log_info = true,
            b"local_users_only" => self.local_users_only = true,
            b"nodelay" => self.nodelay = true,
            _ => notes.push(ConfNote::UnknownOption(text(key))),
        }
    }

    /// Whether the user `uid` is treated like root: uid 0, or a member of
    /// `admin_group` (`pam_modutil_user_in_group_uid_nam`: the first account
    /// with that uid has the group as its primary group or is listed in the
    /// first group of that name).
    pub fn is_admin(&self, uid: u32, passwd: &[PasswdEntry], groups: &[GroupEntry]) -> bool {
        if uid == 0 {
            return true;
        }
        if self.admin_group.is_empty() {
            return false;
        }
        let Some(account) = passwd.iter().find(|a| a.uid == uid) else {
            return false;
        };
        groups
            .iter()
            .find(|g| g.name == self.admin_group)
            .is_some_and(|g| g.gid == account.gid || g.members.contains(&account.name))
    }

    /// The lock time for root and `admin_group` members.
    pub fn admin_unlock_time(&self) -> u32 {
        self.root_unlock_time.unwrap_or(self.unlock_time)
    }

    /// `user`'s tally file: `dir/user`, taken under the root.
    pub fn tally_path(&self, paths: &Paths, user: &UserName) -> PathBuf {
        paths
            .under_root(&self.dir.to_string_lossy())
            .join(user.as_str())
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The lines `read_config_file` sees: cut by `fgets` into a 1024-byte buffer
/// and by `strlen`, or the number of the line it refuses.
fn config_lines(text: &[u8]) -> Result<Vec<&[u8]>, LineTooLong> {
    let mut lines = Vec::new();
    let mut rest = text;
    let mut number = 1;
    while !rest.is_empty() {
        let window = &rest[..rest.len().min(MAX_LINE_LEN)];
        let piece = match window.iter().position(|&b| b == b'\n') {
            Some(nl) => &window[..=nl],
            None => window,
        };
        rest = &rest[piece.len()..];
        // fgets sets end-of-file only when it tried to read past the end.
        let at_eof = rest.is_empty() && piece.len() < MAX_LINE_LEN;
        let line = match piece.iter().position(|&b| b == 0) {
            Some(nul) => &piece[..nul],
            None => piece,
        };
        if line.last().is_some_and(|&b| b != b'\n') && !at_eof {
            return Err(LineTooLong { line: number });
        }
        lines.push(line);
        if piece.ends_with(b"\n") {
            number += 1;
        }
    }
    Ok(lines)
}

/// A line's key and value, or `None` for a blank or comment line.
fn split_setting(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let line = match line.iter().position(|&b| b == b'#') {
        Some(hash) => &line[..hash],
        None => line,
    };
    let end = line.iter().rposition(|&b| !is_c_space(b))? + 1;
    let start = line.iter().position(|&b| !is_c_space(b))?;
    let line = &line[start..end];

    let key_end = line
        .iter()
        .position(|&b| is_c_space(b) || b == b'=')
        .unwrap_or(line.len());
    let key = &line[..key_end];
    let mut eq = line.get(key_end) == Some(&b'=');
    let mut at = (key_end + 1).min(line.len());
    // Skip blanks and at most one `=`.
    while let Some(&b) = line.get(at) {
        if b == b'=' && !eq {
            eq = true;
        } else if !is_c_space(b) {
            break;
        }
        at += 1;
    }
    Some((key, &line[at..]))
}

/// glibc's `sscanf("%u")`: blanks, an optional sign, decimal digits, anything
/// after them ignored; the digits go through `strtoul` (64 bits, `ULONG_MAX`
/// on overflow, a `-` negates modulo 2^64), the caller truncates.
fn scan_unsigned(value: &[u8]) -> Option<u64> {
    let start = value.iter().position(|&b| !is_c_space(b))?;
    let mut rest = &value[start..];
    let negative = rest.first() == Some(&b'-');
    if matches!(rest.first(), Some(b'-' | b'+')) {
        rest = &rest[1..];
    }
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut n: u64 = 0;
    for &d in &rest[..digits] {
        match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
        {
            Some(next) => n = next,
            None => return Some(u64::MAX),
        }
    }
    Some(if negative { n.wrapping_neg() } else { n })
}

/// `sscanf("%u")` into an `unsigned int`, at most [`MAX_TIME_INTERVAL`].
fn bounded_seconds(value: &[u8]) -> Option<u32> {
    let n = scan_unsigned(value)? as u32;
    (n <= MAX_TIME_INTERVAL).then_some(n)
}

/// `unlock_time` and `root_unlock_time`: `never` is 0.
fn time_setting(value: &[u8]) -> Option<u32> {
    if value == b"never" {
        Some(0)
    } else {
        bounded_seconds(value)
    }
}

// ---------------------------------------------------------------------------
// Records

/// One failure: pam_faillock's `struct tally`, 64 bytes in native byte order:
/// `source[52]`, `reserved: u16`, `status: u16`, `time: u64`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TallyRecord {
    source: [u8; SOURCE_LEN],
    reserved: u16,
    status: u16,
    time: u64,
}

/// What a record's source names (`faillock` prints RHOST, TTY or SVC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    RemoteHost,
    Terminal,
    Service,
}

impl TallyRecord {
    pub const SIZE: usize = 64;

    /// A valid failure from a service (credsync writes [`CREDSYNC_SOURCE`]).
    /// The source is cut at 52 bytes, with no NUL then, as `strncpy` does.
    pub fn service_failure(source: &str, time: u64) -> Self {
        let mut bytes = [0; SOURCE_LEN];
        let src = source.as_bytes();
        let src = match src.iter().position(|&b| b == 0) {
            Some(nul) => &src[..nul],
            None => src,
        };
        let n = src.len().min(SOURCE_LEN);
        bytes[..n].copy_from_slice(&src[..n]);
        TallyRecord {
            source: bytes,
            reserved: 0,
            status: STATUS_VALID,
            time,
        }
    }

    pub fn from_bytes(bytes: &[u8; Self::SIZE]) -> Self {
        let mut source = [0; SOURCE_LEN];
        source.copy_from_slice(&bytes[..SOURCE_LEN]);
        TallyRecord {
            source,
            reserved: u16::from_ne_bytes([bytes[52], bytes[53]]),
            status: u16::from_ne_bytes([bytes[54], bytes[55]]),
            time: u64::from_ne_bytes(bytes[56..64].try_into().unwrap_or([0; 8])),
        }
    }

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut bytes = [0; Self::SIZE];
        bytes[..SOURCE_LEN].copy_from_slice(&self.source);
        bytes[52..54].copy_from_slice(&self.reserved.to_ne_bytes());
        bytes[54..56].copy_from_slice(&self.status.to_ne_bytes());
        bytes[56..64].copy_from_slice(&self.time.to_ne_bytes());
        bytes
    }

    /// The failure still counts (`faillock` shows `V`, else `I`).
    pub fn is_valid(&self) -> bool {
        self.status & STATUS_VALID != 0
    }

    /// Seconds since the epoch.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// The source up to its first NUL (at most 52 bytes).
    pub fn source(&self) -> &[u8] {
        let end = self
            .source
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(SOURCE_LEN);
        &self.source[..end]
    }

    pub fn origin(&self) -> Origin {
        if self.status & STATUS_RHOST != 0 {
            Origin::RemoteHost
        } else if self.status & STATUS_TTY != 0 {
            Origin::Terminal
        } else {
            Origin::Service
        }
    }
}

impl fmt::Debug for TallyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TallyRecord")
            .field("source", &String::from_utf8_lossy(self.source()))
            .field("reserved", &self.reserved)
            .field("status", &self.status)
            .field("time", &self.time)
            .finish()
    }
}

/// Records from a tally's bytes, as `read_tally` takes them: at most the first
/// 1024, a trailing partial record ignored.
fn decode(bytes: &[u8]) -> Vec<TallyRecord> {
    bytes
        .chunks_exact(TallyRecord::SIZE)
        .take(MAX_RECORDS)
        .filter_map(|chunk| chunk.try_into().ok().map(TallyRecord::from_bytes))
        .collect()
}

/// A tally's bytes, as `update_tally` writes them: the last 1024 records.
fn encode(records: &[TallyRecord]) -> Vec<u8> {
    let kept = &records[records.len().saturating_sub(MAX_RECORDS)..];
    kept.iter().flat_map(TallyRecord::to_bytes).collect()
}

// ---------------------------------------------------------------------------
// The rules

/// A lock in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Locked up to and including this second (since the epoch).
    Until(u64),
    /// `unlock_time` is 0 (`never`): locked until an administrator resets it.
    UntilReset,
}

impl Lock {
    /// The minutes pam_faillock tells a locked user are left, rounded up; none
    /// when the lock has no end or ends within this second.
    pub fn minutes_left(&self, now: Now) -> Option<u64> {
        match *self {
            Lock::Until(until) => {
                let left = until.checked_sub(now_secs(now)).filter(|&s| s > 0)?;
                Some(left.div_ceil(60))
            }
            Lock::UntilReset => None,
        }
    }
}

/// How a user's tally stands (`check_tally`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    /// Valid failures less than `fail_interval` before the latest one: the
    /// count pam_faillock compares with `deny` and shows a locked user.
    /// Counted for root and admins too, though they are not locked.
    pub failures: u32,
    /// The time of the latest valid failure.
    pub latest: Option<u64>,
    /// `Some` while the user is locked out.
    pub lock: Option<Lock>,
    /// The count reached `deny` but the lock has run out: the next failure
    /// invalidates every earlier one and starts a new count.
    pub lock_expired: bool,
}

/// Whether `records` lock the user out at `now`: `check_tally`. The count is
/// taken back from the latest failure, not from now; the lock lasts
/// `unlock_time` after that failure (`admin_unlock_time` for root and admins,
/// who are locked only with `even_deny_root`). Arithmetic wraps as in C.
pub fn assess(
    records: &[TallyRecord],
    now: Now,
    conf: &FaillockConf,
    is_admin: bool,
) -> Assessment {
    let latest = records
        .iter()
        .filter(|r| r.is_valid())
        .map(|r| r.time)
        .max();
    let latest_time = latest.unwrap_or(0);
    let failures = records
        .iter()
        .filter(|r| {
            r.is_valid() && latest_time.wrapping_sub(r.time) < u64::from(conf.fail_interval)
        })
        .count();
    let failures = u32::try_from(failures).unwrap_or(u32::MAX);
    let mut assessment = Assessment {
        failures,
        latest,
        lock: None,
        lock_expired: false,
    };
    if is_admin && !conf.even_deny_root {
        return assessment;
    }
    if conf.deny != 0 && failures >= u32::from(conf.deny) {
        let lasts = if is_admin {
            conf.admin_unlock_time()
        } else {
            conf.unlock_time
        };
        let until = latest_time.wrapping_add(u64::from(lasts));
        if lasts != 0 && until < now_secs(now) {
            assessment.lock_expired = true;
        } else if lasts == 0 {
            assessment.lock = Some(Lock::UntilReset);
        } else {
            assessment.lock = Some(Lock::Until(until));
        }
    }
    assessment
}

/// The lock in force, if any: [`assess`]'s `lock`.
pub fn lock_state(
    records: &[TallyRecord],
    now: Now,
    conf: &FaillockConf,
    is_admin: bool,
) -> Option<Lock> {
    assess(records, now, conf, is_admin).lock
}

/// Adds a failure to `records` as `write_tally` does, and returns the count it
/// compares with `deny`. Failures older than `fail_interval` (or all of them,
/// after an expired lock) stop counting; the new one takes the slot of the
/// oldest record if that one no longer counts, else it is appended.
fn add_failure(
    records: &mut Vec<TallyRecord>,
    now: u64,
    fail_interval: u32,
    lock_expired: bool,
    source: &str,
) -> u32 {
    let mut oldest_time = 0;
    let mut oldest = 0;
    let mut failures: u32 = 0;
    for (i, record) in records.iter_mut().enumerate() {
        // A record with time 0 is never "the oldest": C uses 0 as "unset".
        if oldest_time == 0 || record.time < oldest_time {
            oldest_time = record.time;
            oldest = i;
        }
        if lock_expired || now.wrapping_sub(record.time) >= u64::from(fail_interval) {
            record.status &= !STATUS_VALID;
        } else {
            failures += 1;
        }
    }
    let failure = TallyRecord::service_failure(source, now);
    match records.get_mut(oldest) {
        Some(slot) if !slot.is_valid() => *slot = failure,
        _ => records.push(failure),
    }
    failures + 1
}

// ---------------------------------------------------------------------------
// The file

#[derive(Debug, thiserror::Error)]
pub enum TallyError {
    #[error("cannot open the failure tally {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the failure tally {} is not a regular file; remove it", path.display())]
    NotRegular { path: PathBuf },
    #[error("the failure tally {} is locked by another program; try again", path.display())]
    Busy { path: PathBuf },
    #[error("cannot lock the failure tally {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the failure tally {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the failure tally {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A tally file, open and `flock`ed until dropped.
struct OpenTally<'p> {
    file: Flock<File>,
    path: &'p Path,
}

impl<'p> OpenTally<'p> {
    /// `open_tally`: `None` if the file does not exist and `create` is false.
    fn open(path: &'p Path, owner: u32, create: bool) -> Result<Option<Self>, TallyError> {
        if create {
            create_dir(path);
        }
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .mode(0o660)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound && !create => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(TallyError::NotRegular {
                    path: path.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(TallyError::Open {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let meta = file.metadata().map_err(|source| TallyError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.is_file() {
            return Err(TallyError::NotRegular {
                path: path.to_path_buf(),
            });
        }
        let file = lock(file, path)?;
        // Like pam_faillock, after locking and ignoring failures: the file
        // belongs to the user, and root's group may write it.
        let meta = file.metadata().map_err(|source| TallyError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if meta.uid() != owner {
            let _ = std::os::unix::fs::fchown(&*file, Some(owner), None);
        }
        if meta.mode() & 0o020 == 0 {
            let _ = file.set_permissions(Permissions::from_mode(0o660));
        }
        Ok(Some(OpenTally { file, path }))
    }

    /// `open_tally` with `create`.
    fn create(path: &'p Path, owner: u32) -> Result<Self, TallyError> {
        // With `create`, a missing file is an error of `open`, never `None`.
        Self::open(path, owner, true)?.ok_or_else(|| TallyError::Open {
            path: path.to_path_buf(),
            source: ErrorKind::NotFound.into(),
        })
    }

    /// `read_tally`.
    fn read(&mut self) -> Result<Vec<TallyRecord>, TallyError> {
        let mut bytes = Vec::new();
        let limit = (MAX_RECORDS * TallyRecord::SIZE) as u64;
        (&*self.file)
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|source| TallyError::Read {
                path: self.path.to_path_buf(),
                source,
            })?;
        Ok(decode(&bytes))
    }

    /// `update_tally`.
    fn write(&mut self, records: &[TallyRecord]) -> Result<(), TallyError> {
        let bytes = encode(records);
        let write = |file: &mut File| -> std::io::Result<()> {
            file.seek(SeekFrom::Start(0))?;
            file.write_all(&bytes)?;
            file.set_len(bytes.len() as u64)
        };
        write(&mut self.file).map_err(|source| TallyError::Write {
            path: self.path.to_path_buf(),
            source,
        })
    }

    fn truncate(&mut self) -> Result<(), TallyError> {
        self.file.set_len(0).map_err(|source| TallyError::Write {
            path: self.path.to_path_buf(),
            source,
        })
    }
}

/// pam_faillock creates the tally directory, one level, when it is missing;
/// failures show up when the file is opened.
fn create_dir(path: &Path) {
    let Some(dir) = path.parent() else { return };
    if dir.as_os_str().is_empty() || dir.exists() {
        return;
    }
    if std::fs::DirBuilder::new().mode(0o755).create(dir).is_ok() {
        // credsync runs with umask 077; pam_faillock's 0755 is meant.
        let _ = std::fs::set_permissions(dir, Permissions::from_mode(0o755));
    }
}

/// `flock(LOCK_EX)`, waiting at most [`LOCK_WAIT`].
fn lock(file: File, path: &Path) -> Result<Flock<File>, TallyError> {
    let deadline = Instant::now() + LOCK_WAIT;
    let mut file = file;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => return Ok(locked),
            Err((f, Errno::EINTR)) => file = f,
            Err((f, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = f;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(TallyError::Busy {
                    path: path.to_path_buf(),
                });
            }
            Err((_, errno)) => {
                return Err(TallyError::Lock {
                    path: path.to_path_buf(),
                    source: errno.into(),
                });
            }
        }
    }
}

fn now_secs(now: Now) -> u64 {
    // `time(NULL)` stored in a uint64_t.
    now.unix_secs.cast_unsigned()
}

/// The records of the tally at `path` (none if there is no file). Like every
/// access by pam_faillock or `faillock`, this gives the file to `owner` (the
/// user's uid) with mode 0660.
pub fn read_records(path: &Path, owner: u32) -> Result<Vec<TallyRecord>, TallyError> {
    match OpenTally::open(path, owner, false)? {
        Some(mut tally) => tally.read(),
        None => Ok(Vec::new()),
    }
}

/// Whether the user is locked out (pam_faillock's `preauth`): [`assess`] on
/// the tally at `path`. A missing tally is no failure.
pub fn check(
    path: &Path,
    owner: u32,
    now: Now,
    conf: &FaillockConf,
    is_admin: bool,
) -> Result<Assessment, TallyError> {
    Ok(assess(&read_records(path, owner)?, now, conf, is_admin))
}

/// What [`record_failure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Nothing recorded: the user was already locked out.
    AlreadyLocked(Assessment),
    Recorded {
        /// The tally after the failure.
        after: Assessment,
        /// This failure is the `deny`th: pam_faillock logs "Consecutive login
        /// failures for user X account temporarily locked" at this point.
        reached_deny: bool,
    },
}

/// Records a failed password check for the user of the tally at `path`
/// (pam_faillock's `authfail`), with `source` as the service, creating the
/// directory and file if needed. `owner` is the user's uid; `is_admin` is
/// true for uid 0 and members of `conf.admin_group`.
pub fn record_failure(
    path: &Path,
    owner: u32,
    now: Now,
    conf: &FaillockConf,
    is_admin: bool,
    source: &str,
) -> Result<FailureOutcome, TallyError> {
    let mut tally = OpenTally::create(path, owner)?;
    let mut records = tally.read()?;
    let before = assess(&records, now, conf, is_admin);
    if before.lock.is_some() {
        return Ok(FailureOutcome::AlreadyLocked(before));
    }
    let failures = add_failure(
        &mut records,
        now_secs(now),
        conf.fail_interval,
        before.lock_expired,
        source,
    );
    tally.write(&records)?;
    let kept = &records[records.len().saturating_sub(MAX_RECORDS)..];
    Ok(FailureOutcome::Recorded {
        after: assess(kept, now, conf, is_admin),
        reached_deny: conf.deny != 0 && failures == u32::from(conf.deny),
    })
}

/// A successful password check (pam_faillock's `authsucc`): unless the user
/// is locked out, the tally is emptied (an empty one is created if there is
/// none, as pam_faillock does). Returns the tally as it stood before.
pub fn record_success(
    path: &Path,
    owner: u32,
    now: Now,
    conf: &FaillockConf,
    is_admin: bool,
) -> Result<Assessment, TallyError> {
    let assessment = match OpenTally::open(path, owner, false)? {
        Some(mut tally) => {
            let assessment = assess(&tally.read()?, now, conf, is_admin);
            if assessment.lock.is_none() {
                tally.truncate()?;
            }
            assessment
        }
        None => {
            OpenTally::create(path, owner)?;
            assess(&[], now, conf, is_admin)
        }
    };
    Ok(assessment)
}

/// Clears the tally at `path`, as `faillock --reset --user X` does: under its
/// lock, giving it to `owner` (the user's uid, or 0 for a name without an
/// account). A missing file means there is nothing to clear.
pub fn reset_tally(path: &Path, owner: u32) -> Result<(), TallyError> {
    match OpenTally::open(path, owner, false)? {
        Some(mut tally) => tally.truncate(),
        None => Ok(()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FaillockError {
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(transparent)]
    Tally(#[from] TallyError),
    #[error("cannot read {}: {source}", path.display())]
    Accounts {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Clears `user`'s tally under `paths`, as `faillock --reset --user USER`:
/// the directory from faillock.conf, the owner from `/etc/passwd` (uid 0 for a
/// name without an account, as `faillock` does).
pub fn reset(paths: &Paths, user: &UserName) -> Result<(), FaillockError> {
    let conf = FaillockConf::load(&paths.faillock_conf())?;
    let passwd = paths.passwd();
    let accounts = read_passwd(&passwd).map_err(|source| FaillockError::Accounts {
        path: passwd.clone(),
        source,
    })?;
    let owner = accounts
        .iter()
        .find(|a| a.name == user.as_str())
        .map_or(0, |a| a.uid);
    Ok(reset_tally(&conf.tally_path(paths, user), owner)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const T0: u64 = 1_795_651_200; // 2026-11-26T00:00:00Z

    fn at(secs: u64) -> Now {
        Now::at(i64::try_from(secs).unwrap())
    }

    fn conf(text: &str) -> FaillockConf {
        FaillockConf::parse(text.as_bytes()).unwrap()
    }

    fn failure(time: u64) -> TallyRecord {
        TallyRecord::service_failure(CREDSYNC_SOURCE, time)
    }

    fn invalid(time: u64) -> TallyRecord {
        let mut record = failure(time);
        record.status &= !STATUS_VALID;
        record
    }

    // --- faillock.conf -----------------------------------------------------

    #[test]
    fn without_settings_the_defaults_are_pam_faillocks() {
        let debian = "# Configuration for locking the user after multiple failed\n\
                      # authentication attempts.\n#\n# dir = /var/run/faillock\n\
                      # deny = 3\n#\n# fail_interval = 900\n";
        for text in ["", "\n\n  \t\n", debian] {
            let conf = conf(text);
            assert_eq!(conf, FaillockConf::default());
            assert_eq!(conf.dir, Path::new("/var/run/faillock"));
            assert_eq!(
                (conf.deny, conf.fail_interval, conf.unlock_time),
                (3, 900, 600)
            );
            assert_eq!(conf.admin_unlock_time(), 600);
            assert!(!conf.even_deny_root && conf.admin_group.is_empty());
        }
    }

    #[test]
    fn a_key_and_its_value_may_be_separated_by_blanks_an_equals_sign_or_both() {
        for line in [
            "dir /a",
            "dir=/a",
            "dir = /a",
            "dir= /a",
            "dir =/a",
            "dir\t=\t/a",
            "  \tdir\t/a \t # a comment",
            "dir /a\r",
            "dir=/a#/b",
        ] {
            assert_eq!(conf(line).dir, Path::new("/a"), "{line:?}");
        }
        // Everything after the separator is the value, blanks inside included.
        assert_eq!(conf("admin_group =  wheel ops ").admin_group, "wheel ops");
    }

    #[test]
    fn the_last_occurrence_wins_and_comments_count_for_nothing() {
        let conf = conf("# deny = 9\ndeny = 4\ndir = /a\ndeny 5 # was 4\ndir=/b\n#dir=/c\n");
        assert_eq!(conf.deny, 5);
        assert_eq!(conf.dir, Path::new("/b"));
    }

    #[test]
    fn a_bad_value_keeps_the_previous_one() {
        let text = "deny = 5\ndeny = x\ndeny\ndeny==4\n\
                    dir = /a\ndir = relative\ndir\n\
                    fail_interval = 604800\nfail_interval = 604801\nfail_interval = -\n\
                    unlock_time = 1800\nunlock_time = 604801\nunlock_time = Never\n\
                    root_unlock_time = 60\nroot_unlock_time = soon\n";
        let (conf, notes) = FaillockConf::parse_noting(text.as_bytes()).unwrap();
        assert_eq!(conf.deny, 5);
        assert_eq!(conf.dir, Path::new("/a"));
        assert_eq!(conf.fail_interval, 604_800);
        assert_eq!(conf.unlock_time, 1800);
        assert_eq!(conf.root_unlock_time, Some(60));
        assert_eq!(
            notes,
            [
                ConfNote::BadNumber {
                    key: "deny",
                    value: "x".into()
                },
                ConfNote::BadNumber {
                    key: "deny",
                    value: "".into()
                },
                ConfNote::BadNumber {
                    key: "deny",
                    value: "=4".into()
                },
                ConfNote::RelativeDir("relative".into()),
                ConfNote::RelativeDir("".into()),
                ConfNote::BadNumber {
                    key: "fail_interval",
                    value: "604801".into()
                },
                ConfNote::BadNumber {
                    key: "fail_interval",
                    value: "-".into()
                },
                ConfNote::BadNumber {
                    key: "unlock_time",
                    value: "604801".into()
                },
                ConfNote::BadNumber {
                    key: "unlock_time",
                    value: "Never".into()
                },
                ConfNote::BadNumber {
                    key: "root_unlock_time",
                    value: "soon".into()
                },
            ]
        );
        assert_eq!(
            notes[0].to_string(),
            "'x' is not a valid deny; the previous value stays"
        );
    }

    #[test]
    fn numbers_are_read_as_glibc_sscanf_reads_them() {
        // Checked against glibc 2.36's sscanf("%hu") and sscanf("%u").
        let cases: &[(&str, Option<u16>, Option<u32>)] = &[
            ("5", Some(5), Some(5)),
            ("+5", Some(5), Some(5)),
            ("-1", Some(65535), Some(4_294_967_295)),
            ("-0", Some(0), Some(0)),
            ("65536", Some(0), Some(65536)),
            ("65539", Some(3), Some(65539)),
            ("5abc", Some(5), Some(5)),
            ("0x10", Some(0), Some(0)),
            ("1e3", Some(1), Some(1)),
            ("00012", Some(12), Some(12)),
            ("\u{b}3", Some(3), Some(3)),
            ("4294967297", Some(1), Some(1)),
            ("99999999999999999999999", Some(65535), Some(4_294_967_295)),
            ("-99999999999999999999999", Some(65535), Some(4_294_967_295)),
            ("-18446744073709551615", Some(1), Some(1)),
            ("", None, None),
            ("+", None, None),
            ("-", None, None),
            ("- 5", None, None),
        ];
        for &(value, hu, u) in cases {
            let scanned = scan_unsigned(value.as_bytes());
            assert_eq!(scanned.map(|n| n as u16), hu, "%hu of {value:?}");
            assert_eq!(scanned.map(|n| n as u32), u, "%u of {value:?}");
        }
        // So pam_faillock takes these, and credsync with it.
        assert_eq!(conf("deny=-1").deny, 65535);
        assert_eq!(conf("deny 65539").deny, 3);
        assert_eq!(conf("fail_interval=4294967297").fail_interval, 1);
    }

    #[test]
    fn unlock_times_take_never_and_the_admin_time_follows_unlock_time() {
        let conf1 = conf("unlock_time = never");
        assert_eq!((conf1.unlock_time, conf1.admin_unlock_time()), (0, 0));
        let conf2 = conf("unlock_time = 1800\n");
        assert_eq!(conf2.admin_unlock_time(), 1800);
        let conf3 = conf("root_unlock_time = never\nunlock_time = 1800\n");
        assert_eq!((conf3.unlock_time, conf3.admin_unlock_time()), (1800, 0));
        // In 1.5.2 root_unlock_time does not imply even_deny_root.
        assert!(!conf3.even_deny_root);
    }

    #[test]
    fn flags_ignore_their_values_and_unknown_keys_are_noted() {
        let text = "even_deny_root no\naudit\nsilent=0\nno_log_info\n\
                    local_users_only\nnodelay = off\nadmin_group = wheel\nDeny = 1\n";
        let (conf, notes) = FaillockConf::parse_noting(text.as_bytes()).unwrap();
        assert!(conf.even_deny_root && conf.audit && conf.silent && conf.no_log_info);
        assert!(conf.local_users_only && conf.nodelay);
        assert_eq!(conf.admin_group, "wheel");
        assert_eq!(conf.deny, 3, "keys are case-sensitive");
        assert_eq!(notes, [ConfNote::UnknownOption("Deny".into())]);
    }

    #[test]
    fn a_line_of_1023_characters_or_more_refuses_the_file() {
        let long = |n: usize| format!("dir=/{}", "a".repeat(n - 5));
        // 1022 characters and the newline fit fgets' buffer of 1024.
        let fits = format!("deny=4\n{}\ndeny=5\n", long(1022));
        let parsed = FaillockConf::parse(fits.as_bytes()).unwrap();
        assert_eq!((parsed.dir.as_os_str().len(), parsed.deny), (1018, 5));
        let too_long = format!("deny=4\n{}\ndeny=5\n", long(1023));
        assert_eq!(
            FaillockConf::parse(too_long.as_bytes()),
            Err(LineTooLong { line: 2 })
        );
        // The last line without a newline: fgets reaches the end of the file
        // only if the line is shorter than its buffer.
        assert!(FaillockConf::parse(long(1022).as_bytes()).is_ok());
        assert!(FaillockConf::parse(long(1023).as_bytes()).is_err());
        // strlen stops at a NUL: a line starting with one is blank, one with a
        // NUL inside has lost its newline.
        assert_eq!(conf("\0deny=9\ndeny=4\n").deny, 4);
        assert!(FaillockConf::parse(b"deny=4\0x\ndeny=5\n").is_err());
        assert_eq!(conf("deny=5\ndeny=4\0x").deny, 4);
    }

    #[test]
    fn load_reads_the_file_and_takes_a_missing_one_as_the_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("faillock.conf");
        assert_eq!(FaillockConf::load(&path).unwrap(), FaillockConf::default());
        std::fs::write(&path, "deny 6\nunlock_time=1800\n").unwrap();
        let conf = FaillockConf::load(&path).unwrap();
        assert_eq!((conf.deny, conf.unlock_time), (6, 1800));
        std::fs::write(&path, format!("#{}\n", "x".repeat(2000))).unwrap();
        let error = FaillockConf::load(&path).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{}: line 1 is longer than the 1022 characters pam_faillock accepts; \
                 pam_faillock refuses the whole file, so logins through it fail; shorten the line",
                path.display()
            )
        );
    }

    #[test]
    fn module_arguments_override_the_file() {
        let mut conf = conf("deny = 4\nunlock_time = 60\n");
        let args = [
            "preauth",
            "conf=/etc/a",
            "deny=6",
            "even_deny_root",
            "conf=/etc/b",
            "dir=/run/x",
        ];
        let notes = conf.apply_module_args(args);
        assert_eq!(conf.deny, 6);
        assert!(conf.even_deny_root);
        assert_eq!(conf.dir, Path::new("/run/x"));
        assert_eq!(conf.unlock_time, 60);
        // Only the last conf= names the file; an earlier one is an unknown option.
        assert_eq!(notes, [ConfNote::UnknownOption("conf".into())]);
        assert_eq!(FaillockConf::module_conf_file(args), Some("/etc/b"));
    }

    #[test]
    fn the_tally_is_dir_slash_user_under_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::under(tmp.path());
        let admin = UserName::parse("admin").unwrap();
        assert_eq!(
            FaillockConf::default().tally_path(&paths, &admin),
            tmp.path().join("var/run/faillock/admin")
        );
        assert_eq!(
            conf("dir /var/lib/faillock/").tally_path(&paths, &admin),
            tmp.path().join("var/lib/faillock/admin")
        );
        assert_eq!(
            conf("dir /x").tally_path(&Paths::system(), &admin),
            Path::new("/x/admin")
        );
    }

    #[test]
    fn admins_are_root_and_the_members_of_admin_group() {
        let account = |name: &str, uid, gid| PasswdEntry {
            name: name.into(),
            uid,
            gid,
            home: String::new(),
            shell: String::new(),
        };
        let passwd = [
            account("alice", 1000, 1000),
            account("bob", 1001, 27),
            account("carol", 1002, 1002),
            account("alias", 1000, 1000),
        ];
        let groups = [GroupEntry {
            name: "wheel".into(),
            gid: 27,
            members: vec!["alice".into(), "alias".into()],
        }];
        let wheel = conf("admin_group = wheel");
        assert!(wheel.is_admin(0, &passwd, &groups));
        assert!(wheel.is_admin(1000, &passwd, &groups), "listed member");
        assert!(wheel.is_admin(1001, &passwd, &groups), "primary group");
        assert!(!wheel.is_admin(1002, &passwd, &groups));
        assert!(!wheel.is_admin(4242, &passwd, &groups), "no account");
        assert!(!FaillockConf::default().is_admin(1000, &passwd, &groups));
        assert!(!conf("admin_group = staff").is_admin(1000, &passwd, &groups));
    }

    #[test]
    fn reset_by_name_finds_the_file_and_its_owner_under_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::under(tmp.path());
        std::fs::create_dir_all(tmp.path().join("etc/security")).unwrap();
        std::fs::write(paths.faillock_conf(), "dir /var/lib/fl\n").unwrap();
        let uid = nobody();
        std::fs::write(
            paths.passwd(),
            format!("root:x:0:0::/root:/bin/sh\nadmin:x:{uid}:{uid}::/:/bin/sh\n"),
        )
        .unwrap();
        let admin = UserName::parse("admin").unwrap();
        reset(&paths, &admin).unwrap();
        let tally = tmp.path().join("var/lib/fl/admin");
        std::fs::create_dir_all(tally.parent().unwrap()).unwrap();
        std::fs::write(&tally, encode(&[failure(T0)])).unwrap();
        reset(&paths, &admin).unwrap();
        let meta = std::fs::metadata(&tally).unwrap();
        assert_eq!(meta.len(), 0);
        if is_root() {
            assert_eq!(meta.uid(), uid);
        }
    }

    // --- Records ------------------------------------------------------------

    #[test]
    fn a_record_is_laid_out_as_struct_tally() {
        let record = TallyRecord::service_failure("fltest", 0x6b08_8d1c);
        let bytes = record.to_bytes();
        assert_eq!(&bytes[..6], b"fltest");
        assert!(
            bytes[6..54].iter().all(|&b| b == 0),
            "source padding, reserved"
        );
        assert_eq!(bytes[54..56], 1u16.to_ne_bytes());
        assert_eq!(bytes[56..64], 0x6b08_8d1cu64.to_ne_bytes());
        // A record pam_faillock wrote on amd64 (pamtester, service fltest).
        #[cfg(target_endian = "little")]
        assert_eq!(
            bytes[52..64],
            [0, 0, 1, 0, 0x1c, 0x8d, 0x08, 0x6b, 0, 0, 0, 0]
        );
        assert_eq!(TallyRecord::from_bytes(&bytes), record);
        assert_eq!(record.source(), b"fltest");
        assert_eq!(record.origin(), Origin::Service);
        assert!(record.is_valid());
    }

    #[test]
    fn every_field_survives_a_round_trip() {
        let mut bytes = [0u8; 64];
        bytes[..5].copy_from_slice(b"sshd!");
        bytes[52..54].copy_from_slice(&0xbeefu16.to_ne_bytes());
        bytes[54..56].copy_from_slice(&(STATUS_RHOST | STATUS_TTY).to_ne_bytes());
        bytes[56..].copy_from_slice(&u64::MAX.to_ne_bytes());
        let record = TallyRecord::from_bytes(&bytes);
        assert_eq!(record.to_bytes(), bytes);
        assert_eq!(record.origin(), Origin::RemoteHost);
        assert!(!record.is_valid());
        assert_eq!(record.time(), u64::MAX);
        bytes[54..56].copy_from_slice(&(STATUS_TTY | STATUS_VALID).to_ne_bytes());
        assert_eq!(TallyRecord::from_bytes(&bytes).origin(), Origin::Terminal);
    }

    #[test]
    fn a_source_of_52_bytes_or_more_fills_the_field_without_a_nul() {
        let long = "h".repeat(60);
        let record = TallyRecord::service_failure(&long, 1);
        assert_eq!(record.to_bytes()[..52], *"h".repeat(52).as_bytes());
        assert_eq!(record.source(), "h".repeat(52).as_bytes());
    }

    #[test]
    fn reading_ignores_a_partial_record_and_stops_at_1024() {
        let records: Vec<TallyRecord> = (1..=1030).map(failure).collect();
        let mut bytes = encode(&records[..3]);
        bytes.extend_from_slice(&[7; 63]);
        assert_eq!(decode(&bytes), records[..3]);
        let all: Vec<u8> = records.iter().flat_map(TallyRecord::to_bytes).collect();
        assert_eq!(decode(&all), records[..1024], "read_tally keeps the first");
        assert_eq!(
            decode(&encode(&records)),
            records[6..],
            "update_tally the last"
        );
    }

    // --- The rules, on a fake clock ------------------------------------------

    #[test]
    fn deny_failures_lock_until_unlock_time_after_the_latest() {
        let conf = FaillockConf::default(); // deny 3, 900 s, 600 s
        let two = [failure(T0), failure(T0 + 10)];
        let three = [failure(T0), failure(T0 + 10), failure(T0 + 20)];
        let state = assess(&two, at(T0 + 30), &conf, false);
        assert_eq!((state.failures, state.lock), (2, None));
        let state = assess(&three, at(T0 + 30), &conf, false);
        assert_eq!(state.failures, 3);
        assert_eq!(state.latest, Some(T0 + 20));
        assert_eq!(state.lock, Some(Lock::Until(T0 + 620)));
        assert_eq!(Lock::Until(T0 + 620).minutes_left(at(T0 + 30)), Some(10));
        assert_eq!(Lock::Until(T0 + 620).minutes_left(at(T0 + 559)), Some(2));
        assert_eq!(Lock::Until(T0 + 620).minutes_left(at(T0 + 560)), Some(1));
        assert_eq!(Lock::Until(T0 + 620).minutes_left(at(T0 + 620)), None);
    }

    #[test]
    fn the_lock_ends_the_second_after_unlock_time_and_then_has_expired() {
        let conf = FaillockConf::default();
        let three = [failure(T0), failure(T0 + 10), failure(T0 + 20)];
        let last_locked = assess(&three, at(T0 + 620), &conf, false);
        assert_eq!(last_locked.lock, Some(Lock::Until(T0 + 620)));
        assert!(!last_locked.lock_expired);
        let free = assess(&three, at(T0 + 621), &conf, false);
        assert_eq!(free.lock, None);
        assert!(free.lock_expired);
    }

    #[test]
    fn failures_count_back_from_the_latest_not_from_now() {
        let conf = FaillockConf::default();
        // 900 s before the latest no longer counts; 899 s does.
        let records = [failure(T0), failure(T0 + 1), failure(T0 + 900)];
        let state = assess(&records, at(T0 + 100_000), &conf, false);
        assert_eq!(state.failures, 2);
        let records = [failure(T0 + 1), failure(T0 + 2), failure(T0 + 900)];
        let state = assess(&records, at(T0 + 901), &conf, false);
        assert_eq!(state.failures, 3);
        assert_eq!(state.lock, Some(Lock::Until(T0 + 1500)));
    }

    #[test]
    fn invalid_records_do_not_count() {
        let conf = FaillockConf::default();
        let records = [
            invalid(T0),
            failure(T0 + 1),
            failure(T0 + 2),
            invalid(T0 + 3),
        ];
        let state = assess(&records, at(T0 + 4), &conf, false);
        assert_eq!(
            (state.failures, state.latest, state.lock),
            (2, Some(T0 + 2), None)
        );
        assert_eq!(assess(&[invalid(T0)], at(T0), &conf, false).latest, None);
    }

    #[test]
    fn unlock_time_never_locks_until_reset_and_deny_0_never_locks() {
        let three = [failure(T0), failure(T0 + 10), failure(T0 + 20)];
        let never = conf("unlock_time never");
        let state = assess(&three, at(T0 + 10_000_000), &never, false);
        assert_eq!(state.lock, Some(Lock::UntilReset));
        assert_eq!(Lock::UntilReset.minutes_left(at(T0)), None);
        let deny0 = conf("deny 0");
        assert_eq!(lock_state(&three, at(T0 + 30), &deny0, false), None);
    }

    #[test]
    fn root_and_admins_are_locked_only_with_even_deny_root_and_their_own_time() {
        let three = [failure(T0), failure(T0 + 10), failure(T0 + 20)];
        let plain = conf("root_unlock_time 60");
        let state = assess(&three, at(T0 + 30), &plain, true);
        assert_eq!(
            (state.failures, state.lock, state.lock_expired),
            (3, None, false)
        );
        let strict = conf("even_deny_root\nroot_unlock_time 60");
        assert_eq!(
            lock_state(&three, at(T0 + 30), &strict, true),
            Some(Lock::Until(T0 + 80))
        );
        assert_eq!(lock_state(&three, at(T0 + 81), &strict, true), None);
        assert_eq!(
            lock_state(&three, at(T0 + 81), &strict, false),
            Some(Lock::Until(T0 + 620))
        );
    }

    // --- The file -------------------------------------------------------------

    struct Tally {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl Tally {
        /// A tally path whose directory does not exist yet.
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("faillock").join("nobody");
            Tally { _dir: dir, path }
        }

        fn with(records: &[TallyRecord]) -> Self {
            let tally = Tally::new();
            std::fs::create_dir(tally.dir()).unwrap();
            std::fs::write(&tally.path, encode(records)).unwrap();
            tally
        }

        fn dir(&self) -> &Path {
            self.path.parent().unwrap()
        }

        fn bytes(&self) -> Vec<u8> {
            std::fs::read(&self.path).unwrap()
        }

        fn records(&self) -> Vec<TallyRecord> {
            decode(&self.bytes())
        }

        fn fail(&self, now: u64, conf: &FaillockConf) -> FailureOutcome {
            record_failure(&self.path, nobody(), at(now), conf, false, CREDSYNC_SOURCE).unwrap()
        }
    }

    fn nobody() -> u32 {
        nix::unistd::User::from_name("nobody")
            .unwrap()
            .expect("the test needs the user nobody")
            .uid
            .as_raw()
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn failures_create_the_directory_and_the_file_and_are_appended() {
        let tally = Tally::new();
        let conf = FaillockConf::default();
        let outcomes: Vec<_> = (0..3).map(|i| tally.fail(T0 + i, &conf)).collect();
        assert_eq!(
            tally.records(),
            [failure(T0), failure(T0 + 1), failure(T0 + 2)]
        );
        assert_eq!(tally.bytes().len(), 3 * 64);
        let FailureOutcome::Recorded {
            after,
            reached_deny,
        } = outcomes[1]
        else {
            panic!("{outcomes:?}")
        };
        assert_eq!((after.failures, after.lock, reached_deny), (2, None, false));
        let FailureOutcome::Recorded {
            after,
            reached_deny,
        } = outcomes[2]
        else {
            panic!("{outcomes:?}")
        };
        assert_eq!(after.lock, Some(Lock::Until(T0 + 602)));
        assert!(reached_deny);

        let dir = std::fs::metadata(tally.dir()).unwrap();
        assert_eq!(dir.mode() & 0o7777, 0o755);
        let file = std::fs::metadata(&tally.path).unwrap();
        assert_eq!(file.mode() & 0o7777, 0o660);
        if is_root() {
            assert_eq!(file.uid(), nobody());
        }
    }

    #[test]
    fn nothing_is_recorded_while_the_user_is_locked() {
        let conf = FaillockConf::default();
        let tally = Tally::with(&[failure(T0), failure(T0 + 1), failure(T0 + 2)]);
        let before = tally.bytes();
        let outcome = tally.fail(T0 + 3, &conf);
        let FailureOutcome::AlreadyLocked(state) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(state.lock, Some(Lock::Until(T0 + 602)));
        assert_eq!(tally.bytes(), before);
    }

    #[test]
    fn after_a_lock_runs_out_the_next_failure_starts_a_new_count() {
        let conf = FaillockConf::default();
        let tally = Tally::with(&[failure(T0 + 5), failure(T0), failure(T0 + 9)]);
        let outcome = tally.fail(T0 + 610, &conf);
        // All invalid; the oldest slot (the second) takes the new failure.
        assert_eq!(
            tally.records(),
            [invalid(T0 + 5), failure(T0 + 610), invalid(T0 + 9)]
        );
        let FailureOutcome::Recorded {
            after,
            reached_deny,
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert_eq!((after.failures, after.lock, reached_deny), (1, None, false));
    }

    #[test]
    fn a_failure_takes_the_oldest_slot_only_if_it_no_longer_counts() {
        let conf = FaillockConf::default();
        // The oldest (T0) is outside the window: reused.
        let tally = Tally::with(&[failure(T0 + 500), failure(T0)]);
        tally.fail(T0 + 950, &conf);
        assert_eq!(tally.records(), [failure(T0 + 500), failure(T0 + 950)]);
        // The oldest still counts: appended, though another one is invalid.
        let tally = Tally::with(&[failure(T0 + 100), invalid(T0 + 200)]);
        tally.fail(T0 + 300, &conf);
        assert_eq!(
            tally.records(),
            [failure(T0 + 100), invalid(T0 + 200), failure(T0 + 300)]
        );
        // A record at time 0 is never the oldest (C's "unset").
        let tally = Tally::with(&[invalid(0), invalid(T0 + 1)]);
        tally.fail(T0 + 2000, &conf);
        assert_eq!(tally.records(), [invalid(0), failure(T0 + 2000)]);
    }

    #[test]
    fn the_tally_keeps_the_last_1024_records() {
        let conf = conf("deny 0\nfail_interval 604800");
        let full: Vec<TallyRecord> = (0..1024).map(|i| failure(T0 + i)).collect();
        let tally = Tally::with(&full);
        tally.fail(T0 + 1024, &conf);
        let records = tally.records();
        assert_eq!(records.len(), 1024);
        assert_eq!(records[0], full[1]);
        assert_eq!(records[1023], failure(T0 + 1024));
    }

    #[test]
    fn reset_empties_the_tally_and_a_missing_one_is_fine() {
        let tally = Tally::new();
        reset_tally(&tally.path, nobody()).unwrap();
        assert!(!tally.dir().exists(), "reset creates nothing");
        let tally = Tally::with(&[failure(T0), failure(T0 + 1), failure(T0 + 2)]);
        reset_tally(&tally.path, nobody()).unwrap();
        assert_eq!(tally.bytes().len(), 0);
        assert_eq!(
            check(
                &tally.path,
                nobody(),
                at(T0 + 3),
                &FaillockConf::default(),
                false
            )
            .unwrap()
            .lock,
            None
        );
    }

    #[test]
    fn reset_waits_for_another_programs_lock() {
        let tally = Tally::with(&[failure(T0)]);
        let held = Flock::lock(File::open(&tally.path).unwrap(), FlockArg::LockExclusive).unwrap();
        let path = tally.path.clone();
        let resetter = std::thread::spawn(move || reset_tally(&path, nobody()));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(tally.bytes().len(), 64, "truncated under someone's lock");
        drop(held);
        resetter.join().unwrap().unwrap();
        assert_eq!(tally.bytes().len(), 0);
    }

    #[test]
    fn success_empties_the_tally_unless_the_user_is_locked() {
        let conf = FaillockConf::default();
        let tally = Tally::with(&[failure(T0), failure(T0 + 1)]);
        let before = record_success(&tally.path, nobody(), at(T0 + 2), &conf, false).unwrap();
        assert_eq!(before.failures, 2);
        assert_eq!(tally.bytes().len(), 0);

        let tally = Tally::with(&[failure(T0), failure(T0 + 1), failure(T0 + 2)]);
        let before = record_success(&tally.path, nobody(), at(T0 + 3), &conf, false).unwrap();
        assert!(before.lock.is_some());
        assert_eq!(tally.bytes().len(), 3 * 64);

        // Like pam_faillock, an empty tally is created when there was none.
        let tally = Tally::new();
        record_success(&tally.path, nobody(), at(T0), &conf, false).unwrap();
        assert_eq!(tally.bytes().len(), 0);
    }

    #[test]
    fn reading_gives_the_file_to_the_user_with_mode_0660() {
        let tally = Tally::with(&[failure(T0)]);
        std::fs::set_permissions(&tally.path, Permissions::from_mode(0o644)).unwrap();
        assert_eq!(read_records(&tally.path, nobody()).unwrap(), [failure(T0)]);
        let meta = std::fs::metadata(&tally.path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o660);
        if is_root() {
            assert_eq!(meta.uid(), nobody());
        }
        // A mode that lets the group write is left alone.
        std::fs::set_permissions(&tally.path, Permissions::from_mode(0o620)).unwrap();
        read_records(&tally.path, nobody()).unwrap();
        let meta = std::fs::metadata(&tally.path).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o620);
    }

    #[test]
    fn a_symlink_or_a_directory_is_refused_and_a_missing_parent_is_an_error() {
        let tally = Tally::with(&[]);
        let target = tally.dir().join("target");
        std::fs::write(&target, encode(&[failure(T0)])).unwrap();
        std::fs::remove_file(&tally.path).unwrap();
        std::os::unix::fs::symlink(&target, &tally.path).unwrap();
        let conf = FaillockConf::default();
        let error = record_failure(&tally.path, nobody(), at(T0), &conf, false, "x").unwrap_err();
        assert!(matches!(error, TallyError::NotRegular { .. }), "{error:?}");
        assert!(matches!(
            reset_tally(&tally.path, nobody()),
            Err(TallyError::NotRegular { .. })
        ));
        assert_eq!(std::fs::read(&target).unwrap().len(), 64);

        std::fs::remove_file(&tally.path).unwrap();
        std::fs::create_dir(&tally.path).unwrap();
        let error = read_records(&tally.path, nobody()).unwrap_err();
        assert!(
            matches!(
                error,
                TallyError::NotRegular { .. } | TallyError::Open { .. }
            ),
            "{error:?}"
        );

        let deep = tally.dir().join("a/b/nobody");
        let error = record_failure(&deep, nobody(), at(T0), &conf, false, "x").unwrap_err();
        assert!(matches!(error, TallyError::Open { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("cannot open the failure tally")
        );
    }

    // --- Against the real faillock and pam_faillock ----------------------------

    const FAILLOCK: &str = "/usr/sbin/faillock";

    /// Runs a tool, failing the test with what to install if it is missing.
    fn run(command: &mut Command, package: &str) -> (i32, String) {
        let output = command.output().unwrap_or_else(|e| {
            panic!("cannot run {command:?} ({e}); install the Debian package {package}")
        });
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.code().unwrap_or(-1), text)
    }

    /// `faillock --dir DIR --user nobody [--reset]`, times in UTC.
    fn faillock(dir: &Path, reset: bool) -> (i32, String) {
        let mut command = Command::new(FAILLOCK);
        command.env("TZ", "UTC").arg("--dir").arg(dir);
        command.args(["--user", "nobody"]);
        if reset {
            command.arg("--reset");
        }
        run(&mut command, "libpam-modules-bin")
    }

    /// A row of `faillock`'s listing.
    fn row(time: u64, kind: &str, source: &str, valid: &str) -> String {
        let when = crate::clock::utc_text(i64::try_from(time).unwrap())
            .replace('T', " ")
            .replace('Z', "");
        format!("{when:<19} {kind:<5} {source:<52.52} {valid}")
    }

    const HEADER: &str = "nobody:\n\
        When                Type  Source                                           Valid\n";

    #[test]
    fn faillock_lists_the_failures_credsync_records() {
        let tally = Tally::new();
        let conf = FaillockConf::default();
        tally.fail(T0, &conf);
        tally.fail(T0 + 1000, &conf); // reuses T0's slot: it is outside the window
        tally.fail(T0 + 1010, &conf);
        // With deny 2 that was a lock, which has run out: both become
        // invalid and the oldest slot takes the new failure.
        let lock_conf = conf_with_deny(2);
        tally.fail(T0 + 5000, &lock_conf);
        let (code, output) = faillock(tally.dir(), false);
        assert_eq!(code, 0, "{output}");
        let expected = [
            row(T0 + 5000, "SVC", "credsync", "V"),
            row(T0 + 1010, "SVC", "credsync", "I"),
        ];
        assert_eq!(output, format!("{HEADER}{}\n", expected.join("\n")));
    }

    fn conf_with_deny(deny: u16) -> FaillockConf {
        FaillockConf {
            deny,
            ..FaillockConf::default()
        }
    }

    #[test]
    fn faillock_reset_and_credsync_reset_agree() {
        let conf = FaillockConf::default();
        let tally = Tally::new();
        tally.fail(T0, &conf);
        tally.fail(T0 + 1, &conf);
        let (code, output) = faillock(tally.dir(), true);
        assert_eq!((code, output.as_str()), (0, ""));
        assert_eq!(read_records(&tally.path, nobody()).unwrap(), []);

        tally.fail(T0 + 2, &conf);
        reset_tally(&tally.path, nobody()).unwrap();
        let (code, output) = faillock(tally.dir(), false);
        assert_eq!((code, output.as_str()), (0, HEADER));
    }

    /// A PAM service `fltest` with `stack`, run by pamtester for `user` in a
    /// private mount namespace where a temporary directory stands in for
    /// `/etc/pam.d` (the host's is neither read nor changed).
    /// pam_faillock's `preauth` alone, with the faillock.conf at `conf`:
    /// does it say `user` is locked?
    fn preauth(conf: &Path, user: &str) -> (i32, String) {
        pamtester(
            &format!(
                "auth required pam_faillock.so preauth conf={}\nauth required pam_permit.so\n",
                conf.display()
            ),
            user,
        )
    }

    fn pamtester(stack: &str, user: &str) -> (i32, String) {
        let pam_d = tempfile::tempdir().unwrap();
        std::fs::write(pam_d.path().join("fltest"), stack).unwrap();
        let mut command = Command::new("unshare");
        if !is_root() {
            command.arg("--map-root-user");
        }
        command
            .args(["--mount", "sh", "-c"])
            .arg(
                "mount --bind \"$1\" /etc/pam.d || exit 99; \
                 exec pamtester fltest \"$2\" authenticate",
            )
            .arg("sh")
            .arg(pam_d.path())
            .arg(user);
        let (code, output) = run(&mut command, "util-linux, mount and pamtester");
        assert_ne!(code, 99, "cannot set up the private /etc/pam.d: {output}");
        assert_ne!(
            code, 127,
            "pamtester is missing (Debian package pamtester): {output}"
        );
        (code, output)
    }

    /// A pam_faillock configuration file next to the tally directory.
    fn write_conf(tally: &Tally, settings: &str) -> (PathBuf, FaillockConf) {
        let text = format!("dir {}\nnodelay\n{settings}", tally.dir().display());
        let path = tally.dir().with_file_name("faillock.conf");
        std::fs::write(&path, &text).unwrap();
        (path, conf(&text))
    }

    fn pam_authfail(conf_path: &Path, user: &str) {
        let stack = format!(
            "auth required pam_faillock.so authfail conf={}\n",
            conf_path.display()
        );
        pamtester(&stack, user);
    }

    fn now_secs_real() -> u64 {
        now_secs(Now::read())
    }

    #[test]
    fn credsync_reads_the_failures_pam_faillock_records() {
        let tally = Tally::new();
        let (conf_path, conf) = write_conf(&tally, "deny = 3\n");
        let start = now_secs_real();
        pam_authfail(&conf_path, "nobody");
        pam_authfail(&conf_path, "nobody");
        let end = now_secs_real();
        let records = read_records(&tally.path, nobody()).unwrap();
        assert_eq!(records.len(), 2, "{records:?}");
        for record in &records {
            assert_eq!(record.source(), b"fltest");
            assert_eq!(record.origin(), Origin::Service);
            assert!(record.is_valid());
            assert!((start..=end).contains(&record.time()), "{record:?}");
            assert_eq!(
                record.to_bytes(),
                TallyRecord::service_failure("fltest", record.time()).to_bytes()
            );
        }
        // credsync's failure is the third: the user is locked for both.
        let outcome = record_failure(
            &tally.path,
            nobody(),
            Now::read(),
            &conf,
            false,
            CREDSYNC_SOURCE,
        )
        .unwrap();
        let FailureOutcome::Recorded {
            after,
            reached_deny,
        } = outcome
        else {
            panic!("{outcome:?}")
        };
        assert!(reached_deny && after.lock.is_some(), "{after:?}");
        let (code, output) = preauth(&conf_path, "nobody");
        assert_ne!(code, 0, "{output}");
        assert!(
            output.contains("The account is locked due to 3 failed logins."),
            "{output}"
        );
    }

    #[test]
    fn credsync_adds_a_failure_where_pam_faillock_does() {
        let now = now_secs_real();
        let cases: [(&str, Vec<TallyRecord>); 3] = [
            // The oldest no longer counts: its slot is reused.
            ("deny 3", vec![failure(now - 10), failure(now - 2000)]),
            // The oldest still counts: appended.
            ("deny 3", vec![failure(now - 20), invalid(now - 10)]),
            // A lock that ran out: everything invalid, the oldest reused.
            (
                "deny 2\nunlock_time 60",
                vec![failure(now - 100), failure(now - 120), failure(now - 110)],
            ),
        ];
        for (settings, records) in cases {
            let tally = Tally::with(&records);
            let (conf_path, conf) = write_conf(&tally, settings);
            pam_authfail(&conf_path, "nobody");
            let by_pam = tally.records();

            std::fs::write(&tally.path, encode(&records)).unwrap();
            let time = by_pam.iter().map(TallyRecord::time).max().unwrap();
            record_failure(&tally.path, nobody(), at(time), &conf, false, "fltest").unwrap();
            assert_eq!(tally.records(), by_pam, "{settings:?} {records:?}");
        }
    }

    #[test]
    fn pam_faillock_and_credsync_agree_on_who_is_locked() {
        let now = now_secs_real();
        let three = |latest: u64| {
            vec![
                failure(now - latest - 20),
                failure(now - latest - 10),
                failure(now - latest),
            ]
        };
        let cases: [(&str, &str, Vec<TallyRecord>, bool); 8] = [
            (
                "nobody",
                "deny 3",
                vec![failure(now - 10), failure(now - 5)],
                false,
            ),
            ("nobody", "deny=3\nunlock_time = 600", three(5), true),
            ("nobody", "unlock_time 600", three(700), false),
            (
                "nobody",
                "fail_interval=900",
                vec![failure(now - 1010), failure(now - 20), failure(now - 10)],
                false,
            ),
            (
                "nobody",
                "deny 3",
                vec![invalid(now - 3), invalid(now - 2), invalid(now - 1)],
                false,
            ),
            ("nobody", "unlock_time never", three(5000), true),
            ("root", "deny 3", three(5), false),
            (
                "root",
                "even_deny_root\nroot_unlock_time 60",
                three(100),
                false,
            ),
        ];
        for (user, settings, records, locked) in cases {
            let tally = Tally::with(&[]);
            let path = tally.dir().join(user);
            std::fs::write(&path, encode(&records)).unwrap();
            let (conf_path, conf) = write_conf(&tally, settings);
            let ours = lock_state(&records, Now::read(), &conf, user == "root");
            assert_eq!(ours.is_some(), locked, "credsync: {user} {settings:?}");
            let (code, output) = preauth(&conf_path, user);
            assert_eq!(
                code != 0,
                locked,
                "pam_faillock: {user} {settings:?}: {output}"
            );
            if let Some(Lock::Until(_)) = ours {
                let minutes = ours.unwrap().minutes_left(Now::read()).unwrap();
                assert!(
                    output.contains(&format!("({minutes} minutes left to unlock)")),
                    "{output}"
                );
            }
        }
        // Root is locked with even_deny_root while the lock lasts.
        let tally = Tally::with(&[]);
        std::fs::write(tally.dir().join("root"), encode(&three(5))).unwrap();
        let (conf_path, _) = write_conf(&tally, "even_deny_root\nroot_unlock_time 60");
        let (code, output) = preauth(&conf_path, "root");
        assert_ne!(code, 0, "{output}");
    }
}
