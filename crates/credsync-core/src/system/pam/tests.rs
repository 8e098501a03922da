//! The PAM client against the real libpam and real modules, on a private
//! configuration directory (`pam_start_confdir`), so nothing under `/etc` is
//! read or touched. `pam_exec` stands in for pam_unix: it asks for the password
//! through our conversation and a script compares it with the expected bytes;
//! `pam_debug` returns whatever code a test needs.

use super::*;
use std::cell::RefCell;
use std::path::Path;
use tempfile::TempDir;

const SERVICE: &CStr = c"credsync";

thread_local! {
    static SHOWN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

pub(super) fn remember(line: &str) {
    SHOWN.with(|shown| shown.borrow_mut().push(line.to_owned()));
}

pub(super) fn shown() -> Vec<String> {
    SHOWN.with(|shown| shown.take())
}

pub(super) fn explode(_: &str) {
    panic!("a bug while showing a message");
}

fn password(bytes: &[u8]) -> Password {
    Password::new(bytes.to_vec()).unwrap()
}

/// A PAM service file named `credsync` in a directory of its own.
struct Service {
    dir: TempDir,
}

impl Service {
    fn with_stack(stack: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("credsync"), stack).unwrap();
        Service { dir }
    }

    /// Debian's common-auth shape: the checking module jumps over `pam_deny`
    /// on success. It accepts only `expected`, for alice, asked for by bob.
    fn accepting(expected: &[u8], account: &str) -> Self {
        let service = Service::with_stack("");
        let dir = service.dir.path();
        std::fs::write(dir.join("expected"), expected).unwrap();
        std::fs::write(
            dir.join("check"),
            format!(
                "[ \"$PAM_USER\" = alice ] && [ \"$PAM_RUSER\" = bob ] && cmp -s - {}\n",
                dir.join("expected").display()
            ),
        )
        .unwrap();
        service.write_stack(&format!(
            "auth [success=1 default=ignore] pam_exec.so expose_authtok quiet /bin/sh {}\n\
             auth requisite pam_deny.so\n\
             auth required pam_permit.so\n\
             account {account}\n",
            dir.join("check").display()
        ));
        service
    }

    fn write_stack(&self, stack: &str) {
        std::fs::write(self.dir.path().join("credsync"), stack).unwrap();
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `authenticate`, with this directory instead of `/etc/pam.d` and the
    /// messages going to `show`.
    fn authenticate(
        &self,
        user: &str,
        password: &Password,
        show: fn(&str),
    ) -> Result<AccountState, PamError> {
        let confdir = CString::new(self.path().as_os_str().as_encoded_bytes()).unwrap();
        let user = CString::new(user).unwrap();
        let conversation = Conversation::new(password.as_bytes(), show);
        let mut transaction = Transaction::start_in(&confdir, SERVICE, &user, &conversation)?;
        check(&mut transaction, &conversation, &user, c"bob")
    }
}

#[test]
fn the_right_password_passes_and_the_account_is_valid() {
    let secret = b"Old#Pass1:\xff\xfe";
    let service = Service::accepting(secret, "required pam_permit.so");
    let state = service.authenticate("alice", &password(secret), remember);
    assert_eq!(state.unwrap(), AccountState::Valid);
}

#[test]
fn a_wrong_password_is_an_authentication_failure_that_does_not_repeat_it() {
    let service = Service::accepting(b"Old#Pass1", "required pam_permit.so");
    let error = service
        .authenticate("alice", &password(b"Guess#123"), remember)
        .unwrap_err();
    assert!(matches!(error, PamError::AuthFailed), "{error:?}");
    assert!(!error.to_string().contains("Guess#123"));
}

#[test]
fn the_password_of_another_user_is_not_checked_for_alice() {
    // The check script sees PAM_USER; bob's name must not pass as alice's.
    let service = Service::accepting(b"Old#Pass1", "required pam_permit.so");
    let error = service
        .authenticate("bob", &password(b"Old#Pass1"), remember)
        .unwrap_err();
    assert!(matches!(error, PamError::AuthFailed), "{error:?}");
}

#[test]
fn unknown_users_and_exhausted_tries_look_like_a_wrong_password() {
    for code in ["user_unknown", "maxtries", "auth_err"] {
        let service = Service::with_stack(&format!(
            "auth required pam_debug.so auth={code}\naccount required pam_permit.so\n"
        ));
        let error = service
            .authenticate("alice", &password(b"Old#Pass1"), remember)
            .unwrap_err();
        assert!(matches!(error, PamError::AuthFailed), "{code}: {error:?}");
        assert_eq!(error.to_string(), "authentication failure");
    }
}

#[test]
fn an_expired_password_is_let_through_so_it_can_be_changed() {
    let service = Service::accepting(b"Old#Pass1", "required pam_debug.so acct=new_authtok_reqd");
    let state = service.authenticate("alice", &password(b"Old#Pass1"), remember);
    assert_eq!(state.unwrap(), AccountState::MustChange);
}

#[test]
fn a_refused_account_is_reported_with_pams_reason() {
    let service = Service::accepting(b"Old#Pass1", "required pam_debug.so acct=acct_expired");
    let error = service
        .authenticate("alice", &password(b"Old#Pass1"), remember)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the account is not allowed to log in: User account has expired"
    );
}

#[test]
fn the_account_stack_is_not_asked_when_the_password_is_wrong() {
    // pam_debug would report the account as valid; a wrong password must win.
    let service = Service::accepting(b"Old#Pass1", "required pam_debug.so");
    let error = service.authenticate("alice", &password(b"nope"), remember);
    assert!(matches!(error, Err(PamError::AuthFailed)), "{error:?}");
}

#[test]
fn module_messages_are_shown_to_the_user() {
    let service = Service::with_stack(
        "auth optional pam_echo.so Checking the password of %u\n\
         auth required pam_permit.so\n\
         account required pam_permit.so\n",
    );
    let state = service.authenticate("alice", &password(b"Old#Pass1"), remember);
    assert_eq!(state.unwrap(), AccountState::Valid);
    assert_eq!(shown(), vec!["Checking the password of alice".to_owned()]);
}

#[test]
fn a_panic_while_answering_pam_is_contained_and_fails_the_check() {
    let service = Service::with_stack(
        "auth optional pam_echo.so hello\n\
         auth required pam_permit.so\n\
         account required pam_permit.so\n",
    );
    let error = service
        .authenticate("alice", &password(b"Old#Pass1"), explode)
        .unwrap_err();
    assert!(error.to_string().contains("internal error"), "{error}");
}

#[test]
fn a_missing_service_fails_closed() {
    let service = Service::with_stack("");
    std::fs::remove_file(service.path().join("credsync")).unwrap();
    let result = service.authenticate("alice", &password(b"Old#Pass1"), remember);
    assert!(matches!(result, Err(PamError::Other(_))), "{result:?}");
}

#[test]
fn the_status_codes_are_the_ones_libpam_knows() {
    // pam_strerror's texts pin the values copied from _pam_types.h.
    let expected = [
        (sys::PAM_SUCCESS, "Success"),
        (sys::PAM_BUF_ERR, "Memory buffer error"),
        (sys::PAM_AUTH_ERR, "Authentication failure"),
        (
            sys::PAM_USER_UNKNOWN,
            "User not known to the underlying authentication module",
        ),
        (
            sys::PAM_MAXTRIES,
            "Have exhausted maximum number of retries for service",
        ),
        (
            sys::PAM_NEW_AUTHTOK_REQD,
            "Authentication token is no longer valid; new one required",
        ),
        (sys::PAM_CONV_ERR, "Conversation error"),
    ];
    for (code, text) in expected {
        assert_eq!(error_text(code), text, "code {code}");
    }
}

#[test]
fn the_structures_have_linux_pams_layout() {
    use std::mem::{offset_of, size_of};
    let pointer = size_of::<*const u8>();
    assert_eq!(offset_of!(sys::pam_message, msg_style), 0);
    assert_eq!(offset_of!(sys::pam_message, msg), pointer);
    assert_eq!(offset_of!(sys::pam_response, resp), 0);
    assert_eq!(offset_of!(sys::pam_response, resp_retcode), pointer);
    assert_eq!(size_of::<sys::pam_response>(), 2 * pointer);
    assert_eq!(offset_of!(sys::pam_conv, appdata_ptr), pointer);
}
