//! What `status` knows of each managed account: the record, its drift, shadow's
//! aging and the failure tally, as one line with the fields of `status --json`
//! and of the service's `GetStatus`.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::clock::{self, Now};
use crate::config::Config;
use crate::error::Error;
use crate::lockout::{self, LockoutError, Lockouts};
use crate::reconcile::{self, Drift};
use crate::store::{Record, Store};
use crate::system::faillock::Assessment;
use crate::system::{Paths, shadow};
use crate::verify::{self, Expiry};
use serde::Serialize;

/// One managed account as `status` shows it.
pub struct Entry {
    pub line: Line,
    pub standing: Standing,
}

/// What `status` shows of a managed user beyond the record.
pub struct Standing {
    /// From shadow's aging fields; `None` without a shadow entry.
    pub expiry: Option<Expiry>,
    /// The failure tally; `None` when failures are not counted (the lockout
    /// is off, or the name has no account).
    pub tally: Result<Option<Assessment>, LockoutError>,
}

/// The fields of one `status --json` row (README, "status").
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub user: String,
    pub state: &'static str,
    pub changed_at: String,
    pub changed_at_unix: i64,
    pub changed_by: String,
    /// The login uid of the human who made the change; null when unknown.
    pub changed_by_auid: Option<u32>,
    pub source: &'static str,
    pub session_epoch: i64,
    pub must_change: bool,
    /// Locked in Linux (`passwd -l`): `verify` refuses every password.
    pub account_locked: bool,
    /// No password in Linux (`passwd -d`): `verify` refuses every password.
    pub no_password: bool,
    /// The record adopted a Linux change; its Argon2id hash is derived at the next `verify`.
    pub app_hash_pending: bool,
    /// By shadow's aging fields: `valid`, `expiring` (inside the warning
    /// days), `expired`, `must-change`, `account-expired`; null without a
    /// shadow entry.
    pub password_state: Option<&'static str>,
    /// Days until the password expires (0: its last day; negative: expired
    /// that long ago); null when it never does.
    pub password_expires_in_days: Option<i64>,
    /// Failures that count towards the lockout; null when none are counted.
    pub failed_logins: Option<u32>,
    pub locked: bool,
    /// The last second of a timed lock; null unless locked for a time.
    pub locked_until: Option<String>,
    pub locked_until_unix: Option<i64>,
}

/// Every managed account, or only `only`: an `only` that is neither managed
/// nor in shadow is an unknown user. An empty list means nobody (or not
/// `only`) is managed yet.
pub fn survey(
    paths: &Paths,
    config: &Config,
    store_owner: u32,
    only: Option<&UserName>,
    now: Now,
) -> Result<Vec<Entry>, Error> {
    let store = Store::open_existing(&paths.store_dir(), store_owner)?;
    let shadow = shadow::read_unlocked(paths)?;
    let findings = reconcile::survey(store.as_ref(), &shadow, only)?;
    if let Some(target) = only
        && findings.is_empty()
        && shadow.entry(target).is_none()
    {
        return Err(Error::UnknownUser(target.clone()));
    }
    let lockouts = Lockouts::load(paths, &config.policy.lockout, &config.pam.service)?;
    Ok(findings
        .iter()
        .map(|(record, drift)| {
            let standing = Standing {
                expiry: verify::expiry(&shadow, &record.user, now.day),
                tally: lockouts.user(&record.user).assess(now),
            };
            Entry {
                line: line(record, *drift, &standing),
                standing,
            }
        })
        .collect())
}

fn line(r: &Record, drift: Drift, standing: &Standing) -> Line {
    let tally = standing.tally.as_ref().ok().and_then(Option::as_ref);
    let lock = tally.and_then(|a| a.lock);
    let until = lock.and_then(lockout::until_text);
    Line {
        user: r.user.to_string(),
        state: shown_state(r, drift),
        changed_at: clock::utc_text(r.changed_at),
        changed_at_unix: r.changed_at,
        changed_by: r.changed_by.clone(),
        changed_by_auid: r.changed_by_auid,
        source: r.source.as_str(),
        session_epoch: r.session_epoch,
        must_change: r.must_change,
        account_locked: r.locked,
        no_password: r.linux_hash.is_empty(),
        app_hash_pending: r.app_hash.is_none(),
        password_state: standing.expiry.map(password_state),
        password_expires_in_days: standing.expiry.and_then(days_left),
        failed_logins: tally.map(|a| a.failures),
        locked: lock.is_some(),
        locked_until_unix: until.as_ref().map(|(_, unix)| *unix),
        locked_until: until.map(|(text, _)| text),
    }
}

/// The STATE column: the drift, or for an account in sync what Linux holds
/// around the password: `locked` (`passwd -l`) or `no-password` (`passwd -d`).
fn shown_state(record: &Record, drift: Drift) -> &'static str {
    match drift {
        Drift::InSync if record.locked => "locked",
        Drift::InSync if record.linux_hash.is_empty() => "no-password",
        other => other.as_str(),
    }
}

fn password_state(expiry: Expiry) -> &'static str {
    match expiry {
        Expiry::Valid { warning: false, .. } => "valid",
        Expiry::Valid { warning: true, .. } => "expiring",
        Expiry::PasswordExpired { .. } => "expired",
        Expiry::MustChange => "must-change",
        Expiry::AccountExpired => "account-expired",
    }
}

fn days_left(expiry: Expiry) -> Option<i64> {
    match expiry {
        Expiry::Valid { days_left, .. } | Expiry::PasswordExpired { days_left } => days_left,
        Expiry::MustChange | Expiry::AccountExpired => None,
    }
}
