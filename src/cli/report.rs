//! What the commands print: a table for people, JSON (`--json`) for programs.
//! Output goes through `out` and `warn`, which never panic: a reader that went
//! away (a closed pipe) must not turn a finished change into a crash.
#![forbid(unsafe_code)]

use super::Context;
use credsync_core::account::UserName;
use credsync_core::lockout::{self, LockoutError};
use credsync_core::reconcile::Drift;
use credsync_core::status;
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

pub fn status(ctx: &Context, entries: &[status::Entry], asked: Option<&UserName>) {
    for entry in entries {
        if let Err(e) = &entry.standing.tally {
            warn(&format!("warning: {}: {e}", entry.line.user));
        }
    }
    let lines: Vec<&status::Line> = entries.iter().map(|e| &e.line).collect();
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
    for (l, standing) in lines.iter().zip(entries.iter().map(|e| &e.standing)) {
        let must = if l.must_change { "yes" } else { "no" };
        row(
            &l.user,
            l.state,
            &l.changed_at,
            l.source,
            &l.changed_by,
            &l.session_epoch.to_string(),
            must,
            &expires_text(standing.expiry),
            &lockout_text(&standing.tally),
        );
    }
}
