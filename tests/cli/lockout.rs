//! Lockout and expiry on throw-away roots: `verify` counts failures in
//! pam_faillock's tally (`var/run/faillock/USER` under the root, or the `dir`
//! of `etc/security/faillock.conf`), refuses a locked user with the time left
//! (exit 13) without looking at the password, and `recover` unlocks; a right
//! password that shadow's aging fields say has expired is exit 12, a forced
//! change still 11; `status` shows both.
//!
//! Every test writes its own config: the fixture's turns the lockout off.

use super::fixture::{Fixture, Root, today};
use std::fs;

const PASSWORD: &str = "Right#Pass1";
const WRONG: &str = "Wrong#Pass1";

/// Exit codes (README "Exit codes").
const DENIED: i32 = 1;
const MUST_CHANGE: i32 = 11;
const EXPIRED: i32 = 12;
const LOCKED: i32 = 13;

/// Fast settings, the password policy off, and `lockout` as
/// `[policy.lockout]` (`key = value` lines).
fn config(lockout: &str) -> String {
    format!(
        "[hash]\nmethod = \"sha512\"\nrounds = 1000\n\
         [argon2]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n\
         [verify]\nfailure_delay_ms = 0\n\
         [locks]\ntimeout_secs = 1\n\
         [policy]\nmin_length = 0\nmin_classes = 0\nmin_changed_chars = 0\n\
         reject_username = false\nhistory = 0\nmin_age_days = 0\nmax_age_days = 0\n\
         warn_days = 0\n\
         [policy.lockout]\n{lockout}\n"
    )
}

/// Locks after 3 failures within 15 minutes, for 10 minutes.
fn three_strikes() -> String {
    config("failures = 3\nwindow_secs = 900\nlock_secs = 600")
}

/// alice (uid 1000), managed by credsync with [`PASSWORD`], under `config`.
fn alice_with(config: &str) -> Root {
    let root = Fixture::new()
        .user("alice", PASSWORD)
        .config(config)
        .build();
    root.run(&["recover", "alice", "--stdin"], &format!("{PASSWORD}\n"))
        .success();
    root
}

fn faillock_conf(root: &Root, text: &str) {
    fs::create_dir_all(root.file("etc/security")).unwrap();
    fs::write(root.file("etc/security/faillock.conf"), text).unwrap();
}

/// The number of records in `user`'s tally at `dir` (under the root).
fn records(root: &Root, dir: &str, user: &str) -> usize {
    let bytes = fs::read(root.file(&format!("{dir}/{user}"))).unwrap_or_default();
    assert_eq!(bytes.len() % 64, 0, "not whole 64-byte records");
    bytes.len() / 64
}

fn tally_records(root: &Root) -> usize {
    records(root, "var/run/faillock", "alice")
}

/// `verify alice` with `password`: exit code and stderr.
fn verify(root: &Root, password: &str) -> (i32, String) {
    let out = root.run(&["verify", "alice", "--stdin"], &format!("{password}\n"));
    let out = out.get_output();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replaces fields `n` (1-based) of `user`'s shadow line, as `chage` would.
fn set_fields(root: &Root, user: &str, fields: &[(usize, String)]) {
    let text: String = root
        .shadow()
        .lines()
        .map(|line| {
            let mut parts: Vec<String> = line.split(':').map(str::to_owned).collect();
            if parts[0] == user {
                for (n, value) in fields {
                    parts[n - 1] = value.clone();
                }
            }
            parts.join(":") + "\n"
        })
        .collect();
    root.set_shadow(&text);
}

/// Last change `days_ago`, maximum age `max` days, warning `warn` days.
fn aged(root: &Root, days_ago: i64, max: &str, warn: &str) {
    set_fields(
        root,
        "alice",
        &[
            (3, (today() - days_ago).to_string()),
            (5, max.to_owned()),
            (6, warn.to_owned()),
        ],
    );
}

fn status_of(root: &Root) -> serde_json::Value {
    root.status_json()
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["user"] == "alice")
        .expect("alice in status")
        .clone()
}

// ---- the lockout ---------------------------------------------------------------------

#[test]
fn the_configured_count_of_failures_locks_with_the_time_left() {
    let root = alice_with(&three_strikes());
    for n in 1..=3 {
        let (code, stderr) = verify(&root, WRONG);
        assert_eq!(code, DENIED, "failure {n}: {stderr}");
        assert_eq!(tally_records(&root), n);
    }
    // Locked: the right password is not even looked at.
    let (code, stderr) = verify(&root, PASSWORD);
    assert_eq!(code, LOCKED, "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "credsync: the account is locked after 3 failed logins; try again in 10 minutes"
    );
}

#[test]
fn failures_below_the_count_do_not_lock_and_a_success_clears_them() {
    let root = alice_with(&three_strikes());
    for _ in 0..2 {
        assert_eq!(verify(&root, WRONG).0, DENIED);
    }
    assert_eq!(verify(&root, PASSWORD).0, 0);
    assert_eq!(tally_records(&root), 0, "a success empties the tally");
    for _ in 0..2 {
        assert_eq!(verify(&root, WRONG).0, DENIED);
    }
    assert_eq!(verify(&root, PASSWORD).0, 0, "the count started again");
}

#[test]
fn a_wrong_password_while_locked_is_not_recorded() {
    let root = alice_with(&three_strikes());
    for _ in 0..3 {
        verify(&root, WRONG);
    }
    let before = fs::read(root.file("var/run/faillock/alice")).unwrap();
    for _ in 0..2 {
        assert_eq!(verify(&root, WRONG).0, LOCKED);
    }
    assert_eq!(
        fs::read(root.file("var/run/faillock/alice")).unwrap(),
        before,
        "pam_faillock records nothing while the user is locked"
    );
}

#[test]
fn recover_unlocks() {
    let root = alice_with(&three_strikes());
    for _ in 0..3 {
        verify(&root, WRONG);
    }
    assert_eq!(verify(&root, PASSWORD).0, LOCKED);
    root.run(&["recover", "alice", "--stdin"], "Another#Pass1\n")
        .success();
    assert_eq!(tally_records(&root), 0);
    assert_eq!(verify(&root, "Another#Pass1").0, 0);
}

#[test]
fn a_locked_user_cannot_change_their_own_password_but_root_can() {
    let root = alice_with(&three_strikes());
    for _ in 0..3 {
        verify(&root, WRONG);
    }
    let before = root.shadow();
    root.run_as(
        1000,
        &["passwd", "--stdin"],
        &format!("{PASSWORD}\nAnother#Pass1\n"),
    )
    .code(LOCKED)
    .stderr(predicates::str::contains(
        "the account is locked after 3 failed logins; try again in 10 minutes",
    ));
    assert_eq!(root.shadow(), before, "shadow changed");

    // (As uid 0 through `run_as`, which hands the root back to root.)
    root.run_as(0, &["passwd", "alice", "--stdin"], "Another#Pass1\n")
        .success();
}

#[test]
fn a_lock_without_end_lasts_until_recover() {
    let root = alice_with(&config("failures = 2\nwindow_secs = 900\nlock_secs = 0"));
    verify(&root, WRONG);
    verify(&root, WRONG);
    let (code, stderr) = verify(&root, PASSWORD);
    assert_eq!(code, LOCKED);
    assert!(
        stderr.contains(
            "the account is locked after 2 failed logins until an administrator recovers it"
        ),
        "{stderr}"
    );
}

#[test]
fn faillock_conf_keys_override_the_policy() {
    let root = alice_with(&three_strikes());
    faillock_conf(
        &root,
        "# the site's settings\ndeny = 2\nunlock_time = never\ndir = /var/lib/faillock\n",
    );
    verify(&root, WRONG);
    verify(&root, WRONG);
    let (code, stderr) = verify(&root, PASSWORD);
    assert_eq!(code, LOCKED, "deny = 2 did not win over failures = 3");
    assert!(
        stderr.contains("until an administrator recovers it"),
        "{stderr}"
    );
    assert_eq!(records(&root, "var/lib/faillock", "alice"), 2);
    assert!(!root.file("var/run/faillock/alice").exists());
}

#[test]
fn faillock_conf_turns_the_lockout_on_even_when_the_policy_is_off() {
    let root = alice_with(&config("failures = 0"));
    for _ in 0..5 {
        assert_eq!(verify(&root, WRONG).0, DENIED);
    }
    assert!(
        !root.file("var/run/faillock").exists(),
        "a tally was written with the lockout off"
    );
    faillock_conf(&root, "deny=1\n");
    verify(&root, WRONG);
    assert_eq!(verify(&root, PASSWORD).0, LOCKED);
}

#[test]
fn status_shows_the_failures_and_the_lock() {
    let root = alice_with(&three_strikes());
    let row = status_of(&root);
    assert_eq!(row["failed_logins"], 0);
    assert_eq!(row["locked"], false);
    assert_eq!(row["locked_until"], serde_json::Value::Null);

    verify(&root, WRONG);
    verify(&root, WRONG);
    assert_eq!(status_of(&root)["failed_logins"], 2);
    root.run(&["status"], "")
        .success()
        .stdout(predicates::str::contains("2 failures"));

    verify(&root, WRONG);
    let row = status_of(&root);
    assert_eq!(row["failed_logins"], 3);
    assert_eq!(row["locked"], true);
    let until = row["locked_until_unix"].as_i64().unwrap();
    let now = credsync_core::clock::Now::read().unix_secs;
    assert!(
        (now + 500..=now + 600).contains(&until),
        "locked until {until}, now {now}"
    );
    let text = row["locked_until"].as_str().unwrap().to_owned();
    root.run(&["status"], "")
        .success()
        .stdout(predicates::str::contains(format!("locked until {text}")));
    // The existing fields are still there.
    assert_eq!(row["state"], "in-sync");
    assert_eq!(row["source"], "recover");
}

// ---- expiry -------------------------------------------------------------------------------

#[test]
fn a_password_past_its_maximum_age_is_expired_and_the_last_day_is_not() {
    let root = alice_with(&config("failures = 0"));
    aged(&root, 60, "60", "7");
    assert_eq!(verify(&root, PASSWORD).0, 0, "today - last change == max");

    aged(&root, 61, "60", "7");
    let (code, stderr) = verify(&root, PASSWORD);
    assert_eq!(code, EXPIRED);
    assert!(stderr.contains("has expired"), "{stderr}");
    assert_eq!(
        verify(&root, WRONG).0,
        DENIED,
        "a wrong password stays wrong"
    );

    aged(&root, 61, "", "7");
    assert_eq!(verify(&root, PASSWORD).0, 0, "no maximum: never expires");
}

#[test]
fn a_forced_change_is_still_must_change() {
    let root = alice_with(&config("failures = 0"));
    root.run(
        &["recover", "alice", "--stdin", "--expire"],
        &format!("{PASSWORD}\n"),
    )
    .success();
    set_fields(&root, "alice", &[(5, "60".into())]);
    assert_eq!(root.shadow_field("alice", 3), "0");
    assert_eq!(verify(&root, PASSWORD).0, MUST_CHANGE);
}

#[test]
fn an_account_linux_has_expired_is_refused() {
    let root = alice_with(&config("failures = 0"));
    set_fields(&root, "alice", &[(8, today().to_string())]);
    let (code, stderr) = verify(&root, PASSWORD);
    assert_eq!(code, DENIED);
    assert!(stderr.contains("the account has expired"), "{stderr}");

    set_fields(&root, "alice", &[(8, (today() + 1).to_string())]);
    assert_eq!(verify(&root, PASSWORD).0, 0);
}

#[test]
fn an_expired_password_still_counts_as_a_right_one_for_the_lockout() {
    let root = alice_with(&three_strikes());
    aged(&root, 61, "60", "7");
    verify(&root, WRONG);
    verify(&root, WRONG);
    assert_eq!(verify(&root, PASSWORD).0, EXPIRED);
    assert_eq!(tally_records(&root), 0);
}

#[test]
fn status_shows_the_days_until_the_password_expires() {
    let root = alice_with(&config("failures = 0"));
    aged(&root, 50, "60", "7");
    let row = status_of(&root);
    assert_eq!(row["password_state"], "valid");
    assert_eq!(row["password_expires_in_days"], 10);
    assert_eq!(row["failed_logins"], serde_json::Value::Null, "lockout off");
    root.run(&["status"], "")
        .success()
        .stdout(predicates::str::contains("in 10 days"));

    aged(&root, 55, "60", "7");
    let row = status_of(&root);
    assert_eq!(row["password_state"], "expiring");
    assert_eq!(row["password_expires_in_days"], 5);

    aged(&root, 62, "60", "7");
    let row = status_of(&root);
    assert_eq!(row["password_state"], "expired");
    assert_eq!(row["password_expires_in_days"], -2);
    root.run(&["status"], "")
        .success()
        .stdout(predicates::str::contains("expired"));

    aged(&root, 62, "", "7");
    let row = status_of(&root);
    assert_eq!(row["password_state"], "valid");
    assert_eq!(row["password_expires_in_days"], serde_json::Value::Null);
    root.run(&["status"], "")
        .success()
        .stdout(predicates::str::contains("never"));
}
