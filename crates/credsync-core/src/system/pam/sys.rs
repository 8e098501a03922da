//! The slice of Linux-PAM's C interface (`<security/pam_appl.h>`) that credsync
//! uses, declared by hand so that everything crossing the boundary is visible in
//! review. Values are those of `/usr/include/security/_pam_types.h` (Linux-PAM
//! 1.5); the tests check them against the library's own `pam_strerror` texts.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};
use std::marker::{PhantomData, PhantomPinned};

// Return codes.
pub const PAM_SUCCESS: c_int = 0;
/// Flag for `pam_authenticate`: an empty password hash never authenticates.
pub const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;
pub const PAM_BUF_ERR: c_int = 5;
pub const PAM_AUTH_ERR: c_int = 7;
pub const PAM_USER_UNKNOWN: c_int = 10;
pub const PAM_MAXTRIES: c_int = 11;
pub const PAM_NEW_AUTHTOK_REQD: c_int = 12;
pub const PAM_CONV_ERR: c_int = 19;

// Item types for pam_set_item / pam_get_item.
pub const PAM_USER: c_int = 2;
pub const PAM_TTY: c_int = 3;
pub const PAM_RUSER: c_int = 8;
/// `void (*)(int retval, unsigned usec_delay, void *appdata_ptr)`: called
/// instead of libpam's own sleep after a failure (Linux-PAM extension).
pub const PAM_FAIL_DELAY: c_int = 10;

// Message styles of a conversation.
pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
pub const PAM_PROMPT_ECHO_ON: c_int = 2;
pub const PAM_ERROR_MSG: c_int = 3;
pub const PAM_TEXT_INFO: c_int = 4;

/// Most messages PAM passes in one conversation call.
pub const PAM_MAX_NUM_MSG: usize = 32;
/// Longest answer PAM expects, without the terminating NUL.
pub const PAM_MAX_RESP_SIZE: usize = 512;

/// Opaque handle; neither `Send`, `Sync` nor `Unpin`: it stays where libpam put it.
#[repr(C)]
pub struct pam_handle_t {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

#[repr(C)]
pub struct pam_message {
    pub msg_style: c_int,
    pub msg: *const c_char,
}

#[repr(C)]
pub struct pam_response {
    /// `malloc`-family memory; whoever receives the array frees it.
    pub resp: *mut c_char,
    /// Unused by Linux-PAM; must be zero.
    pub resp_retcode: c_int,
}

/// `msg` is Linux-PAM's layout: an array of `num_msg` pointers to messages
/// (Solaris passes a pointer to an array of messages instead).
pub type ConversationFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const pam_message,
    resp: *mut *mut pam_response,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
pub struct pam_conv {
    pub conv: Option<ConversationFn>,
    pub appdata_ptr: *mut c_void,
}

#[link(name = "pam")]
unsafe extern "C" {
    pub fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const pam_conv,
        pamh: *mut *mut pam_handle_t,
    ) -> c_int;

    /// Linux-PAM >= 1.4 only, hence test-only: it lets tests use a private
    /// service directory instead of `/etc/pam.d`.
    #[cfg(test)]
    pub fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const pam_conv,
        confdir: *const c_char,
        pamh: *mut *mut pam_handle_t,
    ) -> c_int;

    pub fn pam_end(pamh: *mut pam_handle_t, pam_status: c_int) -> c_int;

    pub fn pam_authenticate(pamh: *mut pam_handle_t, flags: c_int) -> c_int;

    pub fn pam_acct_mgmt(pamh: *mut pam_handle_t, flags: c_int) -> c_int;

    pub fn pam_set_item(pamh: *mut pam_handle_t, item_type: c_int, item: *const c_void) -> c_int;

    pub fn pam_get_item(
        pamh: *const pam_handle_t,
        item_type: c_int,
        item: *mut *const c_void,
    ) -> c_int;

    pub fn pam_strerror(pamh: *mut pam_handle_t, errnum: c_int) -> *const c_char;
}
