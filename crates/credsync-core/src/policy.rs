//! The appliance's password policy: the `[policy]` section of the config, and
//! credsync's own quality rules. Every rule that fails is reported, in the
//! user's terms, so one answer says everything that must change.
//!
//! Lengths and positions count characters (a byte that isn't UTF-8 counts as
//! one); classes are lower case, upper case, digits and everything else.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::secret::Password;
use crate::system::shadow::Aging;
use serde::Deserialize;
use std::fmt;
use zeroize::Zeroizing;

/// `[policy]`. The defaults are the appliance's policy; `0` (or `false`)
/// turns a quality or history rule off. The aging values are written into
/// shadow's fields 4 to 6 by every change, as they are: `min_age_days = 0` is
/// no minimum, `max_age_days = 99999` is shadow's "never expires".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Fewest characters in a new password.
    pub min_length: usize,
    /// Fewest character classes (of lower, upper, digit, other).
    pub min_classes: usize,
    /// Fewest positions in which the new password differs from the old one;
    /// checkable only when the old one is known (a self-service change).
    pub min_changed_chars: usize,
    /// Refuse a password holding the user name, forwards or reversed.
    pub reject_username: bool,
    /// Also apply the site's `/etc/security/pwquality.conf` (through
    /// libpwquality, as pam_pwquality does) when that file exists.
    pub site_rules: bool,
    /// Generations of earlier passwords a new one may not repeat (the current
    /// one included, as pam_pwhistory's `remember` counts).
    pub history: usize,
    /// Shadow field 4: days before a user may change again (root is exempt);
    /// 0 = no minimum.
    pub min_age_days: u32,
    /// Shadow field 5: days a password lasts; 99999 = never expires.
    pub max_age_days: u32,
    /// Shadow field 6: days of warning before it expires.
    pub warn_days: u32,
    pub lockout: LockoutConfig,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            min_length: 8,
            min_classes: 3,
            min_changed_chars: 8,
            reject_username: true,
            site_rules: true,
            history: 5,
            min_age_days: 1,
            max_age_days: 60,
            warn_days: 7,
            lockout: LockoutConfig::default(),
        }
    }
}

impl PolicyConfig {
    /// The aging fields a change writes into shadow.
    pub fn aging(&self) -> Aging {
        Aging {
            min: Some(i64::from(self.min_age_days)),
            max: Some(i64::from(self.max_age_days)),
            warn: Some(i64::from(self.warn_days)),
        }
    }
}

/// `[policy.lockout]`: failed `verify` attempts, counted in pam_faillock's
/// tally so they add up with every other login's. Keys set in
/// `/etc/security/faillock.conf` win, so pam_faillock and credsync agree.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutConfig {
    /// Failures that lock the account (`deny`); 0 = never lock.
    pub failures: u32,
    /// Within this many seconds of each other (`fail_interval`).
    pub window_secs: u64,
    /// For this long (`unlock_time`); 0 = until `credsync recover`.
    pub lock_secs: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        LockoutConfig {
            failures: 6,
            window_secs: 15 * 60,
            lock_secs: 30 * 60,
        }
    }
}

/// One rule a new password breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    TooShort { min: usize, got: usize },
    TooFewClasses { min: usize, got: usize },
    TooFewChanged { min: usize, got: usize },
    HoldsUserName,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TooShort { min, got } => write!(
                f,
                "the new password must be at least {min} characters long; it has {got}"
            ),
            Problem::TooFewClasses { min, got } => write!(
                f,
                "the new password must mix at least {min} of lower case, upper case, digits and other characters; it has {got}"
            ),
            Problem::TooFewChanged { min, got } => write!(
                f,
                "the new password must differ from the old one in at least {min} positions; it differs in {got}"
            ),
            Problem::HoldsUserName => {
                write!(f, "the new password must not contain the user name")
            }
        }
    }
}

/// Names shorter than this are not looked for inside passwords: "al" would
/// refuse too much.
const SHORTEST_NAME_CHECKED: usize = 3;

/// Every one of credsync's own rules that `new` breaks, for `user` changing
/// from `old` when that is known.
pub fn problems(
    policy: &PolicyConfig,
    user: &UserName,
    new: &Password,
    old: Option<&Password>,
) -> Vec<Problem> {
    let new_chars = chars(new);
    let mut found = Vec::new();
    if new_chars.len() < policy.min_length {
        found.push(Problem::TooShort {
            min: policy.min_length,
            got: new_chars.len(),
        });
    }
    let classes = classes(&new_chars);
    if classes < policy.min_classes {
        found.push(Problem::TooFewClasses {
            min: policy.min_classes,
            got: classes,
        });
    }
    if let Some(old) = old
        && policy.min_changed_chars > 0
    {
        let changed = changed_positions(&chars(old), &new_chars);
        if changed < policy.min_changed_chars {
            found.push(Problem::TooFewChanged {
                min: policy.min_changed_chars,
                got: changed,
            });
        }
    }
    if policy.reject_username && holds_name(&new_chars, user.as_str()) {
        found.push(Problem::HoldsUserName);
    }
    found
}

/// The password's characters, in a buffer wiped on drop; each byte that
/// isn't UTF-8 is one character (U+FFFD). No intermediate `String`.
fn chars(password: &Password) -> Zeroizing<Vec<char>> {
    let mut chars = Zeroizing::new(Vec::with_capacity(password.as_bytes().len()));
    for chunk in password.as_bytes().utf8_chunks() {
        chars.extend(chunk.valid().chars());
        chars.extend(std::iter::repeat_n(
            char::REPLACEMENT_CHARACTER,
            chunk.invalid().len(),
        ));
    }
    chars
}

fn classes(chars: &[char]) -> usize {
    let has = |test: fn(&char) -> bool| chars.iter().any(test);
    [
        has(|c| c.is_lowercase()),
        has(|c| c.is_uppercase()),
        has(|c| c.is_numeric()),
        has(|c| !c.is_lowercase() && !c.is_uppercase() && !c.is_numeric()),
    ]
    .into_iter()
    .filter(|&present| present)
    .count()
}

/// Positions whose character differs, a position only one of them has
/// counting as different.
fn changed_positions(old: &[char], new: &[char]) -> usize {
    let common = old.len().min(new.len());
    let differing = old.iter().zip(new).filter(|(a, b)| a != b).count();
    differing + old.len().max(new.len()) - common
}

/// The user name, or the name reversed, anywhere in the password, ignoring case.
fn holds_name(password: &[char], name: &str) -> bool {
    let name: Vec<char> = name.to_lowercase().chars().collect();
    if name.len() < SHORTEST_NAME_CHECKED {
        return false;
    }
    // Room for the longest lower-casing (one character can become three),
    // so the buffer never moves and leaves an unwiped copy behind.
    let mut lowered = Zeroizing::new(Vec::with_capacity(password.len() * 3));
    lowered.extend(password.iter().flat_map(|c| c.to_lowercase()));
    let password = &lowered[..];
    let reversed: Vec<char> = name.iter().rev().copied().collect();
    password
        .windows(name.len())
        .any(|window| window == name.as_slice() || window == reversed.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(text: &str) -> Password {
        Password::new(text.as_bytes().to_vec()).unwrap()
    }

    fn alice() -> UserName {
        UserName::parse("alice").unwrap()
    }

    fn check(new: &str, old: Option<&str>) -> Vec<Problem> {
        let old = old.map(pw);
        problems(&PolicyConfig::default(), &alice(), &pw(new), old.as_ref())
    }

    #[test]
    fn a_good_password_breaks_nothing() {
        assert_eq!(check("Kx9#mQ2v", Some("Old#Pass1")), vec![]);
    }

    #[test]
    fn length_counts_characters_and_accepts_the_boundary() {
        assert_eq!(
            check("Kx9#mQ2", None),
            [Problem::TooShort { min: 8, got: 7 }]
        );
        assert_eq!(check("Kx9#mQ2v", None), []);
        // Eight characters, eleven bytes.
        assert_eq!(check("Kx9#mQ2é", None), []);
        assert_eq!(
            check("Kx9#mQé", None),
            [Problem::TooShort { min: 8, got: 7 }]
        );
    }

    #[test]
    fn classes_are_counted_with_non_ascii_letters_as_letters() {
        assert_eq!(
            check("kx9mq2vzz", None),
            [Problem::TooFewClasses { min: 3, got: 2 }]
        );
        assert_eq!(check("kx9mq2vz#", None), []);
        assert_eq!(check("ÉCOLE#école", None), []);
    }

    #[test]
    fn changed_positions_need_the_old_password_and_count_extra_length() {
        assert_eq!(
            check("Old#Pass1xy", Some("Old#Pass1")),
            [Problem::TooFewChanged { min: 8, got: 2 }]
        );
        assert_eq!(check("Old#Pass1xy", None), []);
        // The boundary: exactly eight positions differ.
        assert_eq!(check("Xyz!Qrt2", Some("Old#Pass")), []);
        assert_eq!(
            check("Xyz!Qrts", Some("Old#Pass")),
            [Problem::TooFewChanged { min: 8, got: 7 }]
        );
    }

    #[test]
    fn the_user_name_is_found_forwards_backwards_and_in_any_case() {
        for holding in ["xALICE#123", "9#ecila-Kx", "Alice2024!"] {
            assert_eq!(check(holding, None), [Problem::HoldsUserName], "{holding}");
        }
        let short = UserName::parse("al").unwrap();
        let policy = PolicyConfig::default();
        assert_eq!(problems(&policy, &short, &pw("al#Kx9mQ2v"), None), []);
    }

    #[test]
    fn every_broken_rule_is_reported_at_once() {
        let found = check("alice", Some("alice"));
        assert_eq!(
            found,
            [
                Problem::TooShort { min: 8, got: 5 },
                Problem::TooFewClasses { min: 3, got: 1 },
                Problem::TooFewChanged { min: 8, got: 0 },
                Problem::HoldsUserName,
            ]
        );
        assert_eq!(
            found[2].to_string(),
            "the new password must differ from the old one in at least 8 positions; it differs in 0"
        );
    }

    #[test]
    fn zero_turns_a_rule_off() {
        let off = PolicyConfig {
            min_length: 0,
            min_classes: 0,
            min_changed_chars: 0,
            reject_username: false,
            ..PolicyConfig::default()
        };
        assert_eq!(
            problems(&off, &alice(), &pw("alice"), Some(&pw("alice"))),
            []
        );
    }
}
