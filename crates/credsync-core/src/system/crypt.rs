//! Hashing and checking Linux passwords through the system's libcrypt
//! (libxcrypt): `crypt_gensalt_rn` then `crypt_rn`, the reentrant calls, so the
//! hashes are exactly those pam_unix and `passwd` write and accept.
//!
//! Guarantees, as pam_unix gives them (`create_password_hash` in
//! linux-pam `modules/pam_unix/passverify.c`):
//! - a hash is only ever what libcrypt returned on success: `crypt_rn` returns
//!   NULL on failure, never the `*0`/`*1` failure token `crypt_r` hands back;
//! - a new hash starts with its algorithm's prefix before it leaves this
//!   module (the tests check that each method's hashes verify);
//! - the scratch `struct crypt_data` and the NUL-terminated copy of the password
//!   are wiped after every call.
//!
//! All of credsync's `unsafe` for libcrypt lives in this file.

use crate::secret::Password;
use std::ffi::{CStr, CString, c_char, c_int, c_ulong};
use std::fmt;
use std::ops::RangeInclusive;
use zeroize::Zeroizing;

/// The password field of a shadow entry: a crypt string, or a locked/disabled
/// marker such as `!$y$...`, `!`, `*`. Never holds `:` or a line break.
#[derive(Clone, PartialEq, Eq)]
pub struct LinuxHash(String);

impl LinuxHash {
    /// Accepts any shadow password field that can be written back safely.
    pub fn from_field(field: &str) -> Option<Self> {
        if field.contains([':', '\n', '\r', '\0']) {
            None
        } else {
            Some(LinuxHash(field.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether the field can match any password at all: empty, locked (`!...`,
    /// `passwd -l`, `usermod -L`) and disabled (`*...`) fields never do.
    pub fn is_usable(&self) -> bool {
        !self.0.is_empty() && !self.0.starts_with(['!', '*'])
    }
    /// Locked in Linux: `passwd -l` and `usermod -L` put a `!` in front.
    pub fn is_locked(&self) -> bool {
        self.0.starts_with('!')
    }
    /// The field with its lock marks (leading `!`) taken off: the password
    /// the account has, locked or not.
    pub fn unlocked(&self) -> LinuxHash {
        LinuxHash(self.0.trim_start_matches('!').to_owned())
    }
    /// No password at all (`passwd -d`): pam_unix with `nullok` lets anyone
    /// in with an empty one; credsync never does.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Hashes are not secrets in the way passwords are, but they never go to logs.
impl fmt::Debug for LinuxHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinuxHash(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Yescrypt,
    GostYescrypt,
    Sha512,
    Sha256,
    Blowfish,
    Md5,
}

impl Algorithm {
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Yescrypt,
        Algorithm::GostYescrypt,
        Algorithm::Sha512,
        Algorithm::Sha256,
        Algorithm::Blowfish,
        Algorithm::Md5,
    ];

    /// A pam_unix option name (`yescrypt gost_yescrypt sha512 sha256 blowfish
    /// md5`) or a login.defs `ENCRYPT_METHOD` value (`YESCRYPT GOST_YESCRYPT
    /// SHA512 SHA256 BCRYPT MD5`), in any case. `DES` and `bigcrypt` are not
    /// methods credsync will write, so they are `None`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("bcrypt") {
            return Some(Algorithm::Blowfish);
        }
        Algorithm::ALL
            .into_iter()
            .find(|a| name.eq_ignore_ascii_case(a.name()))
    }

    /// The pam_unix option name, lower case.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Yescrypt => "yescrypt",
            Algorithm::GostYescrypt => "gost_yescrypt",
            Algorithm::Sha512 => "sha512",
            Algorithm::Sha256 => "sha256",
            Algorithm::Blowfish => "blowfish",
            Algorithm::Md5 => "md5",
        }
    }

    /// The prefix every hash of this algorithm starts with, which is also the
    /// prefix `crypt_gensalt_rn` takes.
    pub fn prefix(self) -> &'static str {
        match self {
            Algorithm::Yescrypt => "$y$",
            Algorithm::GostYescrypt => "$gy$",
            Algorithm::Sha512 => "$6$",
            Algorithm::Sha256 => "$5$",
            Algorithm::Blowfish => "$2b$",
            Algorithm::Md5 => "$1$",
        }
    }

    /// The costs libxcrypt 4.4 accepts from `crypt_gensalt_rn`: the yescrypt
    /// cost factor, the SHA-crypt rounds, the bcrypt log2 cost. md5crypt has
    /// no cost (`None`): any `rounds` given for it is ignored.
    pub fn rounds_range(self) -> Option<RangeInclusive<u32>> {
        match self {
            Algorithm::Yescrypt | Algorithm::GostYescrypt => Some(1..=11),
            Algorithm::Sha512 | Algorithm::Sha256 => Some(1_000..=999_999_999),
            Algorithm::Blowfish => Some(4..=31),
            Algorithm::Md5 => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A hash method and its cost, as pam_unix or login.defs would choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashMethod {
    pub algorithm: Algorithm,
    /// `rounds=` / `YESCRYPT_COST_FACTOR` / `SHA_CRYPT_*_ROUNDS`; `None` is libcrypt's default.
    pub rounds: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("the system's libcrypt does not support the {0} hash method")]
    Unsupported(&'static str),
    #[error(
        "{rounds} is not a valid cost for the {algorithm} hash method (allowed: {min} to {max})"
    )]
    InvalidRounds {
        algorithm: &'static str,
        rounds: u32,
        min: u32,
        max: u32,
    },
    #[error("the password is longer than the {max} bytes the system's libcrypt accepts")]
    PasswordTooLong { max: usize },
    #[error("the system's libcrypt failed to hash the password")]
    Failed,
}

/// Longest passphrase libcrypt hashes, in bytes (`CRYPT_MAX_PASSPHRASE_SIZE`
/// counts the terminating NUL). pam_unix's limit (`PAM_MAX_RESP_SIZE`) is the
/// same 512.
pub const MAX_PASSPHRASE_LEN: usize = ffi::CRYPT_MAX_PASSPHRASE_SIZE - 1;

/// Hashes `password` with a fresh random salt, the way pam_unix does:
/// `crypt_gensalt_rn(prefix, rounds, NULL, 0)` (libcrypt draws the salt from
/// the kernel), then `crypt_rn`. `rounds: None` passes 0, libcrypt's default
/// cost (`$y$j9T$`, 5000 SHA rounds, bcrypt `05`).
pub fn hash_password(password: &Password, method: &HashMethod) -> Result<LinuxHash, CryptError> {
    let algorithm = method.algorithm;
    let count = match (algorithm.rounds_range(), method.rounds) {
        (None, _) | (_, None) => 0,
        (Some(range), Some(rounds)) if range.contains(&rounds) => c_ulong::from(rounds),
        (Some(range), Some(rounds)) => {
            return Err(CryptError::InvalidRounds {
                algorithm: algorithm.name(),
                rounds,
                min: *range.start(),
                max: *range.end(),
            });
        }
    };
    let phrase = Phrase::new(password)?;
    let setting = gensalt(algorithm.prefix(), algorithm.name(), count)?;
    let hashed = crypt(&phrase, &setting).ok_or(CryptError::Failed)?;
    let hash = LinuxHash::from_field(&hashed).ok_or(CryptError::Failed)?;
    // pam_unix's own check: a libcrypt that silently fell back to another
    // method must not get its hash written. Like pam_unix, the hash is not
    // checked again against the password: that would be a second full
    // crypt, doubling the Linux half of every change (29 ms instead of 15 ms
    // for yescrypt's default cost; see BENCHMARKS.md).
    if !hash.as_str().starts_with(algorithm.prefix()) {
        return Err(CryptError::Failed);
    }
    Ok(hash)
}

/// Whether `password` matches the stored field. Locked (`!...`), disabled
/// (`*...`), empty and malformed fields never match. Every format the system's
/// libcrypt knows is checked (`$y$`, `$gy$`, `$6$`, `$5$`, `$2b$`/`$2a$`/`$2y$`,
/// `$1$`, DES, ...).
pub fn verify(password: &Password, hash: &LinuxHash) -> bool {
    if !hash.is_usable() {
        return false;
    }
    let stored = hash.as_str();
    let Ok(phrase) = Phrase::new(password) else {
        return false;
    };
    let Ok(setting) = CString::new(stored) else {
        return false;
    };
    match crypt(&phrase, &setting) {
        Some(computed) => crate::secret::constant_time_eq(computed.as_bytes(), stored.as_bytes()),
        None => false,
    }
}

/// Takes a hash made elsewhere (`import --hashed`, a fleet entry) only if it
/// is one: a modular crypt string (`$id$...`) that this system's libcrypt
/// computes to a string of the same method, settings and length. Refused,
/// each with its reason: plaintext; libcrypt's failure tokens (`*0`, `*1`);
/// locked or disabled fields; DES and other hashes without `$`, which a
/// 13-character plaintext could pass for; and methods this libcrypt lacks or
/// was built without.
pub fn check_hash(field: &str) -> Result<LinuxHash, &'static str> {
    let Some(hash) = LinuxHash::from_field(field) else {
        return Err("holds ':' or a line break");
    };
    if field.is_empty() {
        return Err("is empty");
    }
    if field.starts_with('*') {
        return Err("is libcrypt's failure token or a disabled password, not a hash");
    }
    if field.starts_with('!') {
        return Err("is a locked hash; set the password, then lock it with 'passwd -l'");
    }
    let Some(settings_end) = field.rfind('$').filter(|_| field.starts_with('$')) else {
        return Err("is not a crypt hash ($id$...): plaintext, or DES, which is refused");
    };
    let probe = Password::new(b"credsync-probe".to_vec()).map_err(|_| "cannot be checked")?;
    let phrase = Phrase::new(&probe).map_err(|_| "cannot be checked")?;
    let setting = CString::new(field).map_err(|_| "holds a NUL byte")?;
    match crypt(&phrase, &setting) {
        Some(computed)
            if computed.len() == field.len()
                && computed.as_bytes()[..settings_end] == field.as_bytes()[..settings_end] =>
        {
            Ok(hash)
        }
        _ => Err("is not a hash this system's libcrypt can verify"),
    }
}

/// The method libcrypt itself prefers for new hashes (`crypt_preferred_method`,
/// `$y$` in libxcrypt 4.4), when credsync knows it.
pub fn preferred_algorithm() -> Option<Algorithm> {
    // SAFETY: crypt_preferred_method takes no arguments and returns either NULL
    // or a pointer to a static NUL-terminated string owned by libcrypt, which
    // is only read here, before any other libcrypt call.
    let prefix = unsafe { ffi::crypt_preferred_method() };
    if prefix.is_null() {
        return None;
    }
    // SAFETY: non-NULL, so it points to a static NUL-terminated string (see above).
    let prefix = unsafe { CStr::from_ptr(prefix) };
    let prefix = prefix.to_str().ok()?;
    Algorithm::ALL.into_iter().find(|a| a.prefix() == prefix)
}

/// The password as libcrypt takes it: a NUL-terminated copy, wiped on drop.
struct Phrase(Zeroizing<Vec<u8>>);

impl Phrase {
    fn new(password: &Password) -> Result<Self, CryptError> {
        let bytes = password.as_bytes();
        if bytes.len() > MAX_PASSPHRASE_LEN {
            return Err(CryptError::PasswordTooLong {
                max: MAX_PASSPHRASE_LEN,
            });
        }
        // `Password` already refuses NUL; a NUL here would silently cut the
        // phrase short, so it is checked again at the FFI boundary.
        if bytes.contains(&0) {
            return Err(CryptError::Failed);
        }
        let mut copy = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
        copy.extend_from_slice(bytes);
        copy.push(0);
        Ok(Phrase(copy))
    }

    fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr().cast()
    }
}

/// A setting string (`$y$j9T$<salt>`) from `crypt_gensalt_rn`.
fn gensalt(prefix: &str, name: &'static str, count: c_ulong) -> Result<CString, CryptError> {
    let prefix = CString::new(prefix).map_err(|_| CryptError::Failed)?;
    let mut output = [0 as c_char; ffi::CRYPT_GENSALT_OUTPUT_SIZE];
    let output_size = c_int::try_from(output.len()).map_err(|_| CryptError::Failed)?;
    // SAFETY: `prefix` is NUL-terminated and outlives the call; rbytes is NULL
    // with nrbytes 0, which libxcrypt documents as "draw random bytes yourself"
    // (CRYPT_GENSALT_IMPLEMENTS_AUTO_ENTROPY); `output` is writable for
    // `output_size` bytes, the CRYPT_GENSALT_OUTPUT_SIZE the header requires.
    let setting = unsafe {
        ffi::crypt_gensalt_rn(
            prefix.as_ptr(),
            count,
            std::ptr::null(),
            0,
            output.as_mut_ptr(),
            output_size,
        )
    };
    if setting.is_null() {
        // EINVAL: a prefix this libcrypt was built without (the count was
        // checked against the algorithm's range before the call).
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINVAL) => Err(CryptError::Unsupported(name)),
            _ => Err(CryptError::Failed),
        };
    }
    // SAFETY: on success crypt_gensalt_rn returns `output`, which now holds a
    // NUL-terminated string no longer than the buffer.
    let setting = unsafe { CStr::from_ptr(setting) };
    Ok(setting.to_owned())
}

/// `crypt_rn(phrase, setting)` in a fresh zeroed `struct crypt_data` that is
/// wiped afterwards. `None` when libcrypt fails (unknown or malformed setting,
/// disabled method, ...).
fn crypt(phrase: &Phrase, setting: &CStr) -> Option<String> {
    let mut data = ffi::CryptData::new_zeroed();
    let size = c_int::try_from(std::mem::size_of::<ffi::CryptData>()).ok()?;
    // SAFETY: `phrase` and `setting` are NUL-terminated and outlive the call;
    // `data` points to a zero-initialised (as the header asks before the first
    // use) heap allocation of exactly `size` bytes laid out as
    // `struct crypt_data`, exclusively borrowed for the call. libxcrypt aligns
    // its internal area itself.
    let result = unsafe {
        ffi::crypt_rn(
            phrase.as_ptr(),
            setting.as_ptr(),
            data.as_mut_ptr().cast(),
            size,
        )
    };
    if result.is_null() {
        return None;
    }
    // SAFETY: on success crypt_rn returns a pointer to `data.output`, which
    // holds a NUL-terminated string; `data` is still alive here and is only
    // wiped (on drop) after the string has been copied out.
    let hashed = unsafe { CStr::from_ptr(result) };
    let hashed = hashed.to_str().ok()?.to_owned();
    // libxcrypt's success never starts with `*`; refuse it anyway, in case a
    // failure token ever reaches this point.
    if hashed.is_empty() || hashed.starts_with('*') {
        return None;
    }
    Some(hashed)
}

mod ffi {
    use std::ffi::{c_char, c_int, c_ulong, c_void};
    use zeroize::{Zeroize, ZeroizeOnDrop};

    // Sizes from libxcrypt 4.4's <crypt.h>.
    pub const CRYPT_OUTPUT_SIZE: usize = 384;
    pub const CRYPT_MAX_PASSPHRASE_SIZE: usize = 512;
    pub const CRYPT_GENSALT_OUTPUT_SIZE: usize = 192;
    pub const CRYPT_DATA_RESERVED_SIZE: usize = 767;
    pub const CRYPT_DATA_INTERNAL_SIZE: usize = 30720;

    /// `struct crypt_data` from <crypt.h>: only `char` arrays, 32768 bytes.
    #[repr(C)]
    #[derive(Zeroize, ZeroizeOnDrop)]
    pub struct CryptData {
        output: [c_char; CRYPT_OUTPUT_SIZE],
        setting: [c_char; CRYPT_OUTPUT_SIZE],
        input: [c_char; CRYPT_MAX_PASSPHRASE_SIZE],
        reserved: [c_char; CRYPT_DATA_RESERVED_SIZE],
        initialized: c_char,
        internal: [c_char; CRYPT_DATA_INTERNAL_SIZE],
    }

    // The header chose its sizes "to make sizeof (struct crypt_data) add up to
    // exactly 32768 bytes"; a mismatch means the layout above is wrong.
    const _: () = assert!(std::mem::size_of::<CryptData>() == 32768);

    impl CryptData {
        /// Zeroed, as the header asks before the first use and as pam_unix
        /// `calloc`s it, on the heap; wiped when dropped, as pam_unix does with
        /// `pam_overwrite_object` before `free`.
        pub fn new_zeroed() -> Box<CryptData> {
            Box::new(CryptData {
                output: [0; CRYPT_OUTPUT_SIZE],
                setting: [0; CRYPT_OUTPUT_SIZE],
                input: [0; CRYPT_MAX_PASSPHRASE_SIZE],
                reserved: [0; CRYPT_DATA_RESERVED_SIZE],
                initialized: 0,
                internal: [0; CRYPT_DATA_INTERNAL_SIZE],
            })
        }

        pub fn as_mut_ptr(&mut self) -> *mut CryptData {
            self
        }
    }

    #[link(name = "crypt")]
    unsafe extern "C" {
        pub fn crypt_rn(
            phrase: *const c_char,
            setting: *const c_char,
            data: *mut c_void,
            size: c_int,
        ) -> *mut c_char;

        pub fn crypt_gensalt_rn(
            prefix: *const c_char,
            count: c_ulong,
            rbytes: *const c_char,
            nrbytes: c_int,
            output: *mut c_char,
            output_size: c_int,
        ) -> *mut c_char;

        pub fn crypt_preferred_method() -> *const c_char;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn pw(s: &str) -> Password {
        Password::new(s.as_bytes().to_vec()).unwrap()
    }

    /// What `import --hashed` and fleet entries take: hashes of every method
    /// libxcrypt builds, made by this libcrypt and by openssl; and what they
    /// refuse, each for its own reason.
    #[test]
    fn only_real_hashes_pass_the_check() {
        let method = |algorithm| HashMethod {
            algorithm,
            rounds: None,
        };
        for algorithm in [Algorithm::Yescrypt, Algorithm::Sha512, Algorithm::Sha256] {
            let hash = hash_password(&pw("Some#Pass1"), &method(algorithm)).unwrap();
            assert_eq!(check_hash(hash.as_str()).unwrap(), hash);
        }
        let openssl = Command::new("openssl")
            .args(["passwd", "-6", "-salt", "saltsalt", "Some#Pass1"])
            .output()
            .unwrap();
        let made_elsewhere = String::from_utf8(openssl.stdout).unwrap();
        assert!(check_hash(made_elsewhere.trim()).is_ok());

        let refused = |field: &str, why: &str| {
            let reason = check_hash(field).unwrap_err();
            assert!(reason.contains(why), "{field:?}: {reason}");
        };
        refused("Some#Pass1", "not a crypt hash");
        refused("abcdefghijklm", "DES");
        refused("*0", "failure token");
        refused("!$6$saltsalt$x", "locked");
        refused("", "empty");
        refused("a:b", "':'");
        // No such method, and a known method with a mangled body.
        refused("$9z$salt$hash", "libcrypt can verify");
        refused(
            &format!("{}x", made_elsewhere.trim()),
            "libcrypt can verify",
        );
    }

    /// The algorithm a hash names by its prefix (`$2a$`/`$2y$` are blowfish).
    fn algorithm_of(hash: &LinuxHash) -> Option<Algorithm> {
        let s = hash.as_str();
        if ["$2a$", "$2y$"].iter().any(|p| s.starts_with(p)) {
            return Some(Algorithm::Blowfish);
        }
        Algorithm::ALL
            .into_iter()
            .find(|a| s.starts_with(a.prefix()))
    }

    fn hash(s: &str) -> LinuxHash {
        LinuxHash::from_field(s).unwrap()
    }

    fn method(algorithm: Algorithm, rounds: Option<u32>) -> HashMethod {
        HashMethod { algorithm, rounds }
    }

    /// The cheapest cost of each algorithm, so the round trips stay quick.
    fn cheap(algorithm: Algorithm) -> HashMethod {
        let rounds = algorithm.rounds_range().map(|r| *r.start());
        method(algorithm, rounds)
    }

    #[test]
    fn every_algorithm_round_trips_and_rejects_a_wrong_password() {
        for algorithm in Algorithm::ALL {
            let h = hash_password(&pw("Correct#Horse1"), &cheap(algorithm))
                .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
            assert!(h.as_str().starts_with(algorithm.prefix()), "{algorithm}");
            assert_eq!(algorithm_of(&h), Some(algorithm));
            assert!(verify(&pw("Correct#Horse1"), &h), "{algorithm}");
            assert!(!verify(&pw("Correct#Horse2"), &h), "{algorithm}");
            assert!(!verify(&pw("Correct#Horse"), &h), "{algorithm}");
        }
    }

    #[test]
    fn default_cost_round_trips() {
        for algorithm in [Algorithm::Yescrypt, Algorithm::Sha512, Algorithm::Md5] {
            let h = hash_password(&pw("Old#Pass1"), &method(algorithm, None)).unwrap();
            assert!(verify(&pw("Old#Pass1"), &h));
        }
    }

    #[test]
    fn two_hashes_of_one_password_have_different_salts() {
        let m = method(Algorithm::Yescrypt, Some(1));
        let a = hash_password(&pw("Old#Pass1"), &m).unwrap();
        let b = hash_password(&pw("Old#Pass1"), &m).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn yescrypt_cost_is_encoded_in_the_parameters() {
        // libxcrypt: cost 5 (and its default) is `j9T`, the cost pam_unix
        // and Debian's passwd use; 1 is `j75`.
        let h = hash_password(&pw("pw"), &method(Algorithm::Yescrypt, Some(5))).unwrap();
        assert!(h.as_str().starts_with("$y$j9T$"), "{}", h.as_str());
        let h = hash_password(&pw("pw"), &method(Algorithm::Yescrypt, None)).unwrap();
        assert!(h.as_str().starts_with("$y$j9T$"));
        let h = hash_password(&pw("pw"), &method(Algorithm::Yescrypt, Some(1))).unwrap();
        assert!(h.as_str().starts_with("$y$j75$"));
        let h = hash_password(&pw("pw"), &method(Algorithm::GostYescrypt, Some(1))).unwrap();
        assert!(h.as_str().starts_with("$gy$j75$"));
    }

    #[test]
    fn sha_rounds_are_written_unless_they_are_the_default_5000() {
        // libxcrypt leaves `rounds=` out for its default of 5000, as glibc did.
        let h = hash_password(&pw("pw"), &method(Algorithm::Sha512, Some(65536))).unwrap();
        assert!(h.as_str().starts_with("$6$rounds=65536$"));
        let h = hash_password(&pw("pw"), &method(Algorithm::Sha256, Some(1000))).unwrap();
        assert!(h.as_str().starts_with("$5$rounds=1000$"));
        for rounds in [Some(5000), None] {
            let h = hash_password(&pw("pw"), &method(Algorithm::Sha512, rounds)).unwrap();
            assert!(h.as_str().starts_with("$6$"));
            assert!(!h.as_str().contains("rounds="));
            assert_eq!(h.as_str().split('$').nth(2).unwrap().len(), 16, "salt");
        }
    }

    #[test]
    fn blowfish_cost_is_the_two_digit_log2_field() {
        let h = hash_password(&pw("pw"), &method(Algorithm::Blowfish, Some(4))).unwrap();
        assert!(h.as_str().starts_with("$2b$04$"));
        let h = hash_password(&pw("pw"), &method(Algorithm::Blowfish, None)).unwrap();
        assert!(h.as_str().starts_with("$2b$05$"));
    }

    #[test]
    fn md5_ignores_rounds() {
        let h = hash_password(&pw("pw"), &method(Algorithm::Md5, Some(12345))).unwrap();
        assert!(h.as_str().starts_with("$1$"));
        assert!(verify(&pw("pw"), &h));
    }

    #[test]
    fn rounds_outside_the_algorithms_range_are_refused() {
        for (algorithm, rounds) in [
            (Algorithm::Yescrypt, 0),
            (Algorithm::Yescrypt, 12),
            (Algorithm::GostYescrypt, 12),
            (Algorithm::Sha512, 999),
            (Algorithm::Sha256, 1_000_000_000),
            (Algorithm::Blowfish, 3),
            (Algorithm::Blowfish, 32),
        ] {
            let err = hash_password(&pw("pw"), &method(algorithm, Some(rounds))).unwrap_err();
            assert!(
                matches!(err, CryptError::InvalidRounds { rounds: r, .. } if r == rounds),
                "{algorithm} {rounds}: {err}"
            );
        }
    }

    #[test]
    fn the_longest_password_the_edge_admits_is_one_libcrypt_takes() {
        // `Password` caps input at libcrypt's limit, so the guard in
        // `hash_password` is never the one that refuses.
        assert_eq!(crate::secret::MAX_PASSWORD_LEN, MAX_PASSPHRASE_LEN);
        assert!(Password::new(vec![b'a'; MAX_PASSPHRASE_LEN + 1]).is_err());
        let longest = Password::new(vec![b'a'; MAX_PASSPHRASE_LEN]).unwrap();
        let h = hash_password(&longest, &method(Algorithm::Md5, None)).unwrap();
        assert!(verify(&longest, &h));
    }

    #[test]
    fn non_utf8_passwords_hash_and_verify() {
        let p = Password::new(vec![0xff, 0xfe, b'x', 0xc3]).unwrap();
        let h = hash_password(&p, &cheap(Algorithm::Sha512)).unwrap();
        assert!(verify(&p, &h));
    }

    #[test]
    fn locked_disabled_and_empty_fields_never_verify() {
        let good = hash_password(&pw("pw"), &cheap(Algorithm::Sha512)).unwrap();
        assert!(verify(&pw("pw"), &good));
        let locked = hash(&format!("!{}", good.as_str()));
        assert!(!locked.is_usable());
        assert!(good.is_usable());
        assert!(!verify(&pw("pw"), &locked));
        for field in ["", "!", "!!", "*", "*LK*", "x", "$6$", "*0", "*1"] {
            assert!(!verify(&pw("pw"), &hash(field)), "{field:?}");
        }
        // A `*` in front of a real hash disables it, like `!`.
        assert!(!verify(&pw("pw"), &hash(&format!("*{}", good.as_str()))));
    }

    #[test]
    fn hashes_written_by_shadow_utils_chpasswd_verify() {
        // Made once on Debian 12 (shadow-utils 4.13, libxcrypt 4.4.33) in a
        // scratch root: `printf 'alice:Correct#Horse1\n' | chpasswd -R DIR -c
        // YESCRYPT -s 5`, `... -c SHA512 -s 10000`, `... -c DES`.
        let yescrypt = "$y$j9T$Y30kvJVwVEVRw2z4mNun9.$.Xq7bOOoxrbh5NdyiQF.T6AAjYSgEx3M1cq67CMbP9A";
        let sha512 = "$6$rounds=10000$msfDed0xRabzdU49$TeJfRWlru5uQ/iWo5RLiCaZ9WPmxNl1iE6rq2xosq5CnWgfRqN8RobUF/1kGlEtR3iNcERCVYcyMrRZsYgnK30";
        // DES uses only the first 8 bytes: "Correct#".
        let des = "oGvBwocrkGkUc";
        for stored in [yescrypt, sha512, des] {
            assert!(verify(&pw("Correct#Horse1"), &hash(stored)), "{stored}");
            assert!(!verify(&pw("correct#Horse1"), &hash(stored)), "{stored}");
        }
        assert!(verify(&pw("Correct#"), &hash(des)));
    }

    #[test]
    fn bcrypt_reference_vectors_verify_in_every_2x_flavour() {
        // The first test vector of Openwall's crypt_blowfish (wrapper.c), the
        // code libxcrypt's bcrypt comes from; for ASCII passwords $2a$, $2b$
        // and $2y$ hash alike.
        for flavour in ["2a", "2b", "2y"] {
            let stored =
                format!("${flavour}$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW");
            assert!(verify(&pw("U*U"), &hash(&stored)), "{stored}");
            assert!(!verify(&pw("U*V"), &hash(&stored)), "{stored}");
        }
    }

    /// `openssl passwd -{6,5,1} -salt saltsalt Correct#Horse1`, run once with
    /// OpenSSL 3.0.19 on Debian 12; used when openssl is not installed.
    const OPENSSL_RECORDED: [(&str, &str); 3] = [
        (
            "-6",
            "$6$saltsalt$.mkck9blsn3DRml.Aeg5re4t6iEoPblMqIV5OuBMMRdNZmuV18TFnYV/2jaOGK3tJ7k5phkYkynQvEg/DoLry/",
        ),
        (
            "-5",
            "$5$saltsalt$oqbQi5jmCSkZhVJeRwrh9Nuj/O9egKqu0H.M6lTabk9",
        ),
        ("-1", "$1$saltsalt$lg4QKy5ii8oPRH9NAhpy51"),
    ];

    fn openssl_passwd(flag: &str, salt: &str, password: &str) -> Option<String> {
        let out = Command::new("openssl")
            .args(["passwd", flag, "-salt", salt, password])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).ok())
            .flatten()
            .map(|s| s.trim().to_owned())
    }

    #[test]
    fn hashes_made_by_openssl_verify() {
        for (flag, recorded) in OPENSSL_RECORDED {
            assert!(verify(&pw("Correct#Horse1"), &hash(recorded)), "{recorded}");
            assert!(
                !verify(&pw("Correct#Horse2"), &hash(recorded)),
                "{recorded}"
            );
            // A live, independent implementation when one is installed.
            if let Some(live) = openssl_passwd(flag, "Zq3.x/Yw9", "Live#Pass 9") {
                assert!(verify(&pw("Live#Pass 9"), &hash(&live)), "{live}");
                assert!(!verify(&pw("Live#Pass 8"), &hash(&live)), "{live}");
            }
        }
    }

    #[test]
    fn a_method_libcrypt_lacks_is_reported_as_unsupported() {
        let err = gensalt("$unknown$", "unknown", 0).unwrap_err();
        assert!(matches!(err, CryptError::Unsupported("unknown")), "{err}");
        assert!(gensalt("$6$", "sha512", 0).is_ok());
    }

    #[test]
    fn names_and_prefixes() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(a.name()), Some(a));
            assert_eq!(Algorithm::from_name(&a.name().to_uppercase()), Some(a));
        }
        for (login_defs, a) in [
            ("YESCRYPT", Algorithm::Yescrypt),
            ("GOST_YESCRYPT", Algorithm::GostYescrypt),
            ("SHA512", Algorithm::Sha512),
            ("SHA256", Algorithm::Sha256),
            ("BCRYPT", Algorithm::Blowfish),
            ("bcrypt", Algorithm::Blowfish),
            ("MD5", Algorithm::Md5),
            ("Sha512", Algorithm::Sha512),
        ] {
            assert_eq!(Algorithm::from_name(login_defs), Some(a));
        }
        for unknown in ["DES", "bigcrypt", "", "sha1", "sha5120", "argon2"] {
            assert_eq!(Algorithm::from_name(unknown), None, "{unknown}");
        }
        assert_eq!(Algorithm::Blowfish.name(), "blowfish");
        assert_eq!(Algorithm::GostYescrypt.prefix(), "$gy$");
        assert_eq!(Algorithm::Blowfish.prefix(), "$2b$");
    }

    #[test]
    fn libcrypt_prefers_yescrypt() {
        // libxcrypt 4.4 as Debian 12 builds it.
        assert_eq!(preferred_algorithm(), Some(Algorithm::Yescrypt));
    }

    #[test]
    fn debug_never_shows_the_hash() {
        let h = hash("$6$salt$secretlookinghash");
        assert_eq!(format!("{h:?}"), "LinuxHash(<redacted>)");
    }
}
