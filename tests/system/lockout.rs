//! The lockout against the real pam_faillock and `faillock` (Linux-PAM 1.5.2):
//! `faillock` lists the failures `verify` recorded, in the directory the
//! sandbox's `/etc/security/faillock.conf` names; with pam_faillock in the
//! `credsync` auth stack, failures through a PAM login (`pamtester`) and
//! through `verify` add up to one lockout that both refuse; `recover` empties
//! the tally as `faillock --reset` does.

use super::harness::{Account, Outcome, Sandbox, exit};

const PASSWORD: &str = "Right#Pass-2024";
const WRONG: &str = "Wrong#Pass-2024";
const NEW: &str = "Fresh#Pass-2024";

/// `verify`'s exit code for a locked account (README "Exit codes").
const LOCKED: i32 = 13;

/// The tally directory the tests' faillock.conf names (`faillock` 1.5.2 does
/// not read faillock.conf: it is told with `--dir`).
const DIR: &str = "/run/credsync-faillock";

/// Fast, the password policy off, and `lockout` as `[policy.lockout]`.
fn config(lockout: &str) -> String {
    format!(
        "[verify]\nfailure_delay_ms = 0\n\
         [policy]\nmin_length = 0\nmin_classes = 0\nmin_changed_chars = 0\n\
         reject_username = false\nhistory = 0\nmin_age_days = 0\nmax_age_days = 0\n\
         warn_days = 0\n\
         [policy.lockout]\n{lockout}\n"
    )
}

/// A sandbox with alice managed by credsync (password [`PASSWORD`]), the
/// credsync config `config` and `faillock_conf` as the site's faillock.conf.
fn alice(config: &str, faillock_conf: &str) -> (Sandbox, Account) {
    let sandbox = Sandbox::new();
    let alice = sandbox.useradd("alice");
    sandbox.write_config(config);
    std::fs::write(sandbox.etc("security/faillock.conf"), faillock_conf).unwrap();
    sandbox.enrol("alice", PASSWORD);
    (sandbox, alice)
}

/// `faillock --dir DIR --user alice [--reset]`, times in UTC.
fn faillock(sandbox: &Sandbox, reset: bool) -> Outcome {
    let reset = if reset { " --reset" } else { "" };
    sandbox
        .root_sh(
            &format!("TZ=UTC exec faillock --dir {DIR} --user alice{reset}"),
            "",
        )
        .expect_ok("faillock")
}

/// The rows of `faillock`'s listing (after the user and the header line).
fn rows(listing: &Outcome) -> Vec<String> {
    listing.stdout.lines().skip(2).map(str::to_owned).collect()
}

/// `verify alice` as root.
fn verify(sandbox: &Sandbox, password: &str) -> Outcome {
    sandbox.credsync(&["verify", "alice", "--stdin"], &format!("{password}\n"))
}

/// The `credsync` PAM service with pam_faillock around pam_unix, as a site
/// adds it (Linux-PAM's documented stack), reading the sandbox's
/// faillock.conf; no delays (`nodelay` here and in faillock.conf), so the
/// test stays fast.
const FAILLOCK_STACK: &str = "\
auth     required                 pam_faillock.so preauth
auth     [success=1 default=bad]  pam_unix.so nodelay
auth     [default=die]            pam_faillock.so authfail
auth     sufficient               pam_faillock.so authsucc
auth     required                 pam_deny.so
account  required                 pam_faillock.so
@include common-account
@include common-password
";

#[test]
fn faillock_lists_the_failures_verify_recorded() {
    let (sandbox, _) = alice(
        &config("failures = 5"),
        &format!("# the site's settings\ndir = {DIR}\n"),
    );
    for _ in 0..2 {
        verify(&sandbox, WRONG).expect_code(exit::DENIED, "a wrong password");
    }
    let listing = faillock(&sandbox, false);
    let rows = rows(&listing);
    assert_eq!(rows.len(), 2, "{listing}");
    for row in &rows {
        let fields: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(fields[2..], ["SVC", "credsync", "V"], "{listing}");
    }
    assert!(listing.stdout.starts_with("alice:\nWhen "), "{listing}");
    // The tally belongs to alice, as pam_faillock leaves it.
    let owner = sandbox
        .root_sh(&format!("stat -c '%U %a' {DIR}/alice"), "")
        .expect_ok("stat");
    assert_eq!(owner.stdout.trim(), "alice 660");

    // A right password empties it, as pam_faillock's authsucc does.
    verify(&sandbox, PASSWORD).expect_ok("the right password");
    assert_eq!(rows_of(&sandbox), 0);
}

fn rows_of(sandbox: &Sandbox) -> usize {
    rows(&faillock(sandbox, false)).len()
}

#[test]
fn pam_logins_and_verify_add_up_to_one_lockout_that_recover_clears() {
    // The policy is off: faillock.conf's deny turns the lockout on for both.
    let (sandbox, _) = alice(
        &config("failures = 0"),
        &format!("dir = {DIR}\ndeny = 4\nunlock_time = 600\nnodelay\n"),
    );
    std::fs::write(sandbox.etc("pam.d/credsync"), FAILLOCK_STACK).unwrap();

    for _ in 0..2 {
        assert!(
            !sandbox.pamtester("alice", WRONG),
            "pam_unix took a wrong password"
        );
    }
    for _ in 0..2 {
        verify(&sandbox, WRONG).expect_code(exit::DENIED, "a wrong password");
    }
    assert_eq!(rows_of(&sandbox), 4, "two failures each");

    // Locked for both, whatever the password.
    let out = verify(&sandbox, PASSWORD).expect_code(LOCKED, "verify while locked");
    assert!(
        out.stderr
            .contains("the account is locked after 4 failed logins; try again in 10 minutes"),
        "{out}"
    );
    let login = sandbox.pamtester_ops("alice", PASSWORD, &["authenticate"]);
    assert_ne!(login.code, 0, "pam_faillock let a locked user in:\n{login}");
    // pam_faillock's own words, with the same time left as credsync's.
    assert!(
        login
            .stdout
            .contains("The account is locked due to 4 failed logins.")
            && login.stdout.contains("(10 minutes left to unlock)"),
        "{login}"
    );
    assert_eq!(rows_of(&sandbox), 4, "failures while locked were recorded");

    // `recover` clears the tally as `faillock --reset` does.
    sandbox
        .credsync(&["recover", "alice", "--stdin"], &format!("{NEW}\n"))
        .expect_ok("recover");
    let listing = faillock(&sandbox, false);
    assert_eq!(rows(&listing), Vec::<String>::new(), "{listing}");
    assert!(sandbox.pamtester("alice", NEW), "pam_faillock still locks");
    verify(&sandbox, NEW).expect_ok("verify after recover");
}

#[test]
fn a_lock_set_by_pam_faillock_refuses_verify_and_faillock_reset_lifts_it() {
    let (sandbox, alice) = alice(
        &config("failures = 0"),
        &format!("dir = {DIR}\ndeny = 2\nunlock_time = never\nnodelay\n"),
    );
    std::fs::write(sandbox.etc("pam.d/credsync"), FAILLOCK_STACK).unwrap();
    for _ in 0..2 {
        assert!(!sandbox.pamtester("alice", WRONG));
    }
    let out = verify(&sandbox, PASSWORD).expect_code(LOCKED, "verify after pam's failures");
    assert!(
        out.stderr.contains("until an administrator recovers it"),
        "{out}"
    );
    let status = sandbox
        .credsync(&["--json", "status", "alice"], "")
        .expect_ok("status");
    let rows: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    assert_eq!(rows[0]["locked"], true, "{status}");
    assert_eq!(rows[0]["failed_logins"], 2, "{status}");

    // Nor may alice change her password herself (the setuid binary).
    let before = sandbox.shadow();
    let out = sandbox
        .as_user(&alice)
        .run(&["passwd", "--stdin"], &format!("{PASSWORD}\n{NEW}\n"))
        .expect_code(LOCKED, "a locked user's own passwd");
    assert!(out.stderr.contains("the account is locked"), "{out}");
    assert_eq!(sandbox.shadow(), before, "/etc/shadow changed");

    faillock(&sandbox, true);
    verify(&sandbox, PASSWORD).expect_ok("verify after faillock --reset");
}
