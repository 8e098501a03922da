//! What the commands print: a table for people, JSON (`--json`) for programs.
#![forbid(unsafe_code)]

use super::Context;
use crate::account::UserName;
use crate::clock;
use crate::reconcile::Drift;
use crate::store::Record;
use serde::Serialize;

pub fn changed(ctx: &Context, users: &[UserName]) {
    if ctx.json {
        let users: Vec<&str> = users.iter().map(UserName::as_str).collect();
        println!("{}", serde_json::json!({ "changed": users }));
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
        (Drift::Pending, false) => "finished an interrupted change",
        (Drift::Pending, true) => "would finish an interrupted change",
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
        println!(
            "{}",
            serde_json::to_string(&lines).expect("plain data serialises")
        );
        return;
    }
    let drifted = lines
        .iter()
        .filter(|l| l.state != Drift::InSync.as_str())
        .count();
    for line in lines.iter().filter(|l| l.state != Drift::InSync.as_str()) {
        println!("{}: {}: {}", line.user, line.state, line.action);
    }
    for (record, _) in findings.iter().filter(|(_, d)| *d == Drift::NoAccount) {
        eprintln!(
            "credsync: warning: '{}' is managed but has no Linux account",
            record.user
        );
    }
    println!(
        "{} managed account(s), {} in sync, {} drifted",
        lines.len(),
        lines.len() - drifted,
        drifted
    );
}

#[derive(Serialize)]
struct StatusLine<'a> {
    user: &'a str,
    state: &'static str,
    changed_at: String,
    changed_at_unix: i64,
    changed_by: &'a str,
    source: &'static str,
    session_epoch: i64,
    must_change: bool,
    /// The record adopted a Linux change; its Argon2id hash is derived at the next `verify`.
    app_hash_pending: bool,
}

pub fn status(ctx: &Context, findings: &[(Record, Drift)], asked: Option<&UserName>) {
    let lines: Vec<StatusLine<'_>> = findings
        .iter()
        .map(|(r, state)| StatusLine {
            user: r.user.as_str(),
            state: state.as_str(),
            changed_at: clock::utc_text(r.changed_at),
            changed_at_unix: r.changed_at,
            changed_by: &r.changed_by,
            source: r.source.as_str(),
            session_epoch: r.session_epoch,
            must_change: r.must_change,
            app_hash_pending: r.app_hash.is_none(),
        })
        .collect();
    if ctx.json {
        println!(
            "{}",
            serde_json::to_string(&lines).expect("plain data serialises")
        );
        return;
    }
    if lines.is_empty() {
        match asked {
            Some(user) => {
                println!("{user}: not managed by credsync (no change made through it yet)")
            }
            None => println!("no account is managed by credsync yet"),
        }
        return;
    }
    println!(
        "{:<20} {:<13} {:<21} {:<8} {:<12} {:>5} MUST-CHANGE",
        "USER", "STATE", "CHANGED", "SOURCE", "BY", "EPOCH"
    );
    for l in &lines {
        println!(
            "{:<20} {:<13} {:<21} {:<8} {:<12} {:>5} {}",
            l.user,
            l.state,
            l.changed_at,
            l.source,
            l.changed_by,
            l.session_epoch,
            if l.must_change { "yes" } else { "no" }
        );
    }
}
