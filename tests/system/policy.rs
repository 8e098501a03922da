//! The password policy against the real PAM password stack: the site's
//! `/etc/security/pwquality.conf`, read by pam_pwquality for `passwd` and by
//! libpwquality for credsync, refuses the same passwords through both; and
//! pam_pwhistory's `/etc/security/opasswd` is one history for `passwd` and
//! credsync, each refusing what the other set before.

use super::harness::{Account, Outcome, Sandbox};

/// Exit code of a refusal by the policy (README "Exit codes").
const POLICY: i32 = 8;
/// `passwd`'s exit code when PAM refuses the change.
const PASSWD_REFUSED: i32 = 10;

/// Fast, no lockout, credsync's own quality rules off, no minimum age, never
/// expires; `rules` (`key = value` lines) must say `site_rules` and `history`.
fn config(rules: &str) -> String {
    format!(
        "[verify]\nfailure_delay_ms = 0\n\
         [policy]\nmin_length = 0\nmin_classes = 0\nmin_changed_chars = 0\n\
         reject_username = false\nmin_age_days = 0\nmax_age_days = 99999\nwarn_days = 7\n\
         {rules}\n\
         [policy.lockout]\nfailures = 0\n"
    )
}

/// The starting password of every account: strong enough for every rule here.
const OLD: &str = "Old#Pass-2024xQ";

/// Real `passwd` run by `account` on its own password, reading the current
/// password, the new one and its confirmation from a pipe.
fn passwd_as(sandbox: &Sandbox, account: &Account, current: &str, new: &str) -> Outcome {
    sandbox.as_user(account).bash(&format!(
        "printf '%s\\n' '{current}' '{new}' '{new}' | passwd"
    ))
}

/// credsync's self-service change through the setuid binary.
fn credsync_as(sandbox: &Sandbox, account: &Account, current: &str, new: &str) -> Outcome {
    sandbox.as_user(account).run(
        &["set", "password", "--stdin"],
        &format!("{current}\n{new}\n"),
    )
}

/// What passwd and pam_pwquality showed: stdout and stderr together.
fn shown(out: &Outcome) -> String {
    format!("{}{}", out.stdout, out.stderr)
}

/// A sandbox whose `pwquality.conf` is strict, with alice (managed by
/// credsync) and carol (not), both with the password OLD.
fn strict_site() -> (Sandbox, Account, Account) {
    let sandbox = Sandbox::new();
    let alice = sandbox.useradd("alice");
    let carol = sandbox.useradd("carol");
    sandbox.chpasswd("alice", OLD);
    sandbox.chpasswd("carol", OLD);
    sandbox.write_config(&config("site_rules = true\nhistory = 0"));
    std::fs::write(
        sandbox.etc("security/pwquality.conf"),
        "# strict\nminlen = 14\nminclass = 4\ndifok = 5\n",
    )
    .unwrap();
    sandbox.enrol("alice", OLD);
    (sandbox, alice, carol)
}

/// carol's real `passwd` and alice's credsync, each changing OLD to
/// `candidate` (`{}` replaced by the user's name), are refused with libpwquality's
/// `message`; nothing changes.
#[track_caller]
fn both_refuse(
    sandbox: &Sandbox,
    alice: &Account,
    carol: &Account,
    candidate: &str,
    message: &str,
) {
    let before = sandbox.shadow();
    let through_passwd = passwd_as(sandbox, carol, OLD, &candidate.replace("{}", "Carol"));
    assert_eq!(
        through_passwd.code, PASSWD_REFUSED,
        "passwd:\n{through_passwd}"
    );
    assert!(
        shown(&through_passwd).contains(&format!("BAD PASSWORD: {message}")),
        "passwd:\n{through_passwd}"
    );
    let through_credsync = credsync_as(sandbox, alice, OLD, &candidate.replace("{}", "Alice"));
    assert_eq!(
        through_credsync.code, POLICY,
        "credsync:\n{through_credsync}"
    );
    assert!(
        through_credsync
            .stderr
            .contains(&format!("the site's rules: {message}")),
        "credsync:\n{through_credsync}"
    );
    assert_eq!(sandbox.shadow(), before, "nothing was changed");
    assert!(sandbox.pamtester("alice", OLD));
    assert_eq!(sandbox.verify("alice", OLD), 0);
}

#[test]
fn pwquality_length_and_classes_refuse_through_credsync_as_through_passwd() {
    let (sandbox, alice, carol) = strict_site();
    both_refuse(
        &sandbox,
        &alice,
        &carol,
        "Kx9#mQ2v$Lp7w",
        "The password is shorter than 14 characters",
    );
    both_refuse(
        &sandbox,
        &alice,
        &carol,
        "kx9#mq2v$lp7wzq",
        "The password contains less than 4 character classes",
    );
    // Both accept the boundary: fourteen characters of four classes.
    let good = "Kx9#mQ2v$Lp7wZ";
    passwd_as(&sandbox, &carol, OLD, good).expect_ok("passwd accepts");
    credsync_as(&sandbox, &alice, OLD, good).expect_ok("credsync accepts");
    assert!(sandbox.pamtester("carol", good));
    sandbox.assert_only_accepts("alice", good, OLD);
}

#[test]
fn pwquality_user_name_and_similarity_refuse_through_credsync_as_through_passwd() {
    let (sandbox, alice, carol) = strict_site();
    both_refuse(
        &sandbox,
        &alice,
        &carol,
        "x{}99#Kp2Zqq",
        "The password contains the user name in some form",
    );
    // The old password known in a self-service change: one character added
    // is fewer than difok's five edits.
    both_refuse(
        &sandbox,
        &alice,
        &carol,
        &format!("{OLD}Z"),
        "The password is too similar to the old one",
    );
    // Five edits are enough.
    let good = format!("{OLD}Z9#kW");
    passwd_as(&sandbox, &carol, OLD, &good).expect_ok("passwd accepts");
    credsync_as(&sandbox, &alice, OLD, &good).expect_ok("credsync accepts");
    sandbox.assert_only_accepts("alice", &good, OLD);
}

#[test]
fn for_root_pwquality_warns_through_passwd_and_credsync_needs_force() {
    let sandbox = Sandbox::new();
    sandbox.useradd("alice");
    sandbox.useradd("carol");
    sandbox.chpasswd("alice", OLD);
    sandbox.chpasswd("carol", OLD);
    sandbox.write_config(&config("site_rules = true\nhistory = 0"));
    sandbox.enrol("alice", OLD);
    let short = "Kx9#mQ2v$Lp7w";

    // enforce_for_root: both refuse root.
    std::fs::write(
        sandbox.etc("security/pwquality.conf"),
        "minlen = 14\nenforce_for_root\n",
    )
    .unwrap();
    let before = sandbox.shadow();
    let out = sandbox.passwd_as_root("carol", short);
    assert_eq!(out.code, PASSWD_REFUSED, "passwd:\n{out}");
    assert!(shown(&out).contains("BAD PASSWORD: The password is shorter than 14 characters"));
    let out = sandbox.credsync(&["passwd", "alice", "--stdin"], &format!("{short}\n"));
    assert_eq!(out.code, POLICY, "{out}");
    assert!(
        out.stderr
            .contains("The password is shorter than 14 characters"),
        "{out}"
    );
    assert_eq!(sandbox.shadow(), before);

    // Without it passwd warns root and sets the password; credsync does the
    // same when root says --force.
    std::fs::write(sandbox.etc("security/pwquality.conf"), "minlen = 14\n").unwrap();
    let out = sandbox
        .passwd_as_root("carol", short)
        .expect_ok("passwd as root");
    assert!(shown(&out).contains("BAD PASSWORD: The password is shorter than 14 characters"));
    let out = sandbox
        .credsync(
            &["passwd", "alice", "--stdin", "--force"],
            &format!("{short}\n"),
        )
        .expect_ok("credsync --force");
    assert!(
        out.stderr
            .contains("warning: the site's rules: The password is shorter than 14 characters; set anyway (--force)"),
        "{out}"
    );
    assert!(sandbox.pamtester("carol", short));
    sandbox.assert_only_accepts("alice", short, OLD);
}

/// Puts pam_pwhistory in the password stack `passwd` uses, before pam_unix,
/// as a site would (Debian 12's module has no config file: the arguments are
/// all there is).
fn add_pam_pwhistory(sandbox: &Sandbox, remember: u32) {
    let path = sandbox.etc("pam.d/common-password");
    let stack = std::fs::read_to_string(&path).unwrap();
    let unix = stack
        .lines()
        .position(|l| l.starts_with("password") && l.contains("pam_unix.so"))
        .expect("pam_unix in common-password");
    let mut lines: Vec<String> = stack.lines().map(str::to_owned).collect();
    lines.insert(
        unix,
        format!("password\trequisite\tpam_pwhistory.so remember={remember} use_authtok"),
    );
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

/// The user's line of the sandbox's `/etc/security/opasswd`.
fn opasswd_line(sandbox: &Sandbox, user: &str) -> Option<String> {
    std::fs::read_to_string(sandbox.etc("security/opasswd"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .map(str::to_owned)
}

#[test]
fn passwd_and_credsync_keep_one_history_through_pam_pwhistory() {
    let sandbox = Sandbox::new();
    let alice = sandbox.useradd("alice");
    sandbox.chpasswd("alice", OLD);
    sandbox.write_config(&config("site_rules = false\nhistory = 5"));
    add_pam_pwhistory(&sandbox, 5);
    let first = "First#Horse-Staple1";
    let second = "Second#Horse-Staple2";
    let third = "Third#Horse-Staple3";

    // passwd changes OLD to `first`: pam_pwhistory records OLD.
    let old_hash = sandbox.shadow_fields("alice")[1].clone();
    passwd_as(&sandbox, &alice, OLD, first).expect_ok("passwd OLD -> first");
    assert_eq!(
        opasswd_line(&sandbox, "alice"),
        Some(format!("alice:{}:1:{old_hash}", alice.uid))
    );

    // credsync refuses OLD as history: only pam_pwhistory's file knows it.
    let before = sandbox.shadow();
    let out = credsync_as(&sandbox, &alice, first, OLD);
    assert_eq!(out.code, POLICY, "{out}");
    assert!(
        out.stderr
            .contains("the new password must not be one of the last 5 used for this account"),
        "{out}"
    );
    assert_eq!(sandbox.shadow(), before);
    assert!(sandbox.pamtester("alice", first));

    // credsync changes `first` to `second`, recording `first` as pam_pwhistory would.
    let first_hash = sandbox.shadow_fields("alice")[1].clone();
    credsync_as(&sandbox, &alice, first, second).expect_ok("credsync first -> second");
    assert_eq!(
        opasswd_line(&sandbox, "alice"),
        Some(format!("alice:{}:2:{old_hash},{first_hash}", alice.uid))
    );

    // passwd (pam_pwhistory) refuses `first` now, and OLD.
    let before = sandbox.shadow();
    for used in [first, OLD] {
        let out = passwd_as(&sandbox, &alice, second, used);
        assert_eq!(out.code, PASSWD_REFUSED, "passwd {used}:\n{out}");
        assert!(
            shown(&out).contains("Password has been already used"),
            "passwd {used}:\n{out}"
        );
    }
    assert_eq!(sandbox.shadow(), before);

    // And takes a new one: the refusals were the history's.
    passwd_as(&sandbox, &alice, second, third).expect_ok("passwd second -> third");
    assert!(sandbox.pamtester("alice", third));
    // credsync refuses `second`, which only passwd's change put in the file
    // (and the record as its current password before).
    let out = credsync_as(&sandbox, &alice, third, second);
    assert_eq!(out.code, POLICY, "{out}");
}

#[test]
fn root_recovery_records_the_replaced_hash_for_pam_pwhistory() {
    let sandbox = Sandbox::new();
    let bob = sandbox.useradd("bob");
    sandbox.chpasswd("bob", OLD);
    sandbox.write_config(&config("site_rules = false\nhistory = 5"));
    add_pam_pwhistory(&sandbox, 5);
    let old_hash = sandbox.shadow_fields("bob")[1].clone();
    let new = "Recovered#Horse-9";
    sandbox.enrol("bob", new);
    assert_eq!(
        opasswd_line(&sandbox, "bob"),
        Some(format!("bob:{}:1:{old_hash}", bob.uid))
    );
    let out = passwd_as(&sandbox, &bob, new, OLD);
    assert_eq!(out.code, PASSWD_REFUSED, "{out}");
    assert!(
        shown(&out).contains("Password has been already used"),
        "{out}"
    );
    assert!(sandbox.pamtester("bob", new));
}
