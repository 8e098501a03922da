//! The two locks every password tool shares, taken the way glibc's `lckpwdf()`
//! and shadow-utils' `lib/commonio.c` take them, so that `passwd`, `chpasswd`,
//! `usermod`, pam_unix and credsync exclude one another.
//!
//! 1. `/etc/.pwd.lock`: a classic POSIX record lock (`fcntl F_SETLKW F_WRLCK`
//!    on the whole file, the wait cut off at the deadline as `lckpwdf()` does). Not `flock(2)` and not an OFD lock: only a classic lock
//!    is what `lckpwdf()` and pam_unix wait for. A classic lock belongs to the
//!    *process* and is released when the process closes *any* descriptor of the
//!    file, so nothing else in this process may open `.pwd.lock` while credsync
//!    holds it: no second [`PwdLock`] (a process-wide registry refuses that), no
//!    `lckpwdf()`/`ulckpwdf()`, and no PAM password change (pam_unix calls
//!    `lckpwdf()` itself).
//! 2. `/etc/shadow.lock`: our PID is written to `/etc/shadow.<pid>`, which is
//!    hard-linked to `shadow.lock` (link(2) is atomic even on old NFS); a link
//!    count of 2 proves we made the link. A lock left by a dead process is
//!    removed and taken over.

use super::{ShadowError, io_error};
use crate::system::fresh::with_suffix;
use crate::system::signals;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How often a busy lock is tried again.
const RETRY_INTERVAL: Duration = Duration::from_millis(50);

/// What one attempt at a lock came to.
enum Attempt<T> {
    Acquired(T),
    /// Held by someone else: try again later, or report this error at the deadline.
    Held(ShadowError),
    /// The holder went away meanwhile (or a stale lock was just removed).
    Again,
}

/// Tries `attempt` until it succeeds or `deadline` passes; always tries once.
fn retry_until<T>(
    deadline: Instant,
    mut attempt: impl FnMut() -> Result<Attempt<T>, ShadowError>,
) -> Result<T, ShadowError> {
    // Bounds the immediate retries, so two processes fighting over a lock that
    // keeps changing hands can't spin.
    let mut immediate = 0;
    loop {
        let held = match attempt()? {
            Attempt::Acquired(lock) => return Ok(lock),
            Attempt::Again if immediate < 8 => {
                immediate += 1;
                continue;
            }
            Attempt::Again => ShadowError::Busy { pid: None },
            Attempt::Held(error) => error,
        };
        immediate = 0;
        let now = Instant::now();
        if now >= deadline {
            return Err(held);
        }
        sleep(RETRY_INTERVAL.min(deadline - now));
    }
}

fn own_pid() -> u32 {
    std::process::id()
}

/// The `.pwd.lock` files this process holds, by canonical path. Holding one
/// twice would be granted by the kernel (a process never conflicts with
/// itself), and releasing either would release both. So a second thread of
/// ours (the service's) waits here, on [`PWD_LOCK_RELEASED`], as a second
/// process waits in the kernel.
static HELD_PWD_LOCKS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static PWD_LOCK_RELEASED: Condvar = Condvar::new();

fn held_pwd_locks() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    HELD_PWD_LOCKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `/etc/.pwd.lock`, held with a classic POSIX write lock until dropped.
pub(super) struct PwdLock {
    /// `Option` only so `drop` can close it before leaving the registry.
    file: Option<File>,
    key: PathBuf,
}

impl PwdLock {
    /// Takes the lock, waiting in the kernel (`F_SETLKW`) until `deadline`
    /// as `lckpwdf()` does, so credsync queues with pam_unix and shadow-utils
    /// instead of losing every hand-over to them.
    pub(super) fn acquire(path: &Path, deadline: Instant) -> Result<Self, ShadowError> {
        let key = registry_key(path)?;
        // The registry stays locked while the file is open, so no other
        // thread of ours opens or closes it meanwhile.
        let mut held = held_pwd_locks();
        while held.contains(&key) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ShadowError::Busy {
                    pid: Some(own_pid()),
                });
            }
            held = PWD_LOCK_RELEASED
                .wait_timeout(held, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| io_error("open the lock file", path, e))?;
        let whole = whole_file(libc::F_WRLCK);
        let locked = match fcntl(&file, FcntlArg::F_SETLK(&whole)) {
            Err(Errno::EAGAIN | Errno::EACCES) => {
                signals::interrupt_at(deadline, || fcntl(&file, FcntlArg::F_SETLKW(&whole)))
            }
            other => other,
        };
        match locked {
            Ok(_) => {
                held.push(key.clone());
                Ok(PwdLock {
                    file: Some(file),
                    key,
                })
            }
            // The deadline passed (EINTR), or waiting would deadlock.
            Err(Errno::EINTR | Errno::EAGAIN | Errno::EACCES | Errno::EDEADLK) => {
                Err(ShadowError::Busy {
                    pid: lock_holder(&file),
                })
            }
            Err(e) => Err(io_error("lock", path, e.into())),
        }
    }
}

impl Drop for PwdLock {
    fn drop(&mut self) {
        let mut held = held_pwd_locks();
        // Closing the descriptor is what releases the lock.
        drop(self.file.take());
        held.retain(|k| k != &self.key);
        PWD_LOCK_RELEASED.notify_all();
    }
}

/// The registry key of a lock file: its directory canonicalised (which opens
/// nothing, so it can't drop a lock we hold), plus its name.
fn registry_key(path: &Path) -> Result<PathBuf, ShadowError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = dir
        .canonicalize()
        .map_err(|e| io_error("find the directory of", path, e))?;
    Ok(dir.join(path.file_name().unwrap_or_default()))
}

fn whole_file(kind: libc::c_int) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// The process holding a conflicting lock on `file`, if one still does.
fn lock_holder(file: &File) -> Option<u32> {
    let mut probe = whole_file(libc::F_WRLCK);
    fcntl(file, FcntlArg::F_GETLK(&mut probe)).ok()?;
    if probe.l_type == libc::F_UNLCK as libc::c_short {
        return None;
    }
    u32::try_from(probe.l_pid).ok().filter(|&pid| pid > 0)
}

/// `/etc/shadow.lock`, created by us and removed on drop if it is still ours.
pub(super) struct LockFile {
    path: PathBuf,
}

impl LockFile {
    /// Locks `file` (e.g. `/etc/shadow`) through `file.lock`, as shadow-utils'
    /// `commonio_lock_nowait`, retried until `deadline`.
    ///
    /// Callers must hold the matching [`PwdLock`] first: it guarantees no other
    /// `LockFile` of this process exists, so a lock naming our own PID can only
    /// be left over from a dead process that had the same PID.
    pub(super) fn acquire(file: &Path, deadline: Instant) -> Result<Self, ShadowError> {
        let lock = with_suffix(file, ".lock");
        let temp = with_suffix(file, &format!(".{}", own_pid()));
        retry_until(deadline, || {
            write_pid_file(&temp)?;
            let _remove_temp = super::RemoveOnDrop::new(&temp);
            match std::fs::hard_link(&temp, &lock) {
                // The link count is checked on the file we created, as
                // shadow-utils does: 2 means the link is ours.
                Ok(()) => match std::fs::metadata(&temp) {
                    Ok(meta) if meta.nlink() == 2 => {
                        Ok(Attempt::Acquired(LockFile { path: lock.clone() }))
                    }
                    Ok(_) => Ok(Attempt::Held(ShadowError::Busy { pid: None })),
                    Err(e) => Err(io_error("check the lock file", &temp, e)),
                },
                Err(e) if e.kind() == ErrorKind::AlreadyExists => take_over_if_stale(&lock),
                Err(e) => Err(io_error("create the lock file", &lock, e)),
            }
        })
    }

    /// Whether `shadow.lock` still names this process.
    pub(super) fn is_ours(&self) -> bool {
        matches!(read_lock(&self.path), Ok((_, Some(pid))) if pid == own_pid())
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Someone may have removed a lock they thought stale and taken it:
        // never remove theirs.
        if self.is_ours() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes the `file.<pid>` temporaries of the link protocol that processes
/// killed mid-`acquire` left behind (shadow-utils leaves them too). Only a
/// file that is what the protocol writes — a small regular file holding its
/// own pid, as `"<pid>\0"` or `"<pid>"`, or the start of it — and whose process is
/// gone is removed: a live process may be about to link its own, and an
/// administrator's `shadow.20250101` backup holds no such thing. Called with
/// the lock held; best effort.
pub(super) fn remove_dead_pid_files(file: &Path) {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
        return;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        let Some(pid) = entry_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<i32>().ok())
            .filter(|&pid| pid > 0)
        else {
            continue;
        };
        let path = entry.path();
        let written_by_the_protocol = std::fs::symlink_metadata(&path)
            .is_ok_and(|meta| meta.is_file() && meta.len() <= 12)
            && std::fs::read(&path).is_ok_and(|content| {
                // A process killed while writing it leaves a part of it.
                let content = content.strip_suffix(b"\0").unwrap_or(&content);
                pid.to_string().as_bytes().starts_with(content)
            });
        if written_by_the_protocol && kill(Pid::from_raw(pid), None) == Err(Errno::ESRCH) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Writes our PID the way shadow-utils does (decimal, then a NUL byte; its
/// reader rejects anything else) and makes it durable before linking.
fn write_pid_file(path: &Path) -> Result<(), ShadowError> {
    let error = |e| io_error("create the lock file", path, e);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(error)?;
    let written = file
        .write_all(format!("{}\0", own_pid()).as_bytes())
        .and_then(|()| file.sync_data());
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(error(e));
    }
    Ok(())
}

/// The raw bytes of a lock file and the PID they name, if they name one.
fn read_lock(path: &Path) -> std::io::Result<(Vec<u8>, Option<u32>)> {
    let mut raw = Vec::new();
    File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .take(32)
        .read_to_end(&mut raw)?;
    Ok((raw.clone(), parse_pid(&raw)))
}

/// A PID as shadow-utils (`"1234\0"`) or other tools (`"1234\n"`) write it.
/// Zero and anything beyond `pid_t` are refused: `kill(0, 0)` would probe our
/// own process group.
fn parse_pid(raw: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(raw).ok()?;
    let digits = text.trim_end_matches(['\0', '\n', ' ']);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid: i32 = digits.parse().ok()?;
    u32::try_from(pid).ok().filter(|&pid| pid > 0)
}

/// `shadow.lock` exists: report its live holder, or remove it if its process
/// is gone and ask for another try.
fn take_over_if_stale(lock: &Path) -> Result<Attempt<LockFile>, ShadowError> {
    let (raw, pid) = match read_lock(lock) {
        Ok(found) => found,
        // Released between our link() and this read.
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Attempt::Again),
        Err(e) => return Err(io_error("read the lock file", lock, e)),
    };
    let Some(pid) = pid else {
        return Ok(Attempt::Held(ShadowError::BadLock {
            path: lock.display().to_string(),
        }));
    };
    if pid != own_pid() {
        // EPERM means the process exists; only ESRCH proves it is gone.
        match kill(Pid::from_raw(pid as i32), None) {
            Err(Errno::ESRCH) => {}
            _ => return Ok(Attempt::Held(ShadowError::Busy { pid: Some(pid) })),
        }
    }
    // Narrow the race with another process doing the same takeover: only
    // remove the file if it still holds what we judged stale.
    if matches!(read_lock(lock), Ok((now, _)) if now == raw) {
        match std::fs::remove_file(lock) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove the stale lock file", lock, e)),
        }
    }
    Ok(Attempt::Again)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_is_read_as_shadow_utils_and_others_write_it() {
        assert_eq!(parse_pid(b"1234\0"), Some(1234));
        assert_eq!(parse_pid(b"1234\n"), Some(1234));
        assert_eq!(parse_pid(b"1234"), Some(1234));
        for bad in [
            &b""[..],
            b"\0",
            b"0\0",
            b"-1\0",
            b"12a\0",
            b"99999999999\0",
            b" 12",
        ] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_the_link_protocols_dead_temporaries_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let shadow = tmp.path().join("shadow");
        // A pid no process can have (above any pid_max), written as the
        // protocol writes it, next to an administrator's dated backup.
        let dead = tmp.path().join("shadow.99999999");
        std::fs::write(&dead, b"99999999\0").unwrap();
        // Killed half-way through writing it.
        let torn = tmp.path().join("shadow.99999998");
        std::fs::write(&torn, b"999").unwrap();
        let backup = tmp.path().join("shadow.20250101");
        std::fs::write(&backup, b"root:*:19000:0:99999:7:::\n").unwrap();
        let ours = tmp.path().join(format!("shadow.{}", own_pid()));
        std::fs::write(&ours, format!("{}\0", own_pid())).unwrap();
        remove_dead_pid_files(&shadow);
        assert!(!dead.exists(), "a dead process's temporary stays");
        assert!(!torn.exists(), "a half-written temporary stays");
        assert!(backup.exists(), "a backup was deleted");
        assert!(ours.exists(), "a live process's temporary was deleted");
    }

    #[test]
    fn suffix_is_appended_to_the_file_name() {
        assert_eq!(
            with_suffix(Path::new("/r/etc/shadow"), ".lock"),
            Path::new("/r/etc/shadow.lock")
        );
    }
}
