//! Checking a password for the application. The record is the reference, but
//! Linux has the last word on an account it changed or removed since the last
//! `sync`: the drift rules pick the hash to check, so `verify` never accepts a
//! password that Linux has locked, replaced or deleted, and accepts a password
//! set in Linux at once, before any `sync` has adopted it.
//!
//! Around the check, [`attempt`] applies what a login through PAM meets:
//! pam_faillock's lockout before and after it (`lockout`), and pam_unix's
//! account rules on shadow's aging fields after it ([`expiry`]), so a
//! password that has expired, or an account Linux has expired, is refused
//! here as it is at a login.
//!
//! Some accounts `verify` can never accept: one credsync doesn't manage, one
//! locked in Linux, one without a password (`passwd -d`; pam_unix with
//! `nullok` would let anyone in, credsync never does). A wrong guess at
//! those is not counted in the tally (six guesses by the application's
//! service account must not lock root out of ssh), and the refusal takes as
//! long as an Argon2id check, so the time taken doesn't tell a managed user
//! from an unmanaged or unknown one.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::clock::Now;
use crate::error::Error;
use crate::lockout::{Locked, Lockout};
use crate::reconcile::{self, Drift};
use crate::secret::Password;
use crate::store::Store;
use crate::store::app_hash::{self, Argon2Cost};
use crate::system::crypt;
use crate::system::shadow::{LastChange, ShadowFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Right password, but it must be changed before it is used.
    MustChange,
    Rejected,
}

/// Checks `password` for `user`. An adopted record (no Argon2id hash yet) is
/// checked with its crypt hash, and on success gets its Argon2id hash derived.
pub fn check(
    store: &mut Store,
    shadow: &ShadowFile,
    user: &UserName,
    password: &Password,
    cost: &Argon2Cost,
) -> Result<Verdict, Error> {
    let Some(record) = store.record(user)? else {
        return Ok(Verdict::Rejected);
    };
    let entry = shadow.entry(user);
    let drift = reconcile::drift(store, &record, entry.as_ref())?;
    // Linux's lock has the last word, but after a rollback the record's does.
    let locked = match drift {
        Drift::RecordNewer => record.locked,
        _ => entry.as_ref().is_some_and(|e| e.hash.is_locked()),
    };
    if locked {
        return Ok(Verdict::Rejected);
    }
    let (matches, must_change) = match drift {
        Drift::NoAccount => (false, false),
        // Only when the interrupted change could not be finished (the caller
        // tries first): once shadow holds the intent's hash the change is
        // made, and the intent's own Argon2id hash is the password's.
        Drift::Pending => match store.intents()?.into_iter().find(|i| &i.user == user) {
            Some(intent) if entry.as_ref().is_some_and(|e| e.hash == intent.new_linux) => (
                match &intent.app_hash {
                    Some(phc) => app_hash::verify(password, phc),
                    None => crypt::verify(password, &intent.new_linux),
                },
                intent.must_change,
            ),
            _ => (false, false),
        },
        Drift::LinuxNewer => {
            let entry = entry.expect("drift is judged against an entry");
            (
                crypt::verify(password, &entry.hash),
                entry.last_change == LastChange::MustChange,
            )
        }
        Drift::InSync | Drift::RecordNewer => match &record.app_hash {
            Some(phc) => (app_hash::verify(password, phc), record.must_change),
            None if crypt::verify(password, &record.linux_hash) => {
                let phc = cost.hash(password)?;
                store.rederive(user, &record.linux_hash, &phc)?;
                (true, record.must_change)
            }
            None => (false, record.must_change),
        },
    };
    Ok(match (matches, must_change) {
        (false, _) => Verdict::Rejected,
        (true, true) => Verdict::MustChange,
        (true, false) => Verdict::Accepted,
    })
}

/// What `verify` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Right password, but it must be changed before it is used.
    MustChange,
    /// Right password, but older than shadow's maximum age (field 5).
    Expired,
    /// Right password, but Linux has expired the account (field 8, or the
    /// inactivity days of field 7 are over): pam_unix refuses the login.
    AccountExpired,
    Rejected,
    /// Locked out after repeated failures; the password was not looked at.
    Locked(Locked),
    /// An account `verify` can never accept (not managed, locked in Linux);
    /// the guess was not counted.
    NeverAccepted,
    /// The account has no password (`passwd -d`); never accepted.
    NoPassword,
}

/// Why `user` can't be accepted whatever the password, if so.
pub fn never_accepted(
    store: &Store,
    shadow: &ShadowFile,
    user: &UserName,
) -> Result<Option<Outcome>, Error> {
    let Some(record) = store.record(user)? else {
        return Ok(Some(Outcome::NeverAccepted));
    };
    let entry = shadow.entry(user);
    let drift = reconcile::drift(store, &record, entry.as_ref())?;
    let (locked, no_password) = match (drift, &entry) {
        (Drift::NoAccount, _) | (_, None) => return Ok(Some(Outcome::NeverAccepted)),
        // After a rollback the record is the reference; otherwise Linux.
        (Drift::RecordNewer, _) => (record.locked, record.linux_hash.is_empty()),
        (_, Some(entry)) => (entry.hash.is_locked(), entry.hash.is_empty()),
    };
    Ok(if locked {
        Some(Outcome::NeverAccepted)
    } else if no_password {
        Some(Outcome::NoPassword)
    } else {
        None
    })
}

/// One `verify` of `password` for `user`, as a PAM login with pam_faillock
/// and pam_unix would go: refused without looking at the password while the
/// user is locked out; a wrong password is counted in the tally, a right one
/// clears it; then shadow's aging fields decide whether the right password
/// may be used. `now` dates the tally's records and gives today's day.
pub fn attempt(
    store: &mut Store,
    shadow: &ShadowFile,
    user: &UserName,
    password: &Password,
    cost: &Argon2Cost,
    lockout: &Lockout,
    now: Now,
) -> Result<Outcome, Error> {
    if let Some(never) = never_accepted(store, shadow, user)? {
        // As long as a real check, for the time not to tell.
        let _ = cost.hash(password);
        return Ok(never);
    }
    if let Some(locked) = lockout.locked(now)? {
        return Ok(Outcome::Locked(locked));
    }
    let verdict = check(store, shadow, user, password, cost)?;
    if verdict == Verdict::Rejected {
        if lockout.record_failure(now)? {
            lockout.log_lock();
        }
        return Ok(Outcome::Rejected);
    }
    lockout.record_success(now)?;
    Ok(match (verdict, expiry(shadow, user, now.day)) {
        (_, Some(Expiry::AccountExpired)) => Outcome::AccountExpired,
        (Verdict::MustChange, _) | (_, Some(Expiry::MustChange)) => Outcome::MustChange,
        (_, Some(Expiry::PasswordExpired { .. })) => Outcome::Expired,
        _ => Outcome::Accepted,
    })
}

/// Where a password stands under shadow's aging fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Field 8 has been reached, or the password expired longer ago than the
    /// inactivity days of field 7: pam_unix refuses every login.
    AccountExpired,
    /// Field 3 is 0 (`passwd -e`, `--expire`).
    MustChange,
    /// Older than field 5 allows; `days_left` is negative (`None` when field
    /// 3 is empty).
    PasswordExpired { days_left: Option<i64> },
    /// Usable; `days_left` until it expires (0: the last day), `None` when it
    /// never does. `warning`: inside field 6's warning days.
    Valid {
        days_left: Option<i64>,
        warning: bool,
    },
}

/// pam_unix's `check_shadow_expiry` as Linux-PAM 1.5.2 has it (Debian 12),
/// for `user`'s shadow entry on UTC day `today`; `None` without an entry.
/// An empty numeric field reads as -1, as glibc gives it to pam_unix, so a
/// maximum age with an empty field 3 counts as expired, as pam_unix 1.5.2
/// judges it. The password expires the day *after* field 3 + field 5.
pub fn expiry(shadow: &ShadowFile, user: &UserName, today: i64) -> Option<Expiry> {
    let entry = shadow.entry(user)?;
    let aging = shadow.aging(user).unwrap_or_default();
    let unset = -1;
    let expire = shadow.account_expires(user).unwrap_or(unset);
    let inactive = shadow.inactive_days(user).unwrap_or(unset);
    let max = aging.max.unwrap_or(unset);
    let warn = aging.warn.unwrap_or(unset);
    let last = match entry.last_change {
        LastChange::MustChange => 0,
        LastChange::Unset => unset,
        LastChange::Day(day) => day,
    };
    let days_left = (last > 0 && max != unset).then(|| last.saturating_add(max) - today);

    if expire != unset && today >= expire {
        return Some(Expiry::AccountExpired);
    }
    if last == 0 {
        return Some(Expiry::MustChange);
    }
    if today < last {
        return Some(Expiry::Valid {
            days_left,
            warning: false,
        });
    }
    let passed = today - last;
    if max != unset
        && inactive != unset
        && passed > max
        && passed > inactive
        && passed > max.saturating_add(inactive)
    {
        return Some(Expiry::AccountExpired);
    }
    if max != unset && passed > max {
        return Some(Expiry::PasswordExpired { days_left });
    }
    Some(Expiry::Valid {
        days_left,
        warning: max != unset && warn != unset && passed > max - warn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: i64 = 20_783; // 2026-11-26

    /// `user`'s expiry with shadow fields 3 to 8 as given.
    fn expiry_of(fields: &str) -> Option<Expiry> {
        let shadow = ShadowFile::parse(format!("alice:$6$salt$hash:{fields}:\n").into_bytes());
        expiry(&shadow, &UserName::parse("alice").unwrap(), TODAY)
    }

    fn valid(days_left: Option<i64>, warning: bool) -> Option<Expiry> {
        Some(Expiry::Valid { days_left, warning })
    }

    fn day(offset: i64) -> i64 {
        TODAY + offset
    }

    #[test]
    fn a_password_expires_the_day_after_its_maximum_age() {
        // T - D == M: the last day, with pam_unix's "expire in 0 days".
        assert_eq!(
            expiry_of(&format!("{}:1:60:7::", day(-60))),
            valid(Some(0), true)
        );
        assert_eq!(
            expiry_of(&format!("{}:1:60:7::", day(-61))),
            Some(Expiry::PasswordExpired {
                days_left: Some(-1)
            })
        );
        assert_eq!(
            expiry_of(&format!("{}:1:60:7::", day(-10))),
            valid(Some(50), false)
        );
    }

    #[test]
    fn the_warning_starts_inside_the_warning_days() {
        // pam_unix warns with 6 days left for warn 7, not with 7.
        assert_eq!(
            expiry_of(&format!("{}:0:60:7::", day(-54))),
            valid(Some(6), true)
        );
        assert_eq!(
            expiry_of(&format!("{}:0:60:7::", day(-53))),
            valid(Some(7), false)
        );
        assert_eq!(
            expiry_of(&format!("{}:0:60:::", day(-59))),
            valid(Some(1), false)
        );
    }

    #[test]
    fn without_a_maximum_age_a_password_never_expires() {
        assert_eq!(expiry_of("19000:0::7::"), valid(None, false));
        assert_eq!(
            expiry_of("19000:0:99999:7::"),
            valid(Some(99999 + 19000 - TODAY), false)
        );
        assert_eq!(expiry_of(":::::"), valid(None, false));
    }

    #[test]
    fn field_three_zero_must_change_and_an_empty_one_counts_as_long_ago() {
        assert_eq!(expiry_of("0:0:60:7::"), Some(Expiry::MustChange));
        assert_eq!(expiry_of("0:0::::"), Some(Expiry::MustChange));
        // pam_unix 1.5.2 reads an empty field 3 as -1: expired with a maximum.
        assert_eq!(
            expiry_of(":0:60:7::"),
            Some(Expiry::PasswordExpired { days_left: None })
        );
        assert_eq!(expiry_of("-1:0:60:7::"), expiry_of(":0:60:7::"));
    }

    #[test]
    fn a_change_in_the_future_is_valid() {
        assert_eq!(
            expiry_of(&format!("{}:0:60:7::", day(5))),
            valid(Some(65), false)
        );
    }

    #[test]
    fn inactivity_and_the_expiry_date_expire_the_account() {
        assert_eq!(
            expiry_of(&format!("{}:0:60:7:0:", day(-61))),
            Some(Expiry::AccountExpired)
        );
        assert_eq!(
            expiry_of(&format!("{}:0:60:7:1:", day(-61))),
            Some(Expiry::PasswordExpired {
                days_left: Some(-1)
            })
        );
        assert_eq!(
            expiry_of(&format!("{}:0:60:7:1:", day(-62))),
            Some(Expiry::AccountExpired)
        );
        assert_eq!(
            expiry_of(&format!("{}:0:60:7::{}", day(-10), TODAY)),
            Some(Expiry::AccountExpired)
        );
        assert_eq!(
            expiry_of(&format!("{}:0:60:7::{}", day(-10), day(1))),
            valid(Some(50), false)
        );
        // The expiry date comes before a forced change.
        assert_eq!(
            expiry_of(&format!("0:0:60:7::{}", day(-1))),
            Some(Expiry::AccountExpired)
        );
    }

    #[test]
    fn no_entry_no_expiry() {
        let shadow = ShadowFile::parse(b"bob:*:19000:0:60:7:::\n".to_vec());
        assert_eq!(
            expiry(&shadow, &UserName::parse("alice").unwrap(), TODAY),
            None
        );
    }
}
