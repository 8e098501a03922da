//! What the commands print: a table for people, JSON (`--json`) for programs.
//! Output goes through `out` and `warn`, which never panic: a reader that went
//! away (a closed pipe) must not turn a finished change into a crash.
#![forbid(unsafe_code)]

use super::Context;
use credsync_core::account::UserName;
use credsync_core::clock;
use credsync_core::lockout::{self, LockoutError};
use credsync_core::reconcile::Drift;
use credsync_core::store::Record;
use credsync_core::system::faillock::{Assessment, Lock};
use credsync_core::verify::Expiry;
use serde::Serialize;
use std::io::Write;

/// One line on stdout; a closed stdout is ignored.
pub fn out(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// One line on stderr, prefixed with the program's name.
pub fn warn(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "credsync: {text}");
}

/// A line for people, left out of `--json` output.
pub fn say(ctx: &Context, text: &str) {
    if !ctx.json {
        out(text);
    }
}

fn json(value: &impl Serialize) {
    out(&serde_json::to_string(value).expect("plain data serialises"));
}

pub fn changed(ctx: &Context, users: &[UserName]) {
    if ctx.json {
        let users: Vec<&str> = users.iter().map(UserName::as_str).collect();
        json(&serde_json::json!({ "changed": users }));
    }
}

#[derive(Serialize)]
struct SyncLine<'a> {
    user: &'a str,
    state: &'static str,
    action: &'static str,
}

fn action(drift: Drift, dry_run: bool) -> &'static str {
    match (drift, dry_run) {
        (Drift::InSync, _) => "none",
        (Drift::LinuxNewer, false) => "adopted the password set in Linux",
        (Drift::LinuxNewer, true) => "would adopt the password set in Linux",
        (Drift::RecordNewer, false) => "restored the record's password into /etc/shadow",
        (Drift::RecordNewer, true) => "would restore the record's password into /etc/shadow",
        (Drift::NoAccount, _) => "none: the Linux account does not exist",
        // `sync` finishes interrupted changes before it looks; only a dry run sees one.
        (Drift::Pending, _) => "would finish an interrupted change",
    }
}

pub fn sync(ctx: &Context, findings: &[(Record, Drift)], dry_run: bool) {
    let lines: Vec<SyncLine<'_>> = findings
        .iter()
        .map(|(r, drift)| SyncLine {
            user: r.user.as_str(),
            state: drift.as_str(),
            action: action(*drift, dry_run),
        })
        .collect();
    if ctx.json {
        return json(&lines);
    }
    let drifted: Vec<&SyncLine<'_>> = lines
        .iter()
        .filter(|l| l.state != Drift::InSync.as_str())
        .collect();
    for line in &drifted {
        out(&format!("{}: {}: {}", line.user, line.state, line.action));
    }
    for (record, _) in findings.iter().filter(|(_, d)| *d == Drift::NoAccount) {
        warn(&format!(
            "warning: '{}' is managed but has no Linux account",
            record.user
        ));
    }
    out(&format!(
        "{} managed account(s), {} in sync, {} drifted",
        lines.len(),
        lines.len() - drifted.len(),
        drifted.len()
    ));
}

/// What `status` shows of a managed user beyond the record.
pub struct Standing {
    /// From shadow's aging fields; `None` without a shadow entry.
    pub expiry: Option<Expiry>,
    /// The failure tally; `None` when failures are not counted (the lockout
    /// is off, or the name has no account).
    pub tally: Result<Option<Assessment>, LockoutError>,
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

#[derive(Serialize)]
struct StatusLine<'a> {
    user: &'a str,
    state: &'static str,
    changed_at: String,
    changed_at_unix: i64,
    changed_by: &'a str,
    /// The login uid of the human who made the change; null when unknown.
    changed_by_auid: Option<u32>,
    source: &'static str,
    session_epoch: i64,
    must_change: bool,
    /// Locked in Linux (`passwd -l`): `verify` refuses every password.
    account_locked: bool,
    /// No password in Linux (`passwd -d`): `verify` refuses every password.
    no_password: bool,
    /// The record adopted a Linux change; its Argon2id hash is derived at the next `verify`.
    app_hash_pending: bool,
    /// By shadow's aging fields: `valid`, `expiring` (inside the warning
    /// days), `expired`, `must-change`, `account-expired`; null without a
    /// shadow entry.
    password_state: Option<&'static str>,
    /// Days until the password expires (0: its last day; negative: expired
    /// that long ago); null when it never does.
    password_expires_in_days: Option<i64>,
    /// Failures that count towards the lockout; null when none are counted.
    failed_logins: Option<u32>,
    locked: bool,
    /// The last second of a timed lock; null unless locked for a time.
    locked_until: Option<String>,
    locked_until_unix: Option<i64>,
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

/// The EXPIRES column.
fn expires_text(expiry: Option<Expiry>) -> String {
    match expiry {
        None => "-".into(),
        Some(Expiry::Valid {
            days_left: None, ..
        }) => "never".into(),
        Some(Expiry::Valid {
            days_left: Some(0), ..
        }) => "today".into(),
        Some(Expiry::Valid {
            days_left: Some(1), ..
        }) => "in 1 day".into(),
        Some(Expiry::Valid {
            days_left: Some(n), ..
        }) => format!("in {n} days"),
        Some(Expiry::PasswordExpired { .. }) => "expired".into(),
        Some(Expiry::MustChange) => "must change".into(),
        Some(Expiry::AccountExpired) => "account expired".into(),
    }
}

/// The LOCKOUT column.
fn lockout_text(tally: &Result<Option<Assessment>, LockoutError>) -> String {
    match tally {
        Err(_) => "?".into(),
        Ok(None) => "-".into(),
        Ok(Some(a)) => match a.lock {
            Some(lock @ Lock::Until(_)) => format!(
                "locked until {}",
                lockout::until_text(lock)
                    .map(|(text, _)| text)
                    .unwrap_or_default()
            ),
            Some(Lock::UntilReset) => "locked until recovered".into(),
            None if a.failures == 1 => "1 failure".into(),
            None => format!("{} failures", a.failures),
        },
    }
}

pub fn status(
    ctx: &Context,
    findings: &[(Record, Drift)],
    standings: &[Standing],
    asked: Option<&UserName>,
) {
    let lines: Vec<StatusLine<'_>> = findings
        .iter()
        .zip(standings)
        .map(|((r, state), standing)| {
            let tally = match &standing.tally {
                Ok(tally) => tally.as_ref(),
                Err(e) => {
                    warn(&format!("warning: {}: {e}", r.user));
                    None
                }
            };
            let lock = tally.and_then(|a| a.lock);
            let until = lock.and_then(lockout::until_text);
            StatusLine {
                user: r.user.as_str(),
                state: shown_state(r, *state),
                changed_at: clock::utc_text(r.changed_at),
                changed_at_unix: r.changed_at,
                changed_by: &r.changed_by,
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
        })
        .collect();
    if ctx.json {
        return json(&lines);
    }
    if lines.is_empty() {
        match asked {
            Some(user) => out(&format!(
                "{user}: not managed by credsync (no change made through it yet)"
            )),
            None => out("no account is managed by credsync yet"),
        }
        return;
    }
    let row = |user: &str,
               state: &str,
               changed: &str,
               source: &str,
               by: &str,
               epoch: &str,
               must: &str,
               expires: &str,
               lockout: &str| {
        out(&format!(
            "{user:<20} {state:<13} {changed:<21} {source:<8} {by:<12} {epoch:>5} {must:<11} {expires:<15} {lockout}"
        ))
    };
    row(
        "USER",
        "STATE",
        "CHANGED",
        "SOURCE",
        "BY",
        "EPOCH",
        "MUST-CHANGE",
        "EXPIRES",
        "LOCKOUT",
    );
    for (l, standing) in lines.iter().zip(standings) {
        let must = if l.must_change { "yes" } else { "no" };
        row(
            l.user,
            l.state,
            &l.changed_at,
            l.source,
            l.changed_by,
            &l.session_epoch.to_string(),
            must,
            &expires_text(standing.expiry),
            &lockout_text(&standing.tally),
        );
    }
}
