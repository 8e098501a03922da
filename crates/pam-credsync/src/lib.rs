//! `pam_credsync.so`: in the `password` stack, after pam_unix, it takes every
//! password change made through PAM — `passwd`, `chpasswd`, sshd's or `su`'s
//! forced change — into credsync's record in the same operation
//! (`credsync_core::pam_change`). The entry points only translate PAM's items
//! and return codes, as pam_unix and pam_sss do; the logic is the core's.
//!
//! It runs inside someone else's process, often setuid root, so: no panic
//! crosses the FFI boundary (each entry point is inside `catch_unwind`, and a
//! panic is `PAM_IGNORE` with a log line); nothing is written to stdout or
//! stderr (syslog only, under the host's identity: `pam_credsync(passwd:chauthtok): …`);
//! no thread is left running; every descriptor it opens is close-on-exec and
//! closed before it returns; the signal mask it holds around the locks, and
//! SIGALRM's handler while it waits for them, are put back.
//!
//! Return codes: `PAM_IGNORE` when it has nothing to say (the preliminary
//! pass, a user credsync doesn't manage, shadow not holding this password),
//! `PAM_SUCCESS` once the record follows, and `PAM_AUTHTOK_ERR` when the
//! record can't be written — which `password optional` (the package's
//! profile) ignores, leaving the change to `sync`, and `password required`
//! reports to the caller, although Linux already has the new password.

mod ffi;

use credsync_core::account::UserName;
use credsync_core::clock::Now;
use credsync_core::config::Config;
use credsync_core::pam_change::{self, Followed, PamChange};
use credsync_core::secret::Password;
use credsync_core::system::Paths;
use credsync_core::system::linux_audit;
use credsync_core::system::syslog::{self, Priority};
use ffi::{Handle, PAM_AUTHTOK_ERR, PAM_IGNORE, PAM_SUCCESS, PAM_UPDATE_AUTHTOK};
use std::ffi::{c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// `pam_sm_chauthtok`: the record follows in `PAM_UPDATE_AUTHTOK`.
///
/// # Safety
/// Called by libpam with a valid handle and `argc` valid C strings in `argv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_sm_chauthtok(
    pamh: *mut ffi::pam_handle_t,
    flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    if flags & PAM_UPDATE_AUTHTOK == 0 {
        return PAM_IGNORE;
    }
    // SAFETY: libpam passes the handle of the transaction that called us,
    // valid for the whole call.
    let handle = unsafe { Handle::new(pamh) };
    match catch_unwind(AssertUnwindSafe(|| update(&handle))) {
        Ok(code) => code,
        Err(_) => {
            syslog::log(
                Priority::Error,
                "internal error; the record was not updated (sync will adopt the change)",
            );
            PAM_IGNORE
        }
    }
}

/// The other entry points have nothing to do.
macro_rules! ignored {
    ($($name:ident),*) => {$(
        /// Returns `PAM_IGNORE`: the module only acts on password changes.
        ///
        /// # Safety
        /// Never dereferences its arguments.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            _pamh: *mut ffi::pam_handle_t,
            _flags: c_int,
            _argc: c_int,
            _argv: *const *const c_char,
        ) -> c_int {
            PAM_IGNORE
        }
    )*};
}
ignored!(
    pam_sm_authenticate,
    pam_sm_setcred,
    pam_sm_acct_mgmt,
    pam_sm_open_session,
    pam_sm_close_session
);

fn update(handle: &Handle) -> c_int {
    let service = handle.service().unwrap_or_else(|| "?".to_owned());
    syslog::log_as_module(format!("pam_credsync({service}:chauthtok): "));
    let Some(user) = handle.user().and_then(|u| UserName::parse(&u).ok()) else {
        return PAM_IGNORE;
    };
    // PAM hands the new password over as a C string (no NUL inside).
    let Some(password) = handle
        .new_authtok()
        .and_then(|bytes| Password::new(bytes).ok())
    else {
        syslog::log(
            Priority::Warning,
            &format!("no new password for '{user}' from the modules before; record unchanged"),
        );
        return PAM_IGNORE;
    };
    if effective_uid() != 0 {
        syslog::log(
            Priority::Warning,
            &format!("not running as root; the record of '{user}' is left to sync"),
        );
        return PAM_IGNORE;
    }
    let paths = Paths::system();
    let config = match Config::load(&paths.config()) {
        Ok(config) => config,
        Err(e) => return failed(&user, &e.to_string()),
    };
    let by = changed_by(&user);
    let change = PamChange {
        user: &user,
        password: &password,
        service: &service,
        by: &by,
        auid: linux_audit::login_uid(),
    };
    match pam_change::follow(&paths, &config, &change, Now::read()) {
        Ok(Followed::Recorded { .. }) => PAM_SUCCESS,
        Ok(Followed::NotManaged) => PAM_IGNORE,
        Ok(Followed::ShadowDisagrees) => {
            syslog::log(
                Priority::Warning,
                &format!(
                    "/etc/shadow does not hold the new password of '{user}' (another module refused it, or another tool changed it since); record unchanged"
                ),
            );
            PAM_IGNORE
        }
        Err(e) => failed(&user, &e.to_string()),
    }
}

/// Loud, and in the user's terms: Linux has the new password already.
fn failed(user: &UserName, why: &str) -> c_int {
    syslog::log(
        Priority::Error,
        &format!(
            "the password of '{user}' changed in Linux, but the record could not follow ({why}); 'credsync sync' will adopt it"
        ),
    );
    PAM_AUTHTOK_ERR
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Who made the change: root, or — when the tool runs for an ordinary user
/// (`passwd` by the user, `su` switching to them) — the user themself, who
/// had to give their current password to pam_unix.
fn changed_by(user: &UserName) -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    if unsafe { libc::getuid() } == 0 {
        "root".to_owned()
    } else {
        user.to_string()
    }
}
