//! Records for the Linux audit trail, as shadow-utils and libpam send them:
//! credsync writes `/etc/shadow` itself, so without these the audit log would
//! never hear of its changes. One record per account and operation, through
//! libaudit's `audit_log_acct_message` (`op=… acct="alice" … res=success`);
//! the kernel adds `auid=` and `ses=`, the login uid of the human behind
//! `sudo`, which [`login_uid`] also reads for syslog and the record.
//!
//! A kernel without audit (`audit_open` fails with `EINVAL`,
//! `EPROTONOSUPPORT` or `EAFNOSUPPORT`) is ignored, as shadow-utils'
//! `audit_help_open` ignores it; so is a record the kernel refuses (no
//! `CAP_AUDIT_WRITE`, as in a user namespace): auditing never stops a change.
//! Under `--root` nothing is sent: the account is an image's, not this
//! system's.
//!
//! All of this module's `unsafe` is the two libaudit calls.

use std::ffi::{CString, c_char, c_int, c_uint};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static OFF: AtomicBool = AtomicBool::new(false);

/// No records from this run: it works on an alternate root (`--root`).
pub fn turn_off() {
    OFF.store(true, Ordering::Relaxed);
}

/// `linux/audit.h` record types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    /// A password was changed (`passwd`, pam_unix).
    ChangedAuthToken = 1108,
    /// An account was locked (`passwd -l`).
    AccountLocked = 1135,
    /// An account was unlocked (`passwd -u`).
    AccountUnlocked = 1136,
}

/// The login uid the kernel keeps for this process's session
/// (`/proc/self/loginuid`): the user who logged in, whatever `sudo` or a
/// setuid bit made of the other ids. `None` when unset (4294967295: a boot
/// service, a session no PAM login started) or unreadable.
pub fn login_uid() -> Option<u32> {
    let text = std::fs::read_to_string("/proc/self/loginuid").ok()?;
    text.trim().parse().ok().filter(|&uid| uid != u32::MAX)
}

/// Sends one record for `account`: `op` names the operation
/// (`changed-password`, `locked-password`, …), `success` gives `res=`.
pub fn send(kind: RecordType, op: &str, account: &str, success: bool) {
    if OFF.load(Ordering::Relaxed) {
        return;
    }
    let Some(fd) = audit_fd() else {
        return;
    };
    let (Ok(op), Ok(account)) = (CString::new(op), CString::new(account)) else {
        return;
    };
    // SAFETY: `fd` is the descriptor `audit_open` returned; the strings are
    // NUL-terminated and outlive the call; NULL pgname, host, addr and tty
    // let libaudit fill them in itself; `c_uint::MAX` (-1) says there is no
    // id, so the record names the account. A refusal (negative return) is
    // ignored on purpose, see the module's comment.
    unsafe {
        sys::audit_log_acct_message(
            fd,
            kind as c_int,
            std::ptr::null(),
            op.as_ptr(),
            account.as_ptr(),
            c_uint::MAX,
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null(),
            c_int::from(success),
        );
    }
}

/// The audit socket, opened once per run; `None` when the kernel has no
/// audit or it can't be opened.
fn audit_fd() -> Option<c_int> {
    static FD: OnceLock<Option<c_int>> = OnceLock::new();
    *FD.get_or_init(|| {
        // SAFETY: audit_open takes no arguments and returns a new descriptor
        // (close-on-exec) or -1 with errno set.
        let fd = unsafe { sys::audit_open() };
        (fd >= 0).then_some(fd)
    })
}

mod sys {
    use super::{c_char, c_int, c_uint};

    #[link(name = "audit")]
    unsafe extern "C" {
        pub fn audit_open() -> c_int;
        pub fn audit_log_acct_message(
            audit_fd: c_int,
            kind: c_int,
            pgname: *const c_char,
            op: *const c_char,
            name: *const c_char,
            id: c_uint,
            host: *const c_char,
            addr: *const c_char,
            tty: *const c_char,
            result: c_int,
        ) -> c_int;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_uid_is_this_sessions_or_none() {
        let raw = std::fs::read_to_string("/proc/self/loginuid").unwrap();
        let expected = raw.trim().parse::<u32>().ok().filter(|&u| u != u32::MAX);
        assert_eq!(login_uid(), expected);
    }
}
