//! The few libpam calls a module needs, and its item and return codes
//! (Linux-PAM's `security/_pam_types.h`). All of the module's `unsafe` FFI
//! is here.

use std::ffi::{CStr, c_char, c_int, c_void};
use zeroize::Zeroizing;

#[allow(non_camel_case_types)]
pub enum pam_handle_t {}

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_AUTHTOK_ERR: c_int = 20;
pub const PAM_IGNORE: c_int = 25;
pub const PAM_UPDATE_AUTHTOK: c_int = 0x2000;

const PAM_SERVICE: c_int = 1;
const PAM_USER: c_int = 2;
const PAM_AUTHTOK: c_int = 6;

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_get_item(pamh: *const pam_handle_t, item_type: c_int, item: *mut *const c_void)
    -> c_int;
}

/// The transaction libpam called the module for.
pub struct Handle(*mut pam_handle_t);

impl Handle {
    /// # Safety
    /// `pamh` is the live handle libpam passed to the entry point.
    pub unsafe fn new(pamh: *mut pam_handle_t) -> Self {
        Handle(pamh)
    }

    /// A string item's bytes, copied (and wiped when dropped); `None` if
    /// unset.
    fn item(&self, kind: c_int) -> Option<Zeroizing<Vec<u8>>> {
        let mut value: *const c_void = std::ptr::null();
        // SAFETY: the handle is live for the call (see `new`); libpam writes a
        // pointer to its own copy of the item, valid until the item changes,
        // which nothing does while we copy it.
        let status = unsafe { pam_get_item(self.0, kind, &mut value) };
        if status != PAM_SUCCESS || value.is_null() {
            return None;
        }
        // SAFETY: string items are NUL-terminated C strings owned by libpam.
        let bytes = unsafe { CStr::from_ptr(value.cast::<c_char>()) }.to_bytes();
        Some(Zeroizing::new(bytes.to_vec()))
    }

    pub fn service(&self) -> Option<String> {
        self.item(PAM_SERVICE)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    pub fn user(&self) -> Option<String> {
        self.item(PAM_USER)
            .and_then(|b| String::from_utf8(b.to_vec()).ok())
    }

    /// The new password the modules before (pam_unix) set, handed over as
    /// bytes the caller owns: `Password::new` takes them and wipes them.
    pub fn new_authtok(&self) -> Option<Vec<u8>> {
        self.item(PAM_AUTHTOK).map(|mut b| std::mem::take(&mut *b))
    }
}
