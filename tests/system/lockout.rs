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

/// The `credsync` service with pam_faillock as a site adds it to
/// `common-auth`, with `args` on each pam_faillock line (none: its own
/// defaults and faillock.conf).
fn site_stack(args: &str) -> String {
    format!(
        "auth     required                 pam_faillock.so preauth {args}\n\
         auth     [success=1 default=bad]  pam_unix.so nodelay\n\
         auth     [default=die]            pam_faillock.so authfail {args}\n\
         auth     sufficient               pam_faillock.so authsucc {args}\n\
         auth     required                 pam_deny.so\n\
         account  required                 pam_faillock.so {args}\n\
         @include common-account\n\
         @include common-password\n"
    )
}

/// Out of the box — pam_faillock with nothing set, so its own 3 failures
/// and 600 s, and the appliance's 6 and 1800 s in `[policy.lockout]` — three
/// bad ssh-style logins lock the application too, for pam_faillock's time,
/// and a right password through `verify` does not empty the tally.
#[test]
fn out_of_the_box_the_sites_pam_faillock_and_verify_lock_alike() {
    let (sandbox, _) = alice(
        &config("failures = 6\nwindow_secs = 900\nlock_secs = 1800"),
        &format!("dir = {DIR}\nnodelay\n"),
    );
    std::fs::write(sandbox.etc("pam.d/credsync"), site_stack("")).unwrap();
    for _ in 0..3 {
        assert!(!sandbox.pamtester("alice", WRONG));
    }
    let out = verify(&sandbox, PASSWORD).expect_code(LOCKED, "verify after 3 PAM failures");
    assert!(
        out.stderr
            .contains("the account is locked after 3 failed logins; try again in 10 minutes"),
        "{out}"
    );
    assert_eq!(rows_of(&sandbox), 3, "verify emptied a locked tally");
    assert_eq!(sandbox.status_row("alice")["locked"], true);
    let login = sandbox.pamtester_ops("alice", PASSWORD, &["authenticate"]);
    assert_ne!(login.code, 0, "ssh let alice in early:\n{login}");
}

/// pam_faillock's arguments in the stack count as pam_faillock counts them:
/// over faillock.conf.
#[test]
fn pam_faillock_arguments_in_the_stack_set_the_numbers() {
    let (sandbox, _) = alice(
        &config("failures = 6"),
        &format!("dir = {DIR}\ndeny = 5\nnodelay\n"),
    );
    std::fs::write(
        sandbox.etc("pam.d/credsync"),
        site_stack("deny=2 unlock_time=120"),
    )
    .unwrap();
    for _ in 0..2 {
        verify(&sandbox, WRONG).expect_code(exit::DENIED, "a wrong password");
    }
    let out = verify(&sandbox, PASSWORD).expect_code(LOCKED, "verify after 2 failures");
    assert!(
        out.stderr
            .contains("the account is locked after 2 failed logins; try again in 2 minutes"),
        "{out}"
    );
    let login = sandbox.pamtester_ops("alice", PASSWORD, &["authenticate"]);
    assert_ne!(login.code, 0, "pam_faillock disagrees:\n{login}");
}

/// A wrong current password in a self-service `passwd` counts like a failed
/// `verify` (Debian's common-auth has no pam_faillock: credsync counts it),
/// so guessing through credsync runs into the lockout.
#[test]
fn wrong_current_passwords_in_self_service_are_counted() {
    let (sandbox, alice) = alice(
        &config("failures = 2\nwindow_secs = 900\nlock_secs = 600"),
        &format!("dir = {DIR}\n"),
    );
    for attempt in 1..=2 {
        sandbox
            .as_user(&alice)
            .run(&["passwd", "--stdin"], &format!("{WRONG}\n{NEW}\n"))
            .expect_code(exit::DENIED, "a wrong current password");
        assert_eq!(rows_of(&sandbox), attempt, "the guess was not counted");
    }
    let out = sandbox
        .as_user(&alice)
        .run(&["passwd", "--stdin"], &format!("{PASSWORD}\n{NEW}\n"))
        .expect_code(LOCKED, "the right password once locked");
    assert!(
        out.stderr
            .contains("the account is locked after 2 failed logins"),
        "{out}"
    );
    verify(&sandbox, PASSWORD).expect_code(LOCKED, "verify shares the lock");
}

/// With pam_faillock in the stack, PAM counts the wrong current password;
/// credsync doesn't count it a second time.
#[test]
fn a_wrong_current_password_is_counted_once_when_pam_faillock_counts_it() {
    let (sandbox, alice) = alice(&config("failures = 6"), &format!("dir = {DIR}\nnodelay\n"));
    std::fs::write(sandbox.etc("pam.d/credsync"), site_stack("")).unwrap();
    sandbox
        .as_user(&alice)
        .run(&["passwd", "--stdin"], &format!("{WRONG}\n{NEW}\n"))
        .expect_code(exit::DENIED, "a wrong current password");
    assert_eq!(rows_of(&sandbox), 1);
}

/// `verify` of an account credsync doesn't manage can never succeed, so a
/// guess there is not counted: the application's service account can't lock
/// root, or anyone else, out of ssh.
#[test]
fn verify_never_counts_against_an_unmanaged_account() {
    let (sandbox, _) = alice(&config("failures = 6"), &format!("dir = {DIR}\nnodelay\n"));
    std::fs::write(sandbox.etc("pam.d/credsync"), site_stack("")).unwrap();
    sandbox.useradd("bob");
    sandbox.chpasswd("bob", PASSWORD);
    for user in ["bob", "root"] {
        for _ in 0..6 {
            sandbox
                .credsync(&["verify", user, "--stdin"], &format!("{WRONG}\n"))
                .expect_code(exit::DENIED, "verify of an unmanaged account");
        }
        let tally = sandbox.root_sh(&format!("test -e {DIR}/{user}"), "");
        assert_ne!(tally.code, 0, "{user}'s tally was written");
    }
    assert!(
        sandbox.pamtester("bob", PASSWORD),
        "bob is locked out of PAM"
    );
}

/// The same out-of-the-box case with the real client: pam_faillock added to
/// `common-auth` (so sshd and credsync's service both run it, with nothing
/// set), three failed ssh logins on 127.0.0.1 lock the application too, for
/// pam_faillock's time; a right password through `verify` leaves the tally
/// alone, and ssh stays locked.
#[test]
fn failed_ssh_logins_lock_verify_out_of_the_box() {
    let (sandbox, _) = alice(
        &config("failures = 6\nwindow_secs = 900\nlock_secs = 1800"),
        &format!("dir = {DIR}\n"),
    );
    std::fs::write(
        sandbox.etc("pam.d/common-auth"),
        "auth required pam_faillock.so preauth\n\
         auth [success=2 default=ignore] pam_unix.so nullok nodelay\n\
         auth [default=die] pam_faillock.so authfail\n\
         auth requisite pam_deny.so\n\
         auth sufficient pam_faillock.so authsucc\n\
         auth required pam_permit.so\n",
    )
    .unwrap();
    let sshd = sandbox.start_sshd();
    for _ in 0..3 {
        let login = sandbox.ssh(&sshd, "alice", WRONG, WRONG);
        assert_ne!(login.code, 0, "ssh took a wrong password:\n{login}");
    }
    assert_eq!(
        rows_of(&sandbox),
        3,
        "pam_faillock did not count ssh's failures"
    );
    let out = verify(&sandbox, PASSWORD).expect_code(LOCKED, "verify after 3 ssh failures");
    assert!(
        out.stderr
            .contains("the account is locked after 3 failed logins; try again in 10 minutes"),
        "{out}"
    );
    assert_eq!(rows_of(&sandbox), 3, "verify emptied the tally");
    let login = sandbox.ssh(&sshd, "alice", PASSWORD, PASSWORD);
    assert_ne!(login.code, 0, "ssh let a locked user in:\n{login}");
}
