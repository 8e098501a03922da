//! The site's own password quality rules, applied through the system's
//! libpwquality exactly as pam_pwquality applies them for `passwd`:
//! `pwquality.conf` (after its `pwquality.conf.d/*.conf` drop-ins, which the
//! main file overrides), then the `pam_pwquality.so` arguments of the PAM
//! password stack, which override both (libpwquality 1.4.5,
//! `src/pam_pwquality.c`).
//!
//! Guarantees:
//! - the settings are libpwquality's own parse of the file and the arguments,
//!   so, given the same file and arguments, a password pam_pwquality refuses
//!   is refused here with the same message (the text it prints after
//!   `BAD PASSWORD:`);
//! - a setting libpwquality refuses (bad number, unknown key, over-long line,
//!   unreadable file, broken argument) is an error naming the file or the
//!   argument; pam_pwquality only logs it and goes on with half the settings;
//! - a missing file is no error: the drop-ins and the defaults apply, as when
//!   the default file is missing on the live system;
//! - with `dictcheck` on, the cracklib dictionary is checked when the rules are
//!   loaded: a missing dictionary would fail every password (and cracklib
//!   would print to stderr), so it is one clear error instead, naming the
//!   package to install; a dictionary that breaks later is reported the same
//!   way by `check`, never as a rejected password;
//! - a password reaches libpwquality only as a NUL-terminated copy that is
//!   wiped when dropped (libpwquality wipes its own copies; cracklib keeps an
//!   unwiped one on its stack, beyond reach);
//! - every failure's auxiliary data goes through `pwquality_strerror`, with a
//!   buffer of credsync's, exactly once, which frees what the library
//!   allocated.
//!
//! libpwquality reports only the first rule a password fails, so a check gives
//! at most one `Rejection`. The settings only pam_pwquality acts on
//! (`enforcing`, `retry`, `enforce_for_root`, `local_users_only`) do not change
//! `check`; they are read back for the caller to apply. Under `--root` the file
//! comes from the root, but `dictpath` and `gecoscheck` (live NSS) refer to the
//! live system, as they do inside libpwquality.
//!
//! Not thread-safe: cracklib opens its dictionary into static storage, shared
//! by every settings object (two checks at once fail with "another dictionary
//! already open"). `PwQuality` is neither `Send` nor `Sync` (checked at compile
//! time below), and every check in the process holds one lock.
//! Messages are libpwquality's English texts, as credsync never calls
//! `setlocale`.
//!
//! All of credsync's `unsafe` for libpwquality lives in this file.

use std::ffi::{CStr, CString, OsStr, c_char, c_int, c_void};
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroizing;

use crate::account::UserName;
use crate::secret::Password;

/// The file libpwquality reads when given none; only this path may be missing
/// without an error inside the library.
pub const DEFAULT_CONFIG: &str = "/etc/security/pwquality.conf";

/// Arguments pam_pwquality consumes itself instead of handing them to
/// libpwquality (`_pam_parse`): `debug` matched exactly, the rest as prefixes,
/// as it matches them (`strncmp`).
const PAM_ONLY_EXACT: &[&str] = &["debug"];
const PAM_ONLY_PREFIXES: &[&str] = &[
    "type=",
    "difignore=",
    "reject_username",
    "authtok_type",
    "use_authtok",
    "use_first_pass",
    "try_first_pass",
];

/// What cracklib answers when it cannot open or read its dictionary (not
/// translated: credsync runs in the C locale).
const DICTIONARY_LOAD_FAILED: &CStr = c"error loading dictionary";

/// Held around every `pwquality_check` in the process: cracklib's open
/// dictionary is static, whatever settings object the check uses.
static CRACKLIB: Mutex<()> = Mutex::new(());

/// The site's rules, loaded once; freed with the library's own call on drop.
pub struct PwQuality {
    settings: NonNull<ffi::PwqSettings>,
    /// The file(s) the rules came from, for messages.
    origin: String,
    /// The dictionary prefix cracklib will open, when `dictcheck` is on.
    dictionary: Option<PathBuf>,
}

// `PwQuality` must stay neither `Send` nor `Sync` (the raw pointer makes it
// so): this fails to compile if either is ever implemented.
const _: fn() = || {
    trait AmbiguousIfSendOrSync<A> {
        fn some_item() {}
    }
    impl<T: ?Sized> AmbiguousIfSendOrSync<()> for T {}
    struct IfSync;
    impl<T: ?Sized + Sync> AmbiguousIfSendOrSync<IfSync> for T {}
    struct IfSend;
    impl<T: ?Sized + Send> AmbiguousIfSendOrSync<IfSend> for T {}
    let _ = <PwQuality as AmbiguousIfSendOrSync<_>>::some_item;
};

#[derive(Debug, thiserror::Error)]
pub enum PwQualityError {
    #[error("out of memory while loading the password quality rules")]
    OutOfMemory,
    #[error("cannot read the password quality rules in {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    /// `message` is libpwquality's, e.g. `Bad integer value of setting - minlen`.
    #[error("the password quality rules in {origin} are invalid: {message}")]
    InvalidConfig { origin: String, message: String },
    #[error(
        "the pam_pwquality.so argument '{argument}' in the PAM password stack is invalid: {message}"
    )]
    InvalidArgument { argument: String, message: String },
    #[error(
        "the password dictionary {path} cannot be used ({detail}); install the Debian package \
         cracklib-runtime, or turn the dictionary check off with 'dictcheck = 0' in {origin}"
    )]
    DictionaryUnavailable {
        path: String,
        detail: String,
        origin: String,
    },
    #[error("libpwquality failed to check the password: {0}")]
    Library(String),
}

/// A rule of the site's the password breaks, in libpwquality's words
/// ("The password is shorter than 12 characters"). Never quotes the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    message: String,
}

impl Rejection {
    pub fn message(&self) -> &str {
        &self.message
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The password breaks a rule: ask for another one.
    #[error(transparent)]
    Rejected(Rejection),
    /// The rules could not be applied (broken dictionary, out of memory):
    /// no password can pass until an administrator fixes it.
    #[error(transparent)]
    Failed(PwQualityError),
}

impl PwQuality {
    /// Loads the rules as pam_pwquality does: libpwquality's defaults, then
    /// `config` (with its `.d` drop-ins) — `None` is the library's default
    /// file, a missing file leaves the defaults — then each `pam_pwquality.so`
    /// argument of the PAM password stack (`minlen=12`, `enforce_for_root`),
    /// skipping those pam_pwquality keeps for itself (`debug`, `type=`,
    /// `use_authtok`, ...).
    pub fn load(config: Option<&Path>, module_args: &[String]) -> Result<Self, PwQualityError> {
        // SAFETY: no arguments; returns a fresh calloc'ed object or NULL.
        let settings = unsafe { ffi::pwquality_default_settings() };
        let settings = NonNull::new(settings).ok_or(PwQualityError::OutOfMemory)?;
        let path = config.unwrap_or(Path::new(DEFAULT_CONFIG));
        // Owned from here: dropped (freed) on every early return below.
        let mut quality = PwQuality {
            settings,
            origin: origin_of(path),
            dictionary: None,
        };
        quality.read_config(config, path)?;
        for argument in module_args {
            quality.set_option(argument)?;
        }
        quality.dictionary = quality.usable_dictionary()?;
        Ok(quality)
    }

    /// Checks `new` for `user` against the rules. `old` is the password being
    /// replaced, when the caller knows it (self-service): without it the
    /// rules comparing old and new (`difok`, case changes, rotation) are
    /// skipped, as pam_pwquality skips them when root changes a password.
    pub fn check(
        &self,
        new: &Password,
        old: Option<&Password>,
        user: &UserName,
    ) -> Result<(), CheckError> {
        let new = CPassword::new(new);
        let old = old.map(CPassword::new);
        let user = CString::new(user.as_str()).map_err(|_| {
            CheckError::Failed(PwQualityError::Library(format!("invalid user name {user}")))
        })?;
        let old_ptr = old.as_ref().map_or(ptr::null(), CPassword::as_ptr);

        let _cracklib = CRACKLIB.lock().unwrap_or_else(PoisonError::into_inner);
        let mut aux: *mut c_void = ptr::null_mut();
        // SAFETY: `settings` is live (owned by self, freed only on drop); the
        // passwords and the user name are NUL-terminated and outlive the call;
        // old may be NULL, which the header allows; `aux` is a writable slot.
        // The lock above keeps cracklib's static dictionary to this thread.
        let code = unsafe {
            ffi::pwquality_check(
                self.settings.as_ptr(),
                new.as_ptr(),
                old_ptr,
                user.as_ptr(),
                &mut aux,
            )
        };
        if code >= 0 {
            return Ok(()); // a score, 0..100
        }
        // For the dictionary check `aux` is cracklib's static message; it is
        // read before `describe`, which does not free it for this code.
        let dictionary_failed = code == ffi::PWQ_ERROR_CRACKLIB_CHECK
            && !aux.is_null()
            // SAFETY: for PWQ_ERROR_CRACKLIB_CHECK a non-NULL aux is the
            // NUL-terminated string FascistCheck returned (a static text).
            && unsafe { CStr::from_ptr(aux.cast::<c_char>()) } == DICTIONARY_LOAD_FAILED;
        // SAFETY: `code` and `aux` come straight from the check above, and are
        // handed over exactly once.
        let message = unsafe { describe(code, aux) };
        if code == ffi::PWQ_ERROR_CRACKLIB_CHECK {
            let unreadable = self.dictionary.as_deref().and_then(dictionary_problem);
            if dictionary_failed || unreadable.is_some() {
                let path = self.dictionary.as_deref().unwrap_or(Path::new(""));
                return Err(CheckError::Failed(PwQualityError::DictionaryUnavailable {
                    path: path.display().to_string(),
                    detail: unreadable
                        .unwrap_or_else(|| "cracklib could not load it; is it damaged?".into()),
                    origin: self.origin.clone(),
                }));
            }
        }
        if is_rule(code) {
            Err(CheckError::Rejected(Rejection { message }))
        } else {
            Err(CheckError::Failed(PwQualityError::Library(message)))
        }
    }

    /// `enforcing` (default on): when off, pam_pwquality only warns.
    pub fn enforcing(&self) -> bool {
        self.int_value(ffi::PWQ_SETTING_ENFORCING, 1) != 0
    }

    /// `retry` (default 1): how many passwords pam_pwquality asks for before
    /// giving up; below 1 it asks once, and so does this.
    pub fn retry(&self) -> u32 {
        let retry = self.int_value(ffi::PWQ_SETTING_RETRY_TIMES, 1);
        u32::try_from(retry).unwrap_or(0).max(1)
    }

    /// `enforce_for_root` (default off): root's changes are refused too, not
    /// only warned about.
    pub fn enforce_for_root(&self) -> bool {
        self.int_value(ffi::PWQ_SETTING_ENFORCE_ROOT, 0) != 0
    }

    /// `local_users_only` (default off): users not in `/etc/passwd` are not
    /// checked at all.
    pub fn local_users_only(&self) -> bool {
        self.int_value(ffi::PWQ_SETTING_LOCAL_USERS, 0) != 0
    }

    /// `pwquality_read_config`, with the library's `NULL` for the default.
    fn read_config(&mut self, config: Option<&Path>, path: &Path) -> Result<(), PwQualityError> {
        let explicit = config
            .map(|p| {
                CString::new(p.as_os_str().as_bytes()).map_err(|_| PwQualityError::Unreadable {
                    path: p.display().to_string(),
                    source: ErrorKind::InvalidInput.into(),
                })
            })
            .transpose()?;
        let missing = matches!(std::fs::metadata(path), Err(e) if e.kind() == ErrorKind::NotFound);
        let mut aux: *mut c_void = ptr::null_mut();
        // SAFETY: `settings` is live; the path is NULL (the library's default)
        // or NUL-terminated and outlives the call; `aux` is a writable slot.
        let code = unsafe {
            ffi::pwquality_read_config(
                self.settings.as_ptr(),
                explicit.as_ref().map_or(ptr::null(), |p| p.as_ptr()),
                &mut aux,
            )
        };
        if code == 0 {
            return Ok(());
        }
        // SAFETY: `code` and `aux` come straight from the call above, and are
        // handed over exactly once.
        let message = unsafe { describe(code, aux) };
        if code == ffi::PWQ_ERROR_CFGFILE_OPEN {
            // The drop-ins were read before the main file was opened, so a
            // missing file leaves exactly what a missing default file leaves.
            if missing {
                return Ok(());
            }
            return Err(PwQualityError::Unreadable {
                path: path.display().to_string(),
                source: File::open(path)
                    .err()
                    .unwrap_or_else(|| std::io::Error::other(message)),
            });
        }
        Err(PwQualityError::InvalidConfig {
            origin: self.origin.clone(),
            message,
        })
    }

    /// One `pam_pwquality.so` argument through `pwquality_set_option`.
    fn set_option(&mut self, argument: &str) -> Result<(), PwQualityError> {
        if PAM_ONLY_EXACT.contains(&argument)
            || PAM_ONLY_PREFIXES.iter().any(|p| argument.starts_with(p))
        {
            return Ok(());
        }
        let invalid = |message: String| PwQualityError::InvalidArgument {
            argument: argument.escape_default().to_string(),
            message,
        };
        let option =
            CString::new(argument).map_err(|_| invalid("it contains a NUL byte".into()))?;
        // SAFETY: `settings` is live; `option` is NUL-terminated and outlives
        // the call.
        let code = unsafe { ffi::pwquality_set_option(self.settings.as_ptr(), option.as_ptr()) };
        if code == 0 {
            return Ok(());
        }
        // SAFETY: set_option has no auxiliary data; NULL is what strerror
        // expects then.
        Err(invalid(unsafe { describe(code, ptr::null_mut()) }))
    }

    /// The dictionary cracklib will open, once it is known to be readable;
    /// `None` when `dictcheck` is off.
    fn usable_dictionary(&self) -> Result<Option<PathBuf>, PwQualityError> {
        if self.int_value(ffi::PWQ_SETTING_DICT_CHECK, 1) == 0 {
            return Ok(None);
        }
        let mut value: *const c_char = ptr::null();
        // SAFETY: `settings` is live; `value` is a writable slot the library
        // points at its own string (or cracklib's static default).
        let code = unsafe {
            ffi::pwquality_get_str_value(
                self.settings.as_ptr(),
                ffi::PWQ_SETTING_DICT_PATH,
                &mut value,
            )
        };
        if code != 0 || value.is_null() {
            // A libpwquality built without cracklib has no dictionary check.
            return Ok(None);
        }
        // SAFETY: non-NULL, so a NUL-terminated string that stays valid until
        // the settings change; it is copied at once.
        let bytes = unsafe { CStr::from_ptr(value) }.to_bytes();
        let path = PathBuf::from(OsStr::from_bytes(bytes));
        match dictionary_problem(&path) {
            None => Ok(Some(path)),
            Some(detail) => Err(PwQualityError::DictionaryUnavailable {
                path: path.display().to_string(),
                detail,
                origin: self.origin.clone(),
            }),
        }
    }

    /// `pwquality_get_int_value`, starting from pam_pwquality's own fallback
    /// as it does.
    fn int_value(&self, setting: c_int, fallback: c_int) -> c_int {
        let mut value = fallback;
        // SAFETY: `settings` is live, and only read: `!Sync` keeps other
        // threads away; `value` is a writable int. An unknown setting leaves
        // `value` untouched.
        unsafe { ffi::pwquality_get_int_value(self.settings.as_ptr(), setting, &mut value) };
        value
    }
}

impl Drop for PwQuality {
    fn drop(&mut self) {
        // SAFETY: `settings` came from pwquality_default_settings, is owned by
        // this value alone, and is not used after this.
        unsafe { ffi::pwquality_free_settings(self.settings.as_ptr()) };
    }
}

/// The password as libpwquality takes it: a NUL-terminated copy, wiped on drop.
/// `Password` refuses NUL bytes, so the copy is the whole password.
struct CPassword(Zeroizing<Vec<u8>>);

impl CPassword {
    fn new(password: &Password) -> Self {
        let bytes = password.as_bytes();
        debug_assert!(!bytes.contains(&0), "Password admits no NUL byte");
        // Sized up front: the copy is never reallocated, so never left unwiped.
        let mut copy = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
        copy.extend_from_slice(bytes);
        copy.push(0);
        CPassword(copy)
    }

    fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }
}

/// The rule failures of `pwquality_check` (error.c): everything from "too
/// similar" to "fails the dictionary check", and "contains the user name" to
/// "monotonic sequence". The rest are the library's own failures.
fn is_rule(code: c_int) -> bool {
    (ffi::PWQ_ERROR_CRACKLIB_CHECK..=ffi::PWQ_ERROR_TOO_SIMILAR).contains(&code)
        || (ffi::PWQ_ERROR_MAX_SEQUENCE..=ffi::PWQ_ERROR_USER_CHECK).contains(&code)
}

/// The message for a failed call, through `pwquality_strerror` with a buffer of
/// our own (the library's static one is not reentrant).
///
/// # Safety
/// `code` and `aux` are what one libpwquality call returned (aux NULL when the
/// call has none); this must be the only `describe` for them, since
/// `pwquality_strerror` frees a heap `aux`.
unsafe fn describe(code: c_int, aux: *mut c_void) -> String {
    let mut buf = [0 as c_char; ffi::PWQ_MAX_ERROR_MESSAGE_LEN];
    // SAFETY: `buf` is writable for its length; `code`/`aux` are a matching
    // pair handed over once (the caller's promise).
    let text = unsafe { ffi::pwquality_strerror(buf.as_mut_ptr(), buf.len(), code, aux) };
    if text.is_null() {
        return format!("libpwquality error {code}");
    }
    // SAFETY: non-NULL: either `buf`, NUL-terminated by snprintf, or a static
    // (possibly translated) text; copied before `buf` goes away.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// How messages name the rules' source: the file, and its drop-in directory
/// when there is one (libpwquality does not say which file a setting was in).
fn origin_of(path: &Path) -> String {
    let mut drop_ins = path.as_os_str().to_owned();
    drop_ins.push(".d");
    if Path::new(&drop_ins).is_dir() {
        format!(
            "{} or {}/*.conf",
            path.display(),
            Path::new(&drop_ins).display()
        )
    } else {
        path.display().to_string()
    }
}

/// Why cracklib could not open the dictionary at `prefix`, if it could not:
/// it needs `<prefix>.pwd` and `<prefix>.pwi` (`PWOpen`; `.hwm` is optional,
/// and Debian's cracklib has no gzip support).
fn dictionary_problem(prefix: &Path) -> Option<String> {
    ["pwd", "pwi"].into_iter().find_map(|extension| {
        let mut file = prefix.as_os_str().to_owned();
        file.push(".");
        file.push(extension);
        File::open(&file)
            .err()
            .map(|e| format!("{}: {e}", Path::new(&file).display()))
    })
}

/// The slice of `<pwquality.h>` (libpwquality 1.4.5) credsync uses, declared
/// by hand; a test checks the numbers against the installed header.
mod ffi {
    use std::ffi::{c_char, c_int, c_void};
    use std::marker::{PhantomData, PhantomPinned};

    /// `pwquality_settings_t`: opaque, owned through the pointer the library
    /// hands out, neither `Send`, `Sync` nor `Unpin`.
    #[repr(C)]
    pub struct PwqSettings {
        _opaque: [u8; 0],
        _marker: PhantomData<(*mut u8, PhantomPinned)>,
    }

    pub const PWQ_SETTING_DICT_PATH: c_int = 10;
    pub const PWQ_SETTING_DICT_CHECK: c_int = 15;
    pub const PWQ_SETTING_ENFORCING: c_int = 17;
    pub const PWQ_SETTING_RETRY_TIMES: c_int = 18;
    pub const PWQ_SETTING_ENFORCE_ROOT: c_int = 19;
    pub const PWQ_SETTING_LOCAL_USERS: c_int = 20;

    pub const PWQ_MAX_ERROR_MESSAGE_LEN: usize = 256;

    pub const PWQ_ERROR_CFGFILE_OPEN: c_int = -3;
    pub const PWQ_ERROR_TOO_SIMILAR: c_int = -9;
    pub const PWQ_ERROR_CRACKLIB_CHECK: c_int = -22;
    pub const PWQ_ERROR_USER_CHECK: c_int = -25;
    pub const PWQ_ERROR_MAX_SEQUENCE: c_int = -29;

    #[link(name = "pwquality")]
    unsafe extern "C" {
        pub fn pwquality_default_settings() -> *mut PwqSettings;

        pub fn pwquality_free_settings(pwq: *mut PwqSettings);

        pub fn pwquality_read_config(
            pwq: *mut PwqSettings,
            cfgfile: *const c_char,
            auxerror: *mut *mut c_void,
        ) -> c_int;

        pub fn pwquality_set_option(pwq: *mut PwqSettings, option: *const c_char) -> c_int;

        pub fn pwquality_get_int_value(
            pwq: *mut PwqSettings,
            setting: c_int,
            value: *mut c_int,
        ) -> c_int;

        pub fn pwquality_get_str_value(
            pwq: *mut PwqSettings,
            setting: c_int,
            value: *mut *const c_char,
        ) -> c_int;

        pub fn pwquality_check(
            pwq: *mut PwqSettings,
            password: *const c_char,
            oldpassword: *const c_char,
            user: *const c_char,
            auxerror: *mut *mut c_void,
        ) -> c_int;

        pub fn pwquality_strerror(
            buf: *mut c_char,
            len: usize,
            errcode: c_int,
            auxerror: *mut c_void,
        ) -> *const c_char;
    }
}

#[cfg(test)]
mod tests {
    //! Against the real libpwquality and cracklib, with rules files in
    //! temporary directories laid out as under `--root`. Most rules files turn
    //! `dictcheck` off so that one rule is tested at a time; the dictionary
    //! tests use the system's dictionary or one packed for the test.

    use super::*;
    use std::process::{Command, Stdio};
    use tempfile::TempDir;

    fn pw(bytes: &[u8]) -> Password {
        Password::new(bytes.to_vec()).unwrap()
    }

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    /// A root directory holding `etc/security/pwquality.conf` and, when a
    /// test writes them, its drop-ins.
    struct Site {
        root: TempDir,
    }

    impl Site {
        fn new() -> Self {
            let root = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(root.path().join("etc/security")).unwrap();
            Site { root }
        }

        fn with_config(text: &str) -> Self {
            let site = Site::new();
            std::fs::write(site.config(), text).unwrap();
            site
        }

        /// Where `Paths` would put the file under this root.
        fn config(&self) -> PathBuf {
            self.root.path().join("etc/security/pwquality.conf")
        }

        fn drop_in(&self, name: &str, text: &str) {
            let dir = self.root.path().join("etc/security/pwquality.conf.d");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), text).unwrap();
        }

        fn load(&self, args: &[&str]) -> Result<PwQuality, PwQualityError> {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            PwQuality::load(Some(&self.config()), &args)
        }

        fn rules(&self) -> PwQuality {
            self.load(&[]).unwrap()
        }
    }

    fn rules(text: &str) -> PwQuality {
        Site::with_config(text).rules()
    }

    /// The message of the rule `new` breaks; panics if it passes.
    fn rejection(rules: &PwQuality, new: &str, old: Option<&str>, name: &str) -> String {
        let old = old.map(|o| pw(o.as_bytes()));
        match rules.check(&pw(new.as_bytes()), old.as_ref(), &user(name)) {
            Err(CheckError::Rejected(r)) => r.message().to_owned(),
            other => panic!("{new:?}: expected a rejection, got {other:?}"),
        }
    }

    fn passes(rules: &PwQuality, new: &str, old: Option<&str>, name: &str) {
        let old = old.map(|o| pw(o.as_bytes()));
        if let Err(e) = rules.check(&pw(new.as_bytes()), old.as_ref(), &user(name)) {
            panic!("{new:?}: expected to pass, got {e:?}");
        }
    }

    #[test]
    fn minlen_rejects_a_short_password_and_accepts_the_boundary() {
        let rules = rules("minlen = 12\ndictcheck = 0\n");
        assert_eq!(
            rejection(&rules, "Kx9#mQ2v$Lp", None, "alice"),
            "The password is shorter than 12 characters"
        );
        passes(&rules, "Kx9#mQ2v$Lp7", None, "alice");
    }

    #[test]
    fn length_is_counted_in_bytes_as_libpwquality_counts_it() {
        // 11 characters, 12 bytes: passes minlen 12, as it does for passwd.
        let rules = rules("minlen = 12\ndictcheck = 0\n");
        passes(&rules, "Kx9#mQ2v$Lé", None, "alice");
        let raw = Password::new(b"Kx9#mQ2v$L\xff\xfe".to_vec()).unwrap();
        assert!(rules.check(&raw, None, &user("alice")).is_ok());
    }

    #[test]
    fn minclass_counts_character_classes() {
        let rules = rules("minclass = 3\ndictcheck = 0\n");
        let message = "The password contains less than 3 character classes";
        assert_eq!(rejection(&rules, "qwmnzxkplrty", None, "alice"), message);
        assert_eq!(rejection(&rules, "qwmnzxkplrtY", None, "alice"), message);
        passes(&rules, "qwmnzxkplrT7", None, "alice");
    }

    #[test]
    fn difok_compares_with_the_old_password_when_it_is_known() {
        let rules = rules("difok = 3\ndictcheck = 0\n");
        let old = Some("Kx9#mQ2v$Lp7wZ");
        // Two characters changed: an edit distance below difok.
        assert_eq!(
            rejection(&rules, "Kx9#mQ2v$Lp7aB", old, "alice"),
            "The password is too similar to the old one"
        );
        // Three changed: the boundary passes.
        passes(&rules, "Kx9#mQ2v$Lp8aB", old, "alice");
        assert_eq!(
            rejection(&rules, "Kx9#mQ2v$Lp7wZ", old, "alice"),
            "The password is the same as the old one"
        );
        assert_eq!(
            rejection(&rules, "kX9#Mq2V$lP7Wz", old, "alice"),
            "The password differs with case changes only"
        );
        // Without the old password (root's change) there is nothing to compare.
        passes(&rules, "Kx9#mQ2v$Lp7aB", None, "alice");
        passes(&rules, "Kx9#mQ2v$Lp7wZ", None, "alice");
    }

    #[test]
    fn difok_zero_turns_the_comparisons_off_but_not_the_same_password_rule() {
        let rules = rules("difok = 0\ndictcheck = 0\n");
        passes(&rules, "Kx9#mQ2v$Lp7aB", Some("Kx9#mQ2v$Lp7wZ"), "alice");
        assert_eq!(
            rejection(&rules, "Kx9#mQ2v$Lp7wZ", Some("Kx9#mQ2v$Lp7wZ"), "alice"),
            "The password is the same as the old one"
        );
    }

    #[test]
    fn usercheck_finds_the_user_name_forwards_and_backwards() {
        let rules = rules("dictcheck = 0\n");
        let message = "The password contains the user name in some form";
        assert_eq!(rejection(&rules, "xAlice99#Kp2Zq", None, "alice"), message);
        assert_eq!(rejection(&rules, "xEcila99#Kp2Zq", None, "alice"), message);
        passes(&rules, "xAlice99#Kp2Zq", None, "carol");
        // Names shorter than 4 characters are not looked for.
        passes(&rules, "xBob99#Kp2Zqw", None, "bob");

        let off = self::rules("usercheck = 0\ndictcheck = 0\n");
        passes(&off, "xAlice99#Kp2Zq", None, "alice");
    }

    #[test]
    fn module_arguments_override_the_file() {
        let site = Site::with_config("minlen = 12\ndictcheck = 0\n");
        let stricter = site.load(&["minlen=14"]).unwrap();
        assert_eq!(
            rejection(&stricter, "Kx9#mQ2v$Lp7w", None, "alice"),
            "The password is shorter than 14 characters"
        );
        let laxer = site.load(&["minlen=8"]).unwrap();
        passes(&laxer, "Kx9#mQ2v$Lp", None, "alice");
        // The file alone still says 12.
        assert_eq!(
            rejection(&site.rules(), "Kx9#mQ2v$Lp", None, "alice"),
            "The password is shorter than 12 characters"
        );
    }

    #[test]
    fn arguments_pam_pwquality_keeps_for_itself_are_skipped() {
        // Debian's `password requisite pam_pwquality.so retry=3`, plus every
        // argument pam_pwquality consumes itself: none reaches libpwquality,
        // which would call them unknown settings.
        let site = Site::with_config("dictcheck = 0\n");
        let rules = site
            .load(&[
                "retry=3",
                "debug",
                "type=UNIX",
                "difignore=23",
                "reject_username",
                "authtok_type=new",
                "use_authtok",
                "use_first_pass",
                "try_first_pass",
                "enforce_for_root",
            ])
            .unwrap();
        assert_eq!(rules.retry(), 3);
        assert!(rules.enforce_for_root());
        // `debug` is matched exactly, as pam_pwquality matches it.
        let err = site.load(&["debugging=1"]).err().unwrap();
        assert!(err.to_string().contains("'debugging=1'"), "{err}");
    }

    #[test]
    fn a_broken_module_argument_is_an_error_naming_it() {
        let site = Site::with_config("dictcheck = 0\n");
        let err = site.load(&["minlen=twelve"]).err().unwrap();
        assert!(
            matches!(err, PwQualityError::InvalidArgument { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "the pam_pwquality.so argument 'minlen=twelve' in the PAM password stack is invalid: \
             Bad integer value"
        );
        let err = site.load(&["frobnicate=1"]).err().unwrap();
        assert!(
            err.to_string()
                .ends_with("'frobnicate=1' in the PAM password stack is invalid: Unknown setting"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_setting_in_the_file_is_an_error_naming_the_file_and_setting() {
        let site = Site::with_config("minlen = 12x\n");
        let err = site.load(&[]).err().unwrap();
        assert!(
            matches!(err, PwQualityError::InvalidConfig { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "the password quality rules in {} are invalid: \
                 Bad integer value of setting - minlen",
                site.config().display()
            )
        );

        let err = Site::with_config("# site rules\nfrobnicate = 1\n")
            .load(&[])
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .ends_with("are invalid: Unknown setting - frobnicate"),
            "{err}"
        );

        let long_line = format!("badwords = {}\n", "x".repeat(1100));
        let err = Site::with_config(&long_line).load(&[]).err().unwrap();
        assert!(
            err.to_string()
                .ends_with("are invalid: The configuration file is malformed"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_drop_in_is_reported_with_the_directory() {
        let site = Site::with_config("dictcheck = 0\n");
        site.drop_in("50-site.conf", "minclass = many\n");
        let err = site.load(&[]).err().unwrap();
        let message = err.to_string();
        assert!(message.contains("pwquality.conf.d/*.conf"), "{message}");
        assert!(
            message.ends_with("Bad integer value of setting - minclass"),
            "{message}"
        );
    }

    #[test]
    fn a_missing_file_leaves_the_defaults() {
        let site = Site::new();
        assert!(!site.config().exists());
        let rules = site.rules();
        // libpwquality's defaults: minlen 8, enforcing, one try.
        assert_eq!(
            rejection(&rules, "Kx9#mQ2", None, "alice"),
            "The password is shorter than 8 characters"
        );
        assert!(rules.enforcing());
        assert_eq!(rules.retry(), 1);
        assert!(!rules.enforce_for_root());
        assert!(!rules.local_users_only());
    }

    #[test]
    fn drop_ins_apply_without_the_main_file_as_libpwquality_reads_them() {
        let site = Site::new();
        site.drop_in("50-site.conf", "minlen = 10\ndictcheck = 0\n");
        site.drop_in("ignored.conf.bak", "minlen = 30\n");
        assert_eq!(
            rejection(&site.rules(), "Kx9#mQ2v$", None, "alice"),
            "The password is shorter than 10 characters"
        );
    }

    #[test]
    fn the_main_file_wins_over_its_drop_ins() {
        let site = Site::with_config("minlen = 12\n");
        site.drop_in("a.conf", "minlen = 20\ndictcheck = 0\n");
        let rules = site.rules();
        assert_eq!(
            rejection(&rules, "Kx9#mQ2v$Lp", None, "alice"),
            "The password is shorter than 12 characters"
        );
        passes(&rules, "Kx9#mQ2v$Lp7", None, "alice");
    }

    #[test]
    fn the_settings_only_pam_pwquality_uses_are_read_back() {
        let rules =
            rules("enforcing = 0\nretry = 3\nenforce_for_root\nlocal_users_only\ndictcheck = 0\n");
        assert!(!rules.enforcing());
        assert_eq!(rules.retry(), 3);
        assert!(rules.enforce_for_root());
        assert!(rules.local_users_only());

        let defaults = self::rules("dictcheck = 0\n");
        assert!(defaults.enforcing());
        assert_eq!(defaults.retry(), 1);
        assert!(!defaults.enforce_for_root());
        assert!(!defaults.local_users_only());

        // pam_pwquality asks at least once, whatever retry says.
        assert_eq!(self::rules("retry = 0\ndictcheck = 0\n").retry(), 1);
        assert_eq!(self::rules("retry = -2\ndictcheck = 0\n").retry(), 1);
        // They don't change the check itself.
        passes(&rules, "Kx9#mQ2v$Lp7", None, "alice");
        assert_eq!(
            rejection(&rules, "Kx9#mQ2", None, "alice"),
            "The password is shorter than 8 characters"
        );
    }

    #[test]
    fn the_system_dictionary_rejects_a_dictionary_word() {
        // Debian's cracklib-runtime dictionary under /var/cache/cracklib.
        let rules = rules("");
        assert_eq!(
            rejection(&rules, "Password123", None, "alice"),
            "The password fails the dictionary check - it is based on a dictionary word"
        );
        passes(&rules, "Kx9#mQ2v$Lp7wZ", None, "alice");
    }

    /// A cracklib dictionary of `words`, packed by cracklib-runtime's own tool.
    fn pack_dictionary(dir: &Path, words: &[&str]) -> PathBuf {
        let prefix = dir.join("dict");
        let mut packer = Command::new("cracklib-packer")
            .arg(&prefix)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("cracklib-packer (Debian package cracklib-runtime)");
        let mut sorted = words.to_vec();
        sorted.sort_unstable();
        let input = sorted.iter().map(|w| format!("{w}\n")).collect::<String>();
        std::io::Write::write_all(packer.stdin.as_mut().unwrap(), input.as_bytes()).unwrap();
        drop(packer.stdin.take());
        assert!(packer.wait().unwrap().success());
        prefix
    }

    #[test]
    fn dictpath_names_the_dictionary_checked() {
        let site = Site::new();
        let dict = pack_dictionary(site.root.path(), &["quokkarun", "zebrafish"]);
        std::fs::write(site.config(), format!("dictpath = {}\n", dict.display())).unwrap();
        let rules = site.rules();
        assert_eq!(
            rejection(&rules, "Zebrafish#42", None, "alice"),
            "The password fails the dictionary check - it is based on a dictionary word"
        );
        // Not in this small dictionary, though in the system's.
        passes(&rules, "Password123", None, "alice");
    }

    #[test]
    fn a_missing_dictionary_is_one_clear_error_when_the_rules_load() {
        let site = Site::new();
        let prefix = site.root.path().join("nowhere/dict");
        std::fs::write(site.config(), format!("dictpath = {}\n", prefix.display())).unwrap();
        let err = site.load(&[]).err().unwrap();
        assert!(
            matches!(err, PwQualityError::DictionaryUnavailable { .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "the password dictionary {p} cannot be used ({p}.pwd: No such file or directory \
                 (os error 2)); install the Debian package cracklib-runtime, or turn the \
                 dictionary check off with 'dictcheck = 0' in {c}",
                p = prefix.display(),
                c = site.config().display()
            )
        );
        // With the check off, the path does not matter; a module argument
        // can turn it off too.
        assert!(site.load(&["dictcheck=0"]).is_ok());
        // A dictionary missing only its index is missing too.
        let dict = pack_dictionary(site.root.path(), &["zebrafish"]);
        std::fs::remove_file(dict.with_extension("pwi")).unwrap();
        let argument = format!("dictpath={}", dict.display());
        let err = site.load(&[argument.as_str()]).err().unwrap();
        assert!(err.to_string().contains("dict.pwi: No such file"), "{err}");
    }

    #[test]
    fn a_dictionary_that_breaks_after_loading_fails_the_check_not_the_password() {
        let site = Site::new();
        let dict = pack_dictionary(site.root.path(), &["zebrafish"]);
        std::fs::write(site.config(), format!("dictpath = {}\n", dict.display())).unwrap();
        let rules = site.rules();
        passes(&rules, "Kx9#mQ2v$Lp7wZ", None, "alice");

        // Damaged in place (cracklib prints "magic mismatch" on stderr).
        std::fs::write(dict.with_extension("pwi"), b"not a cracklib index").unwrap();
        let err = rules
            .check(&pw(b"Kx9#mQ2v$Lp7wZ"), None, &user("alice"))
            .unwrap_err();
        assert!(
            matches!(
                err,
                CheckError::Failed(PwQualityError::DictionaryUnavailable { .. })
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("is it damaged?"), "{err}");

        // Removed.
        std::fs::remove_file(dict.with_extension("pwd")).unwrap();
        let err = rules
            .check(&pw(b"Kx9#mQ2v$Lp7wZ"), None, &user("alice"))
            .unwrap_err();
        assert!(err.to_string().contains("dict.pwd: No such file"), "{err}");
    }

    #[test]
    fn a_rejection_never_quotes_the_password() {
        let rules = rules("minlen = 9\nminclass = 3\ndifok = 3\n");
        for (new, old) in [
            ("Hunter2#", None),
            ("hunter2hunter", None),
            ("Elephant77#", None),
            ("Hunter2#xyzQW", Some("Hunter2#xyzQV")),
            ("xAlice99#Kp2Zq", None),
        ] {
            let message = rejection(&rules, new, old, "alice");
            assert!(!message.to_lowercase().contains("hunter2"), "{message}");
            assert!(!message.contains(new), "{message}");
        }
    }

    #[test]
    fn checks_from_many_threads_at_once_agree() {
        // Each thread its own rules, all sharing cracklib: the lock keeps its
        // static dictionary handle to one check at a time.
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    let rules = self::rules("minlen = 10\n");
                    for _ in 0..25 {
                        assert_eq!(
                            rejection(&rules, "Password123", None, "alice"),
                            "The password fails the dictionary check - it is based on a \
                             dictionary word"
                        );
                        passes(&rules, "Kx9#mQ2v$Lp7wZ", None, "alice");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
    }

    #[test]
    fn the_declared_numbers_match_the_installed_header() {
        let header = std::fs::read_to_string("/usr/include/pwquality.h")
            .expect("pwquality.h (Debian package libpwquality-dev)");
        let defined = |name: &str| -> i64 {
            header
                .lines()
                .filter_map(|line| line.strip_prefix("#define "))
                .find_map(|rest| {
                    let mut words = rest.split_whitespace();
                    (words.next() == Some(name)).then(|| words.next().unwrap().parse().unwrap())
                })
                .unwrap_or_else(|| panic!("{name} not in pwquality.h"))
        };
        for (name, value) in [
            ("PWQ_SETTING_DICT_PATH", ffi::PWQ_SETTING_DICT_PATH),
            ("PWQ_SETTING_DICT_CHECK", ffi::PWQ_SETTING_DICT_CHECK),
            ("PWQ_SETTING_ENFORCING", ffi::PWQ_SETTING_ENFORCING),
            ("PWQ_SETTING_RETRY_TIMES", ffi::PWQ_SETTING_RETRY_TIMES),
            ("PWQ_SETTING_ENFORCE_ROOT", ffi::PWQ_SETTING_ENFORCE_ROOT),
            ("PWQ_SETTING_LOCAL_USERS", ffi::PWQ_SETTING_LOCAL_USERS),
            ("PWQ_ERROR_CFGFILE_OPEN", ffi::PWQ_ERROR_CFGFILE_OPEN),
            ("PWQ_ERROR_TOO_SIMILAR", ffi::PWQ_ERROR_TOO_SIMILAR),
            ("PWQ_ERROR_CRACKLIB_CHECK", ffi::PWQ_ERROR_CRACKLIB_CHECK),
            ("PWQ_ERROR_USER_CHECK", ffi::PWQ_ERROR_USER_CHECK),
            ("PWQ_ERROR_MAX_SEQUENCE", ffi::PWQ_ERROR_MAX_SEQUENCE),
        ] {
            assert_eq!(defined(name), i64::from(value), "{name}");
        }
        assert_eq!(
            defined("PWQ_MAX_ERROR_MESSAGE_LEN"),
            ffi::PWQ_MAX_ERROR_MESSAGE_LEN as i64
        );
    }

    #[test]
    fn rule_failures_and_library_failures_are_told_apart() {
        // error.c's codes: -9..=-22 and -25..=-29 are rules; the rest
        // (settings, memory, generation) are the library's.
        for code in (-22..=-9).chain(-29..=-25) {
            assert!(is_rule(code), "{code}");
        }
        for code in [0, -1, -2, -3, -4, -5, -6, -7, -8, -23, -24, -30] {
            assert!(!is_rule(code), "{code}");
        }
    }
}
