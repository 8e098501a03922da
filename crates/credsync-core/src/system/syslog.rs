//! The audit trail: syslog, facility `LOG_AUTHPRIV`, with the process id, as
//! shadow-utils logs. Messages are fixed English text built by `crate::audit`
//! from validated names; they never hold a password or a hash, and they are
//! always passed as the argument of a `"%s"` format.

use std::ffi::{CStr, CString};
use std::sync::{Mutex, Once, PoisonError};

static OPEN: Once = Once::new();

/// The syslog identity of this program: `credsync`, or `credsyncd` for the service.
static IDENTITY: Mutex<&'static CStr> = Mutex::new(c"credsync");

/// Logs under `identity` from now on (before the first message).
pub fn set_identity(identity: &'static CStr) {
    *IDENTITY.lock().unwrap_or_else(PoisonError::into_inner) = identity;
}

/// Set inside someone else's process (`pam_credsync.so` in passwd, sshd):
/// messages go out under the host's own syslog identity with this prefix,
/// as `pam_syslog` writes them, and `openlog` is never called — it would
/// change the host's identity for the rest of its life.
static MODULE_PREFIX: Mutex<Option<String>> = Mutex::new(None);

/// From now on, log as a module inside the host process: `prefix` (such as
/// `pam_credsync(passwd:chauthtok): `) before every message, no `openlog`.
pub fn log_as_module(prefix: String) {
    *MODULE_PREFIX.lock().unwrap_or_else(PoisonError::into_inner) = Some(prefix);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Notice,
    Warning,
    Error,
}

pub fn log(priority: Priority, message: &str) {
    let prefix = MODULE_PREFIX
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let message = match prefix {
        Some(prefix) => format!("{prefix}{message}"),
        None => {
            open();
            message.to_owned()
        }
    };
    let level = match priority {
        Priority::Notice => libc::LOG_NOTICE,
        Priority::Warning => libc::LOG_WARNING,
        Priority::Error => libc::LOG_ERR,
    };
    // Interior NULs can't come from validated names; drop them rather than fail.
    let text = CString::new(message.replace('\0', "")).unwrap_or_default();
    // SAFETY: both pointers are valid NUL-terminated strings for the call, and the
    // message is an argument to a constant "%s" format, never a format itself.
    unsafe { libc::syslog(libc::LOG_AUTHPRIV | level, c"%s".as_ptr(), text.as_ptr()) };
}

fn open() {
    OPEN.call_once(|| {
        let identity = *IDENTITY.lock().unwrap_or_else(PoisonError::into_inner);
        // SAFETY: the identity is a 'static C string, as openlog keeps the pointer;
        // the option and facility are libc constants.
        unsafe { libc::openlog(identity.as_ptr(), libc::LOG_PID, libc::LOG_AUTHPRIV) };
    });
}
