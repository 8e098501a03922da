//! The PAM client: checks a user's current password through the system's PAM
//! stack (`/etc/pam.d/<service>`, `auth` and `account`), the way `passwd` checks
//! it before a self-service change. credsync never calls `pam_chauthtok`: it
//! writes `/etc/shadow` itself.
//!
//! Guarantees: the password, collected by the caller beforehand, only reaches PAM
//! as an answer to a hidden prompt (see `converse`); the PAM handle can't outlive
//! that password and is always closed with `pam_end`; no module can swap the
//! user being checked; an expired password is let through (`MustChange`)
//! precisely so that it can be changed; errors never contain a secret, and don't
//! tell whether an account exists.
//!
//! All of credsync's PAM `unsafe` code lives here, in `sys` (the declarations)
//! and `converse` (the callback).

mod converse;
mod sys;

use std::ffi::{CStr, CString, c_int, c_void};
use std::marker::PhantomData;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::ptr::{self, NonNull};

use crate::account::UserName;
use crate::secret::Password;

use converse::{Conversation, ConversationFailure};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use sys::{
    PAM_AUTH_ERR, PAM_FAIL_DELAY, PAM_MAXTRIES, PAM_NEW_AUTHTOK_REQD, PAM_RUSER, PAM_SUCCESS,
    PAM_TTY, PAM_USER, PAM_USER_UNKNOWN, pam_conv, pam_handle_t,
};

/// The delay libpam asked for after the last failure, in microseconds.
static FAILURE_DELAY_USEC: AtomicU32 = AtomicU32::new(0);

/// libpam calls this instead of sleeping after a failed check
/// (`PAM_FAIL_DELAY`): the caller sleeps [`failure_delay`] itself, after it
/// has counted the failure, so a caller who interrupts the delay can't
/// escape the count.
extern "C" fn note_failure_delay(status: c_int, usec: std::ffi::c_uint, _appdata: *mut c_void) {
    // libpam calls the hook after a success too: nothing to sleep then.
    let usec = if status == PAM_SUCCESS { 0 } else { usec };
    FAILURE_DELAY_USEC.store(usec, Ordering::Relaxed);
}

/// The delay PAM's modules asked for after the last failed check (pam_unix
/// 2 s, pam_faillock's `nodelay` none), for the caller to sleep once the
/// failure is counted; zero after a success. Taking it resets it.
pub fn failure_delay() -> Duration {
    Duration::from_micros(u64::from(FAILURE_DELAY_USEC.swap(0, Ordering::Relaxed)))
}

/// What `pam_acct_mgmt` said about an account whose password was right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    Valid,
    /// PAM_NEW_AUTHTOK_REQD: expired, allowed through so it can be changed.
    MustChange,
}

#[derive(Debug, thiserror::Error)]
pub enum PamError {
    /// Wrong password, unknown user, too many tries or a lockout: PAM reports
    /// them alike on purpose, and so does credsync.
    #[error("authentication failure")]
    AuthFailed,
    #[error("the account is not allowed to log in: {0}")]
    AccountRefused(String),
    #[error("PAM error: {0}")]
    Other(String),
}

/// Checks `password` for `user` through the PAM service `service`, on behalf of
/// `ruser` (the user who runs credsync), then asks the account stack whether
/// `user` may use the system.
pub fn authenticate(
    service: &str,
    user: &UserName,
    ruser: &UserName,
    password: &Password,
) -> Result<AccountState, PamError> {
    let service = CString::new(service)
        .map_err(|_| PamError::Other("the PAM service name contains a NUL byte".into()))?;
    let conversation = Conversation::new(password.as_bytes(), converse::show_on_stderr);
    let user = c_name(user)?;
    let mut transaction = Transaction::start(&service, &user, &conversation)?;
    check(&mut transaction, &conversation, &user, &c_name(ruser)?)
}

/// The steps after `pam_start`, shared with the tests (which start PAM on a
/// private configuration directory).
fn check(
    transaction: &mut Transaction<'_>,
    conversation: &Conversation<'_>,
    user: &CStr,
    ruser: &CStr,
) -> Result<AccountState, PamError> {
    transaction.set_item(PAM_RUSER, ruser)?;
    transaction.set_fail_delay(note_failure_delay)?;
    if let Some(tty) = stdin_tty() {
        transaction.set_item(PAM_TTY, &tty)?;
    }

    let status = transaction.authenticate();
    if conversation.panicked() {
        return Err(PamError::Other(
            "internal error while answering PAM; please report this bug".into(),
        ));
    }
    if status != PAM_SUCCESS {
        if let Some(failure) = conversation.failure() {
            return Err(conversation_error(failure));
        }
        return Err(match status {
            PAM_AUTH_ERR | PAM_USER_UNKNOWN | PAM_MAXTRIES => PamError::AuthFailed,
            other => PamError::Other(format!(
                "the password could not be checked: {}",
                error_text(other)
            )),
        });
    }

    // A module may rewrite PAM_USER (e.g. to a canonical name); the password
    // that was checked would then not be the one of the account being changed.
    if !transaction.user_is(user)? {
        return Err(PamError::Other("PAM changed the user name".into()));
    }

    match transaction.acct_mgmt() {
        PAM_SUCCESS => Ok(AccountState::Valid),
        PAM_NEW_AUTHTOK_REQD => Ok(AccountState::MustChange),
        other => Err(PamError::AccountRefused(error_text(other))),
    }
}

fn conversation_error(failure: ConversationFailure) -> PamError {
    PamError::Other(match failure {
        ConversationFailure::UnanswerablePrompt(prompt) => format!(
            "a PAM module asked \"{prompt}\", which credsync cannot answer; \
             the PAM service must ask for nothing but the password"
        ),
        ConversationFailure::PasswordTooLong => {
            "the password is longer than PAM accepts (512 bytes)".into()
        }
        ConversationFailure::UnsupportedMessage(_) => {
            "a PAM module sent a request credsync does not understand".into()
        }
        ConversationFailure::OutOfMemory => "out of memory while answering PAM".into(),
    })
}

fn c_name(name: &UserName) -> Result<CString, PamError> {
    // A UserName is ASCII without NUL; this can't fail, but is not worth a panic.
    CString::new(name.as_str()).map_err(|_| PamError::Other(format!("invalid user name {name}")))
}

/// The terminal on stdin, for PAM_TTY (pam_securetty, pam_access, logs).
fn stdin_tty() -> Option<CString> {
    let stdin = std::io::stdin();
    if !nix::unistd::isatty(stdin.as_fd()).unwrap_or(false) {
        return None;
    }
    let path = nix::unistd::ttyname(stdin.as_fd()).ok()?;
    CString::new(path.into_os_string().into_vec()).ok()
}

/// PAM's text for a status code, lossily converted; these are fixed strings
/// from libpam, never anything a user typed.
fn error_text(status: c_int) -> String {
    // SAFETY: Linux-PAM and OpenPAM both ignore the handle argument of
    // pam_strerror, and return NULL or a static NUL-terminated string.
    let text = unsafe { sys::pam_strerror(ptr::null_mut(), status) };
    if text.is_null() {
        return format!("PAM error {status}");
    }
    // SAFETY: non-null, static, NUL-terminated (see above).
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// An open PAM transaction (`pam_start` .. `pam_end`). It borrows the
/// conversation, and through it the password, for its whole life, so PAM can
/// never call back into freed memory.
struct Transaction<'c> {
    handle: NonNull<pam_handle_t>,
    /// Last status returned by PAM, passed to `pam_end` for modules' cleanup.
    last_status: c_int,
    /// Kept at a fixed address for PAM, which may keep a pointer to it.
    _conv: Box<pam_conv>,
    _conversation: PhantomData<&'c Conversation<'c>>,
}

impl<'c> Transaction<'c> {
    fn start(
        service: &CStr,
        user: &CStr,
        conversation: &'c Conversation<'_>,
    ) -> Result<Self, PamError> {
        Self::start_with(service, conversation, |conv, handle| {
            // SAFETY: the strings are NUL-terminated and outlive the call (PAM
            // copies them); `conv` and `handle` are valid pointers.
            unsafe { sys::pam_start(service.as_ptr(), user.as_ptr(), conv, handle) }
        })
    }

    /// Like `start`, with the service file read from `confdir` instead of
    /// `/etc/pam.d` (Linux-PAM >= 1.4).
    #[cfg(test)]
    fn start_in(
        confdir: &CStr,
        service: &CStr,
        user: &CStr,
        conversation: &'c Conversation<'_>,
    ) -> Result<Self, PamError> {
        Self::start_with(service, conversation, |conv, handle| {
            // SAFETY: as in `start`; `confdir` is NUL-terminated and outlives the call.
            unsafe {
                sys::pam_start_confdir(
                    service.as_ptr(),
                    user.as_ptr(),
                    conv,
                    confdir.as_ptr(),
                    handle,
                )
            }
        })
    }

    fn start_with(
        service: &CStr,
        conversation: &'c Conversation<'_>,
        pam_start: impl FnOnce(*const pam_conv, *mut *mut pam_handle_t) -> c_int,
    ) -> Result<Self, PamError> {
        let conv = Box::new(pam_conv {
            conv: Some(converse::converse),
            appdata_ptr: ptr::from_ref(conversation).cast_mut().cast::<c_void>(),
        });
        let mut handle = ptr::null_mut();
        let status = pam_start(&*conv, &mut handle);
        let handle = NonNull::new(handle);
        match (status, handle) {
            (PAM_SUCCESS, Some(handle)) => Ok(Transaction {
                handle,
                last_status: status,
                _conv: conv,
                _conversation: PhantomData,
            }),
            // On failure Linux-PAM has already freed the handle.
            _ => Err(PamError::Other(format!(
                "could not start PAM service '{}': {}",
                service.to_string_lossy(),
                error_text(status)
            ))),
        }
    }

    fn record(&mut self, status: c_int) -> c_int {
        self.last_status = status;
        status
    }

    fn set_item(&mut self, item: c_int, value: &CStr) -> Result<(), PamError> {
        // SAFETY: the handle is open; PAM copies the NUL-terminated string.
        let status =
            unsafe { sys::pam_set_item(self.handle.as_ptr(), item, value.as_ptr().cast()) };
        match self.record(status) {
            PAM_SUCCESS => Ok(()),
            other => Err(PamError::Other(format!(
                "could not pass details to PAM: {}",
                error_text(other)
            ))),
        }
    }

    fn set_fail_delay(
        &mut self,
        delay: extern "C" fn(c_int, std::ffi::c_uint, *mut c_void),
    ) -> Result<(), PamError> {
        // SAFETY: the handle is open; for PAM_FAIL_DELAY libpam stores the
        // function pointer itself (not a pointer to it), and a plain
        // `extern "C"` function lives for the whole process.
        let status = unsafe {
            sys::pam_set_item(self.handle.as_ptr(), PAM_FAIL_DELAY, delay as *const c_void)
        };
        match self.record(status) {
            PAM_SUCCESS => Ok(()),
            other => Err(PamError::Other(format!(
                "could not pass details to PAM: {}",
                error_text(other)
            ))),
        }
    }

    fn authenticate(&mut self) -> c_int {
        // Like sudo-rs: an account without a password (`nullok` in the stack)
        // must not pass a check whose point is proving the current password.
        let flags = sys::PAM_DISALLOW_NULL_AUTHTOK;
        // SAFETY: the handle is open, and the conversation it calls is alive
        // for 'c, which outlives `self`.
        let status = unsafe { sys::pam_authenticate(self.handle.as_ptr(), flags) };
        self.record(status)
    }

    fn acct_mgmt(&mut self) -> c_int {
        // SAFETY: as in `authenticate`.
        let status = unsafe { sys::pam_acct_mgmt(self.handle.as_ptr(), 0) };
        self.record(status)
    }

    /// Whether PAM_USER is still exactly `expected`.
    fn user_is(&mut self, expected: &CStr) -> Result<bool, PamError> {
        let mut item: *const c_void = ptr::null();
        // SAFETY: the handle is open and `item` is a valid place for the answer.
        let status = unsafe { sys::pam_get_item(self.handle.as_ptr(), PAM_USER, &mut item) };
        if self.record(status) != PAM_SUCCESS {
            return Err(PamError::Other(format!(
                "could not read the user name back from PAM: {}",
                error_text(status)
            )));
        }
        if item.is_null() {
            return Ok(false);
        }
        // SAFETY: PAM_USER is a NUL-terminated string owned by the handle, valid
        // until the item changes; it is only read within this call.
        let actual = unsafe { CStr::from_ptr(item.cast()) };
        Ok(actual == expected)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle came from a successful pam_start and is ended
        // exactly once, here; nothing uses it afterwards.
        unsafe { sys::pam_end(self.handle.as_ptr(), self.last_status) };
    }
}

#[cfg(test)]
mod tests;
