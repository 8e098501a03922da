//! Writes `/etc/shadow` the way shadow-utils does, so that credsync can run
//! side by side with `passwd`, `chpasswd`, `usermod` and pam_unix:
//!
//! - [`ShadowFile`] (`file`) keeps every byte: lines credsync does not change
//!   are written back byte-identical, comments and malformed lines included.
//! - [`ShadowLock`] (`lock`) holds `/etc/.pwd.lock` (what `lckpwdf()` and
//!   pam_unix take) and then `/etc/shadow.lock` (shadow-utils' lock file), and
//!   releases them in reverse order when dropped.
//! - [`ShadowLock::write`] (`replace`) replaces the file atomically, keeping
//!   owner, mode and SELinux label, with `/etc/shadow-` as the backup of the
//!   previous content; `/etc/shadow` is never left half-written.

#![forbid(unsafe_code)]

mod file;
mod lock;
mod replace;

pub use file::{Aging, ShadowEntry, ShadowFile};

use super::{Paths, signals};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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

impl LastChange {
    /// Field 3 for a password set on `day`: `0` if it must be changed at next login.
    pub fn after_change(day: i64, must_change: bool) -> Self {
        if must_change {
            LastChange::MustChange
        } else {
            LastChange::Day(day)
        }
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
    /// The file on disk is not what was read: writing would undo someone's change.
    #[error(
        "{path} was changed by another program while credsync was working; nothing was written; try again"
    )]
    Changed { path: String },
    /// A lock file without a valid PID: shadow-utils never removes these either.
    #[error(
        "the lock file {path} does not name a process; if no password tool is running, remove it and try again"
    )]
    BadLock { path: String },
    /// Our `shadow.lock` was removed or replaced while we held it.
    #[error("the lock file {path} was removed by another program; nothing was written; try again")]
    LockLost { path: String },
}

pub(crate) fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> ShadowError {
    ShadowError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

/// Removes a temporary file when dropped, unless disarmed.
struct RemoveOnDrop {
    path: Option<PathBuf>,
}

impl RemoveOnDrop {
    fn new(path: &Path) -> Self {
        RemoveOnDrop {
            path: Some(path.to_path_buf()),
        }
    }
    fn disarm(&mut self) {
        self.path = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Both locks every password tool shares, taken in order: `.pwd.lock` then
/// `shadow.lock`; released in reverse order on drop.
///
/// From before the first lock is asked for until after the last is released,
/// the signals a caller can still send a setuid run (the terminal's, a
/// timer's) are held back (`signals::Blocked`): a holder killed there would
/// leave its pid in `shadow.lock`, and a zombie its parent never reaps keeps
/// that pid alive, so every password tool on the system would wait for it.
/// Once the locks are gone, nscd and sssd are told about a write, as
/// shadow-utils tells them after unlocking, so a slow or hung cache daemon
/// never holds the password files.
///
/// While this is held, nothing else in the process may open `/etc/.pwd.lock`
/// (that would release the lock; see `lock`), so no PAM password change and no
/// `lckpwdf()` in the same process.
pub struct ShadowLock {
    paths: Paths,
    /// `None` once released (in `Drop`). A tuple drops in order:
    /// `shadow.lock` first, then `.pwd.lock`.
    held: Option<(lock::LockFile, lock::PwdLock)>,
    /// A write happened: the caches are flushed after the release.
    written: Cell<bool>,
    /// Let go right after the locks, before the caches are flushed: the
    /// flush may take seconds, and holds nothing another tool waits for.
    signals: Option<signals::Blocked>,
}

impl ShadowLock {
    /// Takes both locks within `timeout` in all (callers use 15 s, as
    /// `lckpwdf()` does): `.pwd.lock` waited for in the kernel, `shadow.lock`
    /// retried every 50 ms. `Busy` names the holder when
    /// it is known. A `shadow.lock` left by a dead process is taken over, and
    /// the temporaries crashed writers left (`shadow+`, `shadow-+`,
    /// `shadow.<pid>`) are removed.
    pub fn acquire(paths: &Paths, timeout: Duration) -> Result<Self, ShadowError> {
        let signals = signals::Blocked::new();
        let now = Instant::now();
        let deadline = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(86400));
        let pwd_lock = lock::PwdLock::acquire(&paths.etc().join(".pwd.lock"), deadline)?;
        let shadow_lock = lock::LockFile::acquire(&paths.shadow(), deadline)?;
        replace::remove_leftovers(&paths.shadow());
        lock::remove_dead_pid_files(&paths.shadow());
        Ok(ShadowLock {
            paths: paths.clone(),
            held: Some((shadow_lock, pwd_lock)),
            written: Cell::new(false),
            signals: Some(signals),
        })
    }

    /// The file as it is now; pass it, changed, to [`write`](Self::write).
    pub fn read(&self) -> Result<ShadowFile, ShadowError> {
        read_unlocked(&self.paths)
    }

    /// Replaces `/etc/shadow` with `file`, keeping the previous content as
    /// `/etc/shadow-`; nscd and sssd are told once the locks are released
    /// (live root only).
    ///
    /// `file` must derive from what is on disk now: read while this lock was
    /// held, or written by this lock since (a successful write moves `file`
    /// forward, so it can be changed and written again). Otherwise `Changed`
    /// is returned and nothing is written. On any error `/etc/shadow` is
    /// untouched.
    pub fn write(&self, file: &mut ShadowFile) -> Result<(), ShadowError> {
        let (shadow_lock, _) = self.held.as_ref().expect("held until dropped");
        if !shadow_lock.is_ours() {
            return Err(ShadowError::LockLost {
                path: shadow_lock.path().display().to_string(),
            });
        }
        replace::replace(&self.paths.shadow(), file)?;
        self.written.set(true);
        Ok(())
    }
}

impl Drop for ShadowLock {
    fn drop(&mut self) {
        drop(self.held.take());
        drop(self.signals.take());
        if self.written.get() && !self.paths.is_alternate_root() {
            replace::flush_caches();
        }
    }
}

/// Reads `/etc/shadow` without any lock: fine for looking, never for a
/// read-modify-write (use [`ShadowLock::read`]).
pub fn read_unlocked(paths: &Paths) -> Result<ShadowFile, ShadowError> {
    let path = paths.shadow();
    match std::fs::read(&path) {
        Ok(raw) => Ok(parsed(&path, raw)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ShadowError::Missing {
            path: path.display().to_string(),
        }),
        Err(source) => Err(io_error("read", &path, source)),
    }
}

/// The file parsed from `raw`. One command reads shadow several times (the
/// caller's password, the policy, the users to change, then under the
/// locks); the bytes are read each time, but parsed once: the last file
/// parsed is kept, and handed out again while what is read is the same,
/// byte for byte.
fn parsed(path: &Path, raw: Vec<u8>) -> ShadowFile {
    static LAST: Mutex<Option<(PathBuf, ShadowFile)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((seen, file)) = last.as_ref()
        && seen == path
        && file.base() == raw.as_slice()
    {
        return file.clone();
    }
    let file = ShadowFile::parse(raw);
    *last = Some((path.to_path_buf(), file.clone()));
    file
}

#[cfg(test)]
mod tests {
    //! The protocol end to end, on fixture roots under a temporary directory:
    //! the host's `/etc` is never touched.

    use super::*;
    use crate::account::UserName;
    use crate::system::crypt::LinuxHash;
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
    use std::process::{Child, Command, Stdio};

    const OLD: &[u8] = b"# managed by hand\n\
        root:*:19000:0:99999:7:::\n\
        alice:$y$j9T$old$oldhash:19000:1:60:7:::\n\
        +::::::::\n\
        bob:!:19000:0:99999:7:::";

    const SHORT: Duration = Duration::from_millis(300);

    struct Fixture {
        _dir: tempfile::TempDir,
        paths: Paths,
        etc: PathBuf,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let etc = dir.path().join("etc");
            std::fs::create_dir(&etc).unwrap();
            Fixture {
                paths: Paths::under(dir.path()),
                _dir: dir,
                etc,
            }
        }

        fn with_shadow(content: &[u8]) -> Self {
            let fixture = Fixture::new();
            std::fs::write(fixture.paths.shadow(), content).unwrap();
            fixture
        }

        fn file(&self, name: &str) -> PathBuf {
            self.etc.join(name)
        }

        fn read(&self, name: &str) -> Vec<u8> {
            std::fs::read(self.file(name)).unwrap()
        }

        /// The names in the fixture's `/etc`, sorted.
        fn listing(&self) -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(&self.etc)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        }
    }

    fn alice() -> UserName {
        UserName::parse("alice").unwrap()
    }

    fn new_hash() -> LinuxHash {
        LinuxHash::from_field("$y$j9T$new$newhash").unwrap()
    }

    fn new_content() -> Vec<u8> {
        let text = std::str::from_utf8(OLD).unwrap();
        text.replace(
            "alice:$y$j9T$old$oldhash:19000:",
            "alice:$y$j9T$new$newhash:20000:",
        )
        .into_bytes()
    }

    /// A PID no process has: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    /// A python3 child holding a classic POSIX lock on `path` (what
    /// `lckpwdf()` takes), and its PID once it holds it.
    fn hold_fcntl_lock(path: &Path) -> (Child, u32) {
        let script = "import fcntl, os, sys, time\n\
            f = open(sys.argv[1], 'w')\n\
            fcntl.lockf(f, fcntl.LOCK_EX)\n\
            print('ok', os.getpid(), flush=True)\n\
            time.sleep(30)\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid = line.strip_prefix("ok ").unwrap().trim().parse().unwrap();
        (child, pid)
    }

    /// Whether another process can take a classic lock on `path` right now.
    fn lockable_by_another_process(path: &Path) -> bool {
        let script = "import fcntl, sys\n\
            f = open(sys.argv[1], 'w')\n\
            try:\n    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(1)\n";
        Command::new("python3")
            .args(["-c", script])
            .arg(path)
            .status()
            .unwrap()
            .success()
    }

    #[test]
    fn write_replaces_the_file_keeping_owner_mode_and_a_backup() {
        let fx = Fixture::with_shadow(OLD);
        let shadow = fx.paths.shadow();
        chown(&shadow, Some(0), Some(42)).unwrap();
        std::fs::set_permissions(&shadow, std::fs::Permissions::from_mode(0o640)).unwrap();

        let lock = ShadowLock::acquire(&fx.paths, SHORT).unwrap();
        let mut file = lock.read().unwrap();
        assert!(file.set_password(&alice(), &new_hash(), LastChange::Day(20000)));
        lock.write(&mut file).unwrap();

        assert_eq!(fx.read("shadow"), new_content());
        assert_eq!(fx.read("shadow-"), OLD);
        for name in ["shadow", "shadow-"] {
            let meta = std::fs::metadata(fx.file(name)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (0, 42), "{name}");
            assert_eq!(meta.mode() & 0o7777, 0o640, "{name}");
        }
        assert_eq!(
            fx.read("shadow.lock"),
            format!("{}\0", std::process::id()).as_bytes()
        );
        assert_eq!(
            fx.listing(),
            [".pwd.lock", "shadow", "shadow-", "shadow.lock"]
        );

        drop(lock);
        assert_eq!(fx.listing(), [".pwd.lock", "shadow", "shadow-"]);
        assert!(lockable_by_another_process(&fx.file(".pwd.lock")));
    }

    /// A file parsed once is handed out again only while the bytes on disk
    /// are the same: an outside change of the same length is seen at once.
    #[test]
    fn a_read_never_returns_a_stale_parse() {
        let fx = Fixture::with_shadow(OLD);
        let first = read_unlocked(&fx.paths).unwrap();
        assert_eq!(read_unlocked(&fx.paths).unwrap().to_bytes(), OLD);
        let changed = String::from_utf8(OLD.to_vec())
            .unwrap()
            .replace("oldhash", "newhash");
        std::fs::write(fx.paths.shadow(), &changed).unwrap();
        let again = read_unlocked(&fx.paths).unwrap();
        assert_eq!(again.to_bytes(), changed.as_bytes());
        assert_eq!(
            again.entry(&alice()).unwrap().hash.as_str(),
            "$y$j9T$old$newhash"
        );
        assert_eq!(first.to_bytes(), OLD, "an earlier copy keeps its bytes");
        let other = Fixture::with_shadow(&OLD[..OLD.len() - 1]);
        assert_eq!(
            read_unlocked(&other.paths).unwrap().to_bytes(),
            &OLD[..OLD.len() - 1]
        );
    }

    #[test]
    fn a_second_write_under_the_same_lock_backs_up_the_first() {
        let fx = Fixture::with_shadow(OLD);
        let lock = ShadowLock::acquire(&fx.paths, SHORT).unwrap();
        let mut file = lock.read().unwrap();
        file.set_password(&alice(), &new_hash(), LastChange::Day(20000));
        lock.write(&mut file).unwrap();

        let mut again = lock.read().unwrap();
        again.set_password(&alice(), &new_hash(), LastChange::MustChange);
        lock.write(&mut again).unwrap();
        assert_eq!(fx.read("shadow-"), new_content());
        assert_eq!(
            lock.read().unwrap().entry(&alice()).unwrap().last_change,
            LastChange::MustChange
        );
    }

    #[test]
    fn a_written_file_can_be_changed_and_written_again_but_an_older_copy_cannot() {
        let fx = Fixture::with_shadow(OLD);
        let lock = ShadowLock::acquire(&fx.paths, SHORT).unwrap();
        let mut file = lock.read().unwrap();
        let mut copy_before_write = file.clone();
        file.set_password(&alice(), &new_hash(), LastChange::Day(20000));
        lock.write(&mut file).unwrap();

        let mut next = file.clone();
        next.set_password(&alice(), &new_hash(), LastChange::MustChange);
        lock.write(&mut next).unwrap();
        assert_eq!(fx.read("shadow"), next.to_bytes());

        // Writing the stale copy would undo both writes.
        let err = lock.write(&mut copy_before_write).unwrap_err();
        assert!(matches!(err, ShadowError::Changed { .. }), "{err}");
        assert_eq!(fx.read("shadow"), next.to_bytes());
    }

    #[test]
    fn a_leftover_temporary_from_a_crash_is_replaced() {
        let fx = Fixture::with_shadow(OLD);
        std::fs::write(fx.file("shadow+"), b"half-written junk").unwrap();
        std::fs::write(fx.file("shadow-+"), b"half-written junk").unwrap();
        let lock = ShadowLock::acquire(&fx.paths, SHORT).unwrap();
        let mut file = lock.read().unwrap();
        file.set_password(&alice(), &new_hash(), LastChange::Day(20000));
        lock.write(&mut file).unwrap();
        drop(lock);
        assert_eq!(fx.read("shadow"), new_content());
        assert_eq!(fx.listing(), [".pwd.lock", "shadow", "shadow-"]);
    }

    #[test]
    fn write_refuses_a_file_that_changed_since_it_was_read() {
        let fx = Fixture::with_shadow(OLD);
        let mut stale = read_unlocked(&fx.paths).unwrap();
        std::fs::write(fx.paths.shadow(), b"root:*:1:0:99999:7:::\n").unwrap();

        let lock = ShadowLock::acquire(&fx.paths, SHORT).unwrap();
        let err = lock.write(&mut stale).unwrap_err();
        assert!(matches!(err, ShadowError::Changed { .. }), "{err}");
        drop(lock);
        assert_eq!(fx.read("shadow"), b"root:*:1:0:99999:7:::\n");
        assert_eq!(fx.listing(), [".pwd.lock", "shadow"]);
    }

    #[test]
    fn write_refuses_when_our_lock_file_was_removed() {
        let fx = Fixture::with_shadow(OLD);
        let lock = ShadowLock::acquire(&fx.paths, SHORT).unwrap();
        let mut file = lock.read().unwrap();
        std::fs::remove_file(fx.file("shadow.lock")).unwrap();
        let err = lock.write(&mut file).unwrap_err();
        assert!(matches!(err, ShadowError::LockLost { .. }), "{err}");
        assert_eq!(fx.read("shadow"), OLD);
    }

    #[test]
    fn a_lock_file_left_by_a_dead_process_is_taken_over() {
        let fx = Fixture::with_shadow(OLD);
        std::fs::write(fx.file("shadow.lock"), format!("{}\0", dead_pid())).unwrap();
        let lock = ShadowLock::acquire(&fx.paths, SHORT).unwrap();
        assert_eq!(
            fx.read("shadow.lock"),
            format!("{}\0", std::process::id()).as_bytes()
        );
        drop(lock);
        assert_eq!(fx.listing(), [".pwd.lock", "shadow"]);
    }

    #[test]
    fn a_lock_file_of_a_live_process_is_busy() {
        let fx = Fixture::with_shadow(OLD);
        let holder = std::os::unix::process::parent_id();
        std::fs::write(fx.file("shadow.lock"), format!("{holder}\0")).unwrap();

        let started = Instant::now();
        let err = ShadowLock::acquire(&fx.paths, SHORT).err().unwrap();
        assert!(started.elapsed() >= SHORT);
        assert!(
            matches!(err, ShadowError::Busy { pid: Some(p) } if p == holder),
            "{err}"
        );
        assert!(err.to_string().contains(&format!("(pid {holder})")));
        // Their lock is left alone, and so is nothing of ours.
        assert_eq!(fx.read("shadow.lock"), format!("{holder}\0").as_bytes());
        assert_eq!(fx.listing(), [".pwd.lock", "shadow", "shadow.lock"]);
        // `.pwd.lock` was released on the way out.
        assert!(lockable_by_another_process(&fx.file(".pwd.lock")));
    }

    #[test]
    fn a_lock_file_without_a_pid_is_reported_not_removed() {
        let fx = Fixture::with_shadow(OLD);
        std::fs::write(fx.file("shadow.lock"), b"").unwrap();
        let err = ShadowLock::acquire(&fx.paths, SHORT).err().unwrap();
        assert!(matches!(err, ShadowError::BadLock { .. }), "{err}");
        assert!(fx.file("shadow.lock").exists());
    }

    #[test]
    fn pwd_lock_held_by_another_process_is_busy_until_released() {
        let fx = Fixture::with_shadow(OLD);
        let (mut child, pid) = hold_fcntl_lock(&fx.file(".pwd.lock"));

        let started = Instant::now();
        let err = ShadowLock::acquire(&fx.paths, SHORT).err().unwrap();
        let waited = started.elapsed();
        assert!(
            matches!(err, ShadowError::Busy { pid: Some(p) } if p == pid),
            "{err}"
        );
        assert!(
            waited >= SHORT && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert!(!fx.file("shadow.lock").exists());

        child.kill().unwrap();
        child.wait().unwrap();
        let lock = ShadowLock::acquire(&fx.paths, SHORT).unwrap();
        assert!(!lockable_by_another_process(&fx.file(".pwd.lock")));
        drop(lock);
    }

    #[test]
    fn a_second_lock_in_the_same_process_is_busy_past_its_deadline_and_keeps_the_first() {
        let fx = Fixture::with_shadow(OLD);
        let first = ShadowLock::acquire(&fx.paths, SHORT).unwrap();
        let err = ShadowLock::acquire(&fx.paths, Duration::from_millis(100))
            .err()
            .unwrap();
        assert!(
            matches!(err, ShadowError::Busy { pid: Some(p) } if p == std::process::id()),
            "{err}"
        );
        // The failed attempt must not have released the first one's locks.
        assert!(!lockable_by_another_process(&fx.file(".pwd.lock")));
        assert!(fx.file("shadow.lock").exists());
        drop(first);
        assert!(lockable_by_another_process(&fx.file(".pwd.lock")));
    }

    #[test]
    fn a_second_thread_waits_for_the_first_to_release() {
        let fx = Fixture::with_shadow(OLD);
        let first = ShadowLock::acquire(&fx.paths, SHORT).unwrap();
        let paths = fx.paths.clone();
        let second = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let lock = ShadowLock::acquire(&paths, Duration::from_secs(10));
            (lock.is_ok(), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(fx.file("shadow.lock").exists());
        drop(first);
        let (took_it, waited) = second.join().unwrap();
        assert!(
            took_it,
            "the second thread did not get the lock once released"
        );
        assert!(
            waited >= Duration::from_millis(250),
            "it did not wait: {waited:?}"
        );
        assert!(lockable_by_another_process(&fx.file(".pwd.lock")));
    }

    #[test]
    fn a_missing_shadow_file_is_reported() {
        let fx = Fixture::new();
        let missing = |r: Result<_, ShadowError>| matches!(r, Err(ShadowError::Missing { .. }));
        assert!(missing(read_unlocked(&fx.paths).map(drop)));
        let lock = ShadowLock::acquire(&fx.paths, SHORT).unwrap();
        assert!(missing(lock.read().map(drop)));
        assert!(missing(lock.write(&mut ShadowFile::default())));
        drop(lock);
        assert_eq!(fx.listing(), [".pwd.lock"]);
    }
}
