//! The audit trail: syslog, facility `LOG_AUTHPRIV`, with the process id, as
//! shadow-utils logs. Messages are fixed English text built by `crate::audit`
//! from validated names; they never hold a password or a hash, and they are
//! always passed as the argument of a `"%s"` format.

use std::ffi::CString;
use std::sync::Once;

static OPEN: Once = Once::new();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Notice,
    Warning,
}

pub fn log(priority: Priority, message: &str) {
    OPEN.call_once(|| {
        // SAFETY: the identity is a 'static C string, as openlog keeps the pointer;
        // the option and facility are libc constants.
        unsafe { libc::openlog(c"credsync".as_ptr(), libc::LOG_PID, libc::LOG_AUTHPRIV) };
    });
    let level = match priority {
        Priority::Notice => libc::LOG_NOTICE,
        Priority::Warning => libc::LOG_WARNING,
    };
    // Interior NULs can't come from validated names; drop them rather than fail.
    let text = CString::new(message.replace('\0', "")).unwrap_or_default();
    // SAFETY: both pointers are valid NUL-terminated strings for the call, and the
    // message is an argument to a constant "%s" format, never a format itself.
    unsafe { libc::syslog(libc::LOG_AUTHPRIV | level, c"%s".as_ptr(), text.as_ptr()) };
}
