//! Which hash method the system uses for new passwords, so that credsync writes
//! the hash `passwd` would have written. In order:
//! 1. credsync's own configuration;
//! 2. the pam_unix module of the PAM service's `password` stack (what `passwd`
//!    runs: Debian 12 writes `$y$` through PAM while login.defs says SHA512),
//!    resolved exactly as pam_unix resolves it, login.defs presets included;
//! 3. `ENCRYPT_METHOD` in login.defs, with the cost shadow-utils' `chpasswd`
//!    and `newusers` would use;
//! 4. libcrypt's preferred method at its default cost.
//!
//! Files that are missing or unreadable count as absent: detection never fails,
//! it falls through to the next source.
#![forbid(unsafe_code)]

pub mod login_defs;
pub mod pam_stack;

use super::Paths;
use super::crypt::{self, Algorithm, HashMethod};
pub use login_defs::LoginDefs;

/// Where the method came from, for `status` and the docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodSource {
    Config,
    /// The file holding the pam_unix `password` line.
    PamStack(String),
    LoginDefs,
    LibcryptDefault,
}

pub fn detect(
    paths: &Paths,
    service: &str,
    configured: Option<HashMethod>,
) -> (HashMethod, MethodSource) {
    if let Some(method) = configured {
        return (method, MethodSource::Config);
    }
    let defs = LoginDefs::read(&paths.login_defs()).ok().flatten();
    if let Some(line) = pam_stack::find_pam_unix_password(&paths.pam_d(), service)
        && let Some(method) = pam_unix_method(&line.args, defs.as_ref())
    {
        let file = line.file.display().to_string();
        return (method, MethodSource::PamStack(file));
    }
    if let Some(method) = defs.as_ref().and_then(login_defs_method) {
        return (method, MethodSource::LoginDefs);
    }
    (libcrypt_default(), MethodSource::LibcryptDefault)
}

/// libcrypt's preferred method (`crypt_preferred_method`, `$y$` in libxcrypt
/// 4.4) at libcrypt's default cost.
pub fn libcrypt_default() -> HashMethod {
    HashMethod {
        algorithm: crypt::preferred_algorithm().unwrap_or(Algorithm::Yescrypt),
        rounds: None,
    }
}

/// A hash option of pam_unix: a method credsync writes, or a legacy one
/// (`bigcrypt`, `des`: DES-based, 8 significant characters) it refuses to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PamHash {
    Method(Algorithm),
    Legacy,
}

/// pam_unix's hash options in the order of its option table
/// (`unix_args[]` in linux-pam `modules/pam_unix/support.h`).
const PAM_UNIX_HASH_OPTIONS: [(&str, PamHash); 8] = [
    ("md5", PamHash::Method(Algorithm::Md5)),
    ("bigcrypt", PamHash::Legacy),
    ("sha256", PamHash::Method(Algorithm::Sha256)),
    ("sha512", PamHash::Method(Algorithm::Sha512)),
    ("blowfish", PamHash::Method(Algorithm::Blowfish)),
    ("des", PamHash::Legacy),
    ("gost_yescrypt", PamHash::Method(Algorithm::GostYescrypt)),
    ("yescrypt", PamHash::Method(Algorithm::Yescrypt)),
];

/// The method pam_unix computes from its options, mirroring `_set_ctrl` in
/// linux-pam `modules/pam_unix/support.c` as Linux-PAM 1.5.2 (Debian 12) has
/// it, so credsync writes what `passwd` writes there:
/// - `ENCRYPT_METHOD` from login.defs presets the method (case-insensitive
///   prefix match against the option names, so `BCRYPT` is not recognised);
///   only when it names sha256 or sha512 is `SHA_CRYPT_MAX_ROUNDS` read, and
///   then it counts as a cost set (whatever method the options pick);
/// - each option matching a hash name replaces the method, so the last wins;
///   `rounds=N` sets the cost (the last valid one wins);
/// - `YESCRYPT_COST_FACTOR` and `SHA_CRYPT_MIN_ROUNDS` are never read: with
///   no cost set, yescrypt, gost_yescrypt and blowfish use 5 (`$y$j9T$`);
/// - a cost out of range (yescrypt 3..=11, blowfish 4..=31) becomes 5, not
///   the nearest bound; SHA rounds below 1000 mean libcrypt's default, 10^7
///   and more become 9999999.
///
/// Linux-PAM 1.6.0 and later read `YESCRYPT_COST_FACTOR` and clamp instead
/// (commits 8d082da1 and 6caedeff); the README's "Supported systems" says
/// which release these rules follow.
///
/// `None` when pam_unix would write DES or bigcrypt (no method option and no
/// usable `ENCRYPT_METHOD`): credsync does not write 8-character hashes, and
/// detection moves on to login.defs and libcrypt's default — the one place
/// it writes something other than `passwd` would.
fn pam_unix_method(args: &[String], defs: Option<&LoginDefs>) -> Option<HashMethod> {
    let mut hash = defs
        .and_then(|d| d.get("ENCRYPT_METHOD"))
        .and_then(|value| {
            let value = value.to_ascii_lowercase();
            PAM_UNIX_HASH_OPTIONS
                .iter()
                .find(|(name, _)| value.starts_with(name))
                .map(|&(_, hash)| hash)
        });
    let mut rounds = match hash {
        Some(PamHash::Method(Algorithm::Sha256 | Algorithm::Sha512)) => defs
            .and_then(|d| d.get("SHA_CRYPT_MAX_ROUNDS"))
            .and_then(pam_unix_strtol),
        _ => None,
    };
    for arg in args {
        if let Some(value) = arg.strip_prefix("rounds=") {
            if let Some(n) = pam_unix_int(value) {
                rounds = Some(i64::from(n));
            }
        } else if let Some(&(_, option)) = PAM_UNIX_HASH_OPTIONS
            .iter()
            .find(|(name, _)| arg.starts_with(name))
        {
            hash = Some(option);
        }
    }
    let Some(PamHash::Method(algorithm)) = hash else {
        return None;
    };
    let within = |range: std::ops::RangeInclusive<i64>| {
        let cost = rounds.filter(|r| range.contains(r)).unwrap_or(5);
        Some(u32::try_from(cost).expect("a small cost"))
    };
    let rounds = match algorithm {
        Algorithm::Yescrypt | Algorithm::GostYescrypt => within(3..=11),
        Algorithm::Blowfish => within(4..=31),
        Algorithm::Sha256 | Algorithm::Sha512 => rounds
            .filter(|&r| r >= 1000 && r != i64::from(i32::MAX))
            .map(|r| u32::try_from(r.min(9_999_999)).expect("below 10^7")),
        Algorithm::Md5 => None,
    };
    Some(HashMethod { algorithm, rounds })
}

/// `strtol(value, NULL, 10)` into an `int`, as 1.5.2 reads
/// `SHA_CRYPT_MAX_ROUNDS`: leading blanks and a sign allowed, trailing text
/// ignored, nothing readable is 0.
fn pam_unix_strtol(value: &str) -> Option<i64> {
    let text = value.trim_start_matches([' ', '\t']);
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let n: i64 = digits[..end].parse().unwrap_or(0);
    Some((sign * n).clamp(i64::from(i32::MIN), i64::from(i32::MAX)))
}

/// pam_unix's `_unix_strtoi(str, 0, ...)`: a whole decimal number from 0 to
/// `INT_MAX` (leading blanks and `+` allowed, as `strtol` does).
fn pam_unix_int(value: &str) -> Option<u32> {
    let n: i64 = value.trim_start_matches([' ', '\t']).parse().ok()?;
    u32::try_from(n).ok().filter(|&n| n <= i32::MAX as u32)
}

/// The method shadow-utils' `chpasswd`/`newusers` take from login.defs
/// (`crypt_make_salt` in shadow-utils `lib/salt.c`, 4.13 to 4.19):
/// - SHA256/SHA512: a cost between `SHA_CRYPT_MIN_ROUNDS` and
///   `SHA_CRYPT_MAX_ROUNDS` (either alone serves as both; a minimum above
///   the maximum wins), clamped to 1000..=999999999; none set means the
///   default 5000 (`None`). shadow-utils picks at random in the range,
///   favouring the top; credsync takes the top, the value pam_unix uses.
/// - BCRYPT: the same with `BCRYPT_MIN_ROUNDS`/`BCRYPT_MAX_ROUNDS`, default
///   13, clamped to 4..=31.
/// - YESCRYPT: `YESCRYPT_COST_FACTOR`, default 5, clamped to 1..=11;
///   GOST_YESCRYPT (which shadow-utils does not offer) is treated alike.
/// - MD5: no cost.
///
/// `None` for `DES`, an unknown value or no `ENCRYPT_METHOD` (shadow-utils
/// would then write DES, MD5 with `MD5_CRYPT_ENAB`, or since 4.14 SHA512;
/// credsync uses libcrypt's default instead). Unlike shadow-utils, the method
/// name is matched without regard to case.
fn login_defs_method(defs: &LoginDefs) -> Option<HashMethod> {
    let algorithm = Algorithm::from_name(defs.get("ENCRYPT_METHOD")?)?;
    let rounds = match algorithm {
        Algorithm::Sha256 | Algorithm::Sha512 => {
            shadow_range_top(defs, "SHA_CRYPT_MIN_ROUNDS", "SHA_CRYPT_MAX_ROUNDS")
                .map(|r| r.clamp(1_000, 999_999_999))
        }
        Algorithm::Blowfish => Some(
            shadow_range_top(defs, "BCRYPT_MIN_ROUNDS", "BCRYPT_MAX_ROUNDS")
                .unwrap_or(13)
                .clamp(4, 31),
        ),
        Algorithm::Yescrypt | Algorithm::GostYescrypt => Some(
            defs.get_number("YESCRYPT_COST_FACTOR")
                .unwrap_or(5)
                .clamp(1, 11),
        ),
        Algorithm::Md5 => None,
    };
    let rounds = rounds.map(|r| u32::try_from(r).unwrap_or(u32::MAX));
    Some(HashMethod { algorithm, rounds })
}

/// The top of shadow-utils' `[MIN, MAX]` range; -1 or an invalid number is
/// unset, as with `getdef_long(key, -1)`.
fn shadow_range_top(defs: &LoginDefs, min_key: &str, max_key: &str) -> Option<i64> {
    let get = |key| defs.get_number(key).filter(|&n| n != -1);
    match (get(min_key), get(max_key)) {
        (None, None) => None,
        (Some(only), None) | (None, Some(only)) => Some(only),
        (Some(min), Some(max)) => Some(max.max(min)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use tempfile::TempDir;

    /// A scratch root with `etc/pam.d` and, optionally, `etc/login.defs`.
    struct Fixture {
        root: TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            let root = tempfile::tempdir().unwrap();
            fs::create_dir_all(root.path().join("etc/pam.d")).unwrap();
            Fixture { root }
        }

        fn pam(self, service: &str, text: &str) -> Fixture {
            fs::write(self.paths().pam_d().join(service), text).unwrap();
            self
        }

        fn login_defs(self, text: &str) -> Fixture {
            fs::write(self.paths().login_defs(), text).unwrap();
            self
        }

        fn paths(&self) -> Paths {
            Paths::under(self.root.path())
        }

        fn pam_file(&self, service: &str) -> MethodSource {
            let path = self.paths().pam_d().join(service);
            MethodSource::PamStack(path.display().to_string())
        }

        fn detect(&self) -> (HashMethod, MethodSource) {
            detect(&self.paths(), "credsync", None)
        }
    }

    fn method(algorithm: Algorithm, rounds: Option<u32>) -> HashMethod {
        HashMethod { algorithm, rounds }
    }

    const DEBIAN_LOGIN_DEFS: &str = "MAIL_DIR        /var/mail\n\
        PASS_MAX_DAYS\t99999\n\
        ENCRYPT_METHOD SHA512\n\
        # SHA_CRYPT_MIN_ROUNDS 5000\n\
        # SHA_CRYPT_MAX_ROUNDS 5000\n\
        #YESCRYPT_COST_FACTOR 5\n";

    /// Debian 12's /etc/pam.d/common-password, comments shortened.
    const DEBIAN_COMMON_PASSWORD: &str = "#\n\
        # /etc/pam.d/common-password - password-related modules common to all services\n\
        #\n\
        # here are the per-package modules (the \"Primary\" block)\n\
        password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt\n\
        # here's the fallback if no module succeeds\n\
        password\trequisite\t\t\tpam_deny.so\n\
        password\trequired\t\t\tpam_permit.so\n";

    fn debian() -> Fixture {
        Fixture::new()
            .login_defs(DEBIAN_LOGIN_DEFS)
            .pam(
                "credsync",
                "#%PAM-1.0\n@include common-auth\n@include common-password\n",
            )
            .pam(
                "common-auth",
                "auth [success=1 default=ignore] pam_unix.so nullok\n",
            )
            .pam("common-password", DEBIAN_COMMON_PASSWORD)
    }

    #[test]
    fn debian_layout_gives_yescrypt_from_common_password() {
        let fx = debian();
        assert_eq!(
            fx.detect(),
            (
                method(Algorithm::Yescrypt, Some(5)),
                fx.pam_file("common-password")
            )
        );
    }

    #[test]
    fn rounds_option_is_read() {
        let fx = debian().pam(
            "common-password",
            "password [success=1 default=ignore] pam_unix.so obscure sha512 rounds=65536\n",
        );
        assert_eq!(fx.detect().0, method(Algorithm::Sha512, Some(65536)));
    }

    #[test]
    fn the_last_method_option_wins_as_in_pam_unix() {
        let fx = debian().pam(
            "common-password",
            "password required pam_unix.so md5 rounds=7 shadow yescrypt\n",
        );
        assert_eq!(fx.detect().0, method(Algorithm::Yescrypt, Some(7)));
    }

    #[test]
    fn red_hat_include_of_system_auth() {
        let fx = Fixture::new()
            .pam(
                "credsync",
                "#%PAM-1.0\n\
                 auth       include      system-auth\n\
                 password   include      system-auth\n",
            )
            .pam(
                "system-auth",
                "auth        required      pam_env.so\n\
                 auth        sufficient    pam_unix.so nullok\n\
                 password    requisite     pam_pwquality.so local_users_only\n\
                 password    sufficient    pam_unix.so sha512 shadow nullok use_authtok\n\
                 password    required      pam_deny.so\n",
            );
        assert_eq!(
            fx.detect(),
            (method(Algorithm::Sha512, None), fx.pam_file("system-auth"))
        );
    }

    #[test]
    fn substack_and_optional_lines_are_followed() {
        let fx = Fixture::new()
            .pam("credsync", "-password substack password-auth\n")
            .pam(
                "password-auth",
                "-password optional pam_gnome_keyring.so\n\
                 -password sufficient /usr/lib64/security/pam_unix.so blowfish rounds=8\n",
            );
        assert_eq!(
            fx.detect(),
            (
                method(Algorithm::Blowfish, Some(8)),
                fx.pam_file("password-auth")
            )
        );
    }

    #[test]
    fn absolute_includes_stay_under_the_root() {
        let fx = Fixture::new()
            .pam("credsync", "password include /etc/pam.d/system-auth\n")
            .pam("system-auth", "password sufficient pam_unix.so sha256\n");
        assert_eq!(
            fx.detect(),
            (method(Algorithm::Sha256, None), fx.pam_file("system-auth"))
        );
    }

    #[test]
    fn only_password_lines_count() {
        let fx = Fixture::new().pam(
            "credsync",
            "auth sufficient pam_unix.so md5\n\
             account required pam_unix.so\n\
             password required pam_unix.so sha256\n",
        );
        assert_eq!(fx.detect().0, method(Algorithm::Sha256, None));
    }

    #[test]
    fn comments_and_continuations_are_handled() {
        let fx = Fixture::new().pam(
            "credsync",
            "# password required pam_unix.so md5\n\
             password required pam_unix.so # md5\n\
             \x20   sha512\n",
        );
        // The `#` ends the first real line: its options are empty, so the
        // method comes from login.defs through pam_unix's preset.
        let fx = fx.login_defs("ENCRYPT_METHOD SHA256\nSHA_CRYPT_MAX_ROUNDS 20000\n");
        assert_eq!(
            fx.detect(),
            (
                method(Algorithm::Sha256, Some(20000)),
                fx.pam_file("credsync")
            )
        );
        let fx = Fixture::new().pam(
            "credsync",
            "password required \\\n   pam_unix.so obscure \\\n   sha512 \\\n   rounds=5000\n",
        );
        assert_eq!(fx.detect().0, method(Algorithm::Sha512, Some(5000)));
    }

    #[test]
    fn include_loops_terminate() {
        let fx = Fixture::new()
            .pam("credsync", "password include a\n")
            .pam("a", "password include b\n")
            .pam("b", "@include a\npassword include credsync\n")
            .login_defs("ENCRYPT_METHOD SHA512\nSHA_CRYPT_MAX_ROUNDS 9000\n");
        assert_eq!(
            fx.detect(),
            (
                method(Algorithm::Sha512, Some(9000)),
                MethodSource::LoginDefs
            )
        );
    }

    #[test]
    fn deep_include_chains_stop() {
        let mut fx = Fixture::new().pam("credsync", "password include f0\n");
        for i in 0..40 {
            fx = fx.pam(&format!("f{i}"), &format!("password include f{}\n", i + 1));
        }
        fx = fx.pam("f40", "password required pam_unix.so md5\n");
        assert_eq!(fx.detect().1, MethodSource::LibcryptDefault);
    }

    #[test]
    fn a_missing_include_is_skipped() {
        let fx = Fixture::new().pam(
            "credsync",
            "password include nowhere\npassword required pam_unix.so sha512\n",
        );
        assert_eq!(fx.detect().0, method(Algorithm::Sha512, None));
    }

    #[test]
    fn a_missing_service_uses_other() {
        let fx = Fixture::new().pam(
            "other",
            "password required pam_unix.so sha256 rounds=7000\n",
        );
        assert_eq!(
            fx.detect(),
            (method(Algorithm::Sha256, Some(7000)), fx.pam_file("other"))
        );
    }

    #[test]
    fn the_service_name_is_lower_cased_like_pam_start() {
        let fx = debian();
        let (m, _) = detect(&fx.paths(), "CredSync", None);
        assert_eq!(m.algorithm, Algorithm::Yescrypt);
    }

    #[test]
    fn vendor_directory_is_searched_after_etc() {
        let fx = Fixture::new();
        let vendor = fx.root.path().join("usr/lib/pam.d");
        fs::create_dir_all(&vendor).unwrap();
        fs::write(
            vendor.join("credsync"),
            "password required pam_unix.so md5\n",
        )
        .unwrap();
        assert_eq!(fx.detect().0, method(Algorithm::Md5, None));
    }

    #[test]
    fn no_pam_unix_falls_back_to_login_defs_sha_max_rounds() {
        let fx = Fixture::new()
            .pam("credsync", "password required pam_deny.so\n")
            .login_defs(
                "ENCRYPT_METHOD SHA512\n\
                 SHA_CRYPT_MIN_ROUNDS 10000\n\
                 SHA_CRYPT_MAX_ROUNDS 50000\n",
            );
        assert_eq!(
            fx.detect(),
            (
                method(Algorithm::Sha512, Some(50000)),
                MethodSource::LoginDefs
            )
        );
    }

    #[test]
    fn nothing_at_all_gives_libcrypts_default() {
        let fx = Fixture::new();
        assert_eq!(
            fx.detect(),
            (
                method(Algorithm::Yescrypt, None),
                MethodSource::LibcryptDefault
            )
        );
        // No etc/ at all.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            detect(&Paths::under(empty.path()), "credsync", None).1,
            MethodSource::LibcryptDefault
        );
    }

    #[test]
    fn configured_wins_over_everything() {
        let fx = debian().login_defs("ENCRYPT_METHOD MD5\n");
        let configured = method(Algorithm::Sha256, Some(12345));
        assert_eq!(
            detect(&fx.paths(), "credsync", Some(configured)),
            (configured, MethodSource::Config)
        );
    }

    #[test]
    fn pam_unix_without_a_method_takes_login_defs_encrypt_method_but_not_its_cost() {
        // Linux-PAM 1.5.2 never reads YESCRYPT_COST_FACTOR: `passwd` writes
        // `$y$j9T$` (cost 5) here, and so does credsync.
        let fx = Fixture::new()
            .pam("credsync", "password required pam_unix.so shadow nullok\n")
            .login_defs("ENCRYPT_METHOD yescrypt\nYESCRYPT_COST_FACTOR 8\n");
        assert_eq!(
            fx.detect(),
            (
                method(Algorithm::Yescrypt, Some(5)),
                fx.pam_file("credsync")
            )
        );
    }

    #[test]
    fn pam_unix_that_would_write_des_is_not_followed() {
        // pam_unix does not know `BCRYPT`, so it would write DES here;
        // credsync moves on to login.defs as shadow-utils reads it.
        let fx = Fixture::new()
            .pam("credsync", "password required pam_unix.so\n")
            .login_defs("ENCRYPT_METHOD BCRYPT\n");
        assert_eq!(
            fx.detect(),
            (
                method(Algorithm::Blowfish, Some(13)),
                MethodSource::LoginDefs
            )
        );
        let fx = Fixture::new().pam(
            "credsync",
            "password required pam_unix.so sha512 bigcrypt\n",
        );
        assert_eq!(fx.detect().1, MethodSource::LibcryptDefault);
    }

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn pam_unix_costs_follow_support_c_of_linux_pam_1_5_2() {
        let defs = LoginDefs::parse(
            "ENCRYPT_METHOD SHA512\nSHA_CRYPT_MIN_ROUNDS 2000\nSHA_CRYPT_MAX_ROUNDS 8000\nYESCRYPT_COST_FACTOR 9\n",
        );
        let d = Some(&defs);
        let cases: [(&str, Option<&LoginDefs>, HashMethod); 14] = [
            // SHA_CRYPT_MAX_ROUNDS is read because ENCRYPT_METHOD is SHA, and
            // counts as a cost for whatever method the options pick; out of
            // range for yescrypt, it becomes 5. YESCRYPT_COST_FACTOR: never.
            ("yescrypt", d, method(Algorithm::Yescrypt, Some(5))),
            ("yescrypt rounds=4", d, method(Algorithm::Yescrypt, Some(4))),
            ("sha256", d, method(Algorithm::Sha256, Some(8000))),
            ("", d, method(Algorithm::Sha512, Some(8000))),
            ("gost_yescrypt", d, method(Algorithm::GostYescrypt, Some(5))),
            ("blowfish", d, method(Algorithm::Blowfish, Some(5))),
            // Out of range is 5, not the nearest bound.
            (
                "yescrypt rounds=1",
                None,
                method(Algorithm::Yescrypt, Some(5)),
            ),
            (
                "yescrypt rounds=11",
                None,
                method(Algorithm::Yescrypt, Some(11)),
            ),
            (
                "blowfish rounds=2",
                None,
                method(Algorithm::Blowfish, Some(5)),
            ),
            (
                "blowfish rounds=31",
                None,
                method(Algorithm::Blowfish, Some(31)),
            ),
            ("sha512 rounds=999", None, method(Algorithm::Sha512, None)),
            (
                "sha512 rounds=20000000",
                None,
                method(Algorithm::Sha512, Some(9_999_999)),
            ),
            // Invalid rounds= are ignored; md5 has no cost.
            (
                "sha512 rounds=5000 rounds=abc",
                None,
                method(Algorithm::Sha512, Some(5000)),
            ),
            ("md5 rounds=9000", d, method(Algorithm::Md5, None)),
        ];
        for (line, defs, expected) in cases {
            assert_eq!(
                pam_unix_method(&args(line), defs),
                Some(expected),
                "{line:?}"
            );
        }
        assert_eq!(pam_unix_method(&args("obscure"), None), None);
    }

    #[test]
    fn login_defs_costs_follow_shadow_utils() {
        let m = |text: &str| login_defs_method(&LoginDefs::parse(text));
        assert_eq!(
            m("ENCRYPT_METHOD SHA512\n"),
            Some(method(Algorithm::Sha512, None))
        );
        assert_eq!(
            m("ENCRYPT_METHOD SHA256\nSHA_CRYPT_MIN_ROUNDS 7000\n"),
            Some(method(Algorithm::Sha256, Some(7000)))
        );
        assert_eq!(
            m("ENCRYPT_METHOD SHA512\nSHA_CRYPT_MIN_ROUNDS 9000\nSHA_CRYPT_MAX_ROUNDS 6000\n"),
            Some(method(Algorithm::Sha512, Some(9000)))
        );
        assert_eq!(
            m("ENCRYPT_METHOD SHA512\nSHA_CRYPT_MAX_ROUNDS 10\n"),
            Some(method(Algorithm::Sha512, Some(1000)))
        );
        assert_eq!(
            m("ENCRYPT_METHOD BCRYPT\n"),
            Some(method(Algorithm::Blowfish, Some(13)))
        );
        assert_eq!(
            m("ENCRYPT_METHOD BCRYPT\nBCRYPT_MIN_ROUNDS 8\nBCRYPT_MAX_ROUNDS 10\n"),
            Some(method(Algorithm::Blowfish, Some(10)))
        );
        assert_eq!(
            m("ENCRYPT_METHOD YESCRYPT\n"),
            Some(method(Algorithm::Yescrypt, Some(5)))
        );
        assert_eq!(
            m("ENCRYPT_METHOD YESCRYPT\nYESCRYPT_COST_FACTOR 1\n"),
            Some(method(Algorithm::Yescrypt, Some(1)))
        );
        assert_eq!(
            m("ENCRYPT_METHOD YESCRYPT\nYESCRYPT_COST_FACTOR 30\n"),
            Some(method(Algorithm::Yescrypt, Some(11)))
        );
        assert_eq!(
            m("ENCRYPT_METHOD MD5\n"),
            Some(method(Algorithm::Md5, None))
        );
        assert_eq!(m("ENCRYPT_METHOD DES\n"), None);
        assert_eq!(m("MD5_CRYPT_ENAB yes\n"), None);
    }

    #[test]
    fn every_detected_method_hashes() {
        // What detection returns is always acceptable to hash_password.
        let pw = crate::secret::Password::new(b"Old#Pass1".to_vec()).unwrap();
        for line in [
            "yescrypt rounds=3",
            "sha512 rounds=1000",
            "blowfish rounds=4",
            "md5",
            "gost_yescrypt rounds=3",
        ] {
            let m = pam_unix_method(&args(line), None).unwrap();
            crypt::hash_password(&pw, &m).unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    }
}
