//! Container tests: credsync against the real PAM stack and the real
//! shadow-utils, as root, in a private mount namespace over a copy of `/etc`
//! (see `system/harness.rs`). The setuid-root binary is run by ordinary users
//! through `setpriv`; what credsync writes is then checked by the tools every
//! administrator trusts: `pamtester` (pam_unix reading `/etc/shadow`), `pwck`,
//! and credsync's own `verify` for the application's record.
//!
//! These tests need root and `unshare`; without them they fail, loudly.

#[path = "system/harness.rs"]
mod harness;
#[path = "common/shim.rs"]
mod shim;

#[path = "system/api.rs"]
mod api;
#[path = "system/concurrency.rs"]
mod concurrency;
#[path = "system/drift.rs"]
mod drift;
#[path = "system/faults.rs"]
mod faults;
#[path = "system/hostile.rs"]
mod hostile;
#[path = "system/limits.rs"]
mod limits;
#[path = "system/lockhold.rs"]
mod lockhold;
#[path = "system/lockout.rs"]
mod lockout;
#[path = "system/pam_module.rs"]
mod pam_module;
#[path = "system/policy.rs"]
mod policy;
#[path = "system/rootside.rs"]
mod rootside;
#[path = "system/secrets.rs"]
mod secrets;
#[path = "system/web.rs"]
mod web;

use harness::{Account, FAST_CONFIG, Sandbox, exit};

const OLD: &str = "Old#Pass-2024";
const NEW: &str = "Fresh!Horse-Battery9";
const OTHER: &str = "Bob$Secret-77";

/// Today in UTC days since the epoch, as shadow's field 3 counts.
fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (secs / 86_400) as i64
}

/// Shadow's last-change field says "changed today" (or yesterday, for a test
/// that crossed midnight UTC).
#[track_caller]
fn assert_changed_today(field: &str) {
    let day: i64 = field
        .parse()
        .unwrap_or_else(|_| panic!("last-change day is not a number: {field:?}"));
    assert!(
        day == today() || day == today() - 1,
        "last-change day {day} is not today ({})",
        today()
    );
}

/// The lines of a shadow file that don't belong to `user`, byte for byte.
fn lines_except<'a>(shadow: &'a [u8], user: &str) -> Vec<&'a [u8]> {
    let prefix = format!("{user}:");
    shadow
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.starts_with(prefix.as_bytes()))
        .collect()
}

/// A sandbox with `alice` (password OLD) and `bob` (password OTHER), both set
/// by real `chpasswd`; neither is managed by credsync yet.
fn alice_and_bob() -> (Sandbox, Account, Account) {
    let sandbox = Sandbox::new();
    let alice = sandbox.useradd("alice");
    let bob = sandbox.useradd("bob");
    sandbox.chpasswd("alice", OLD);
    sandbox.chpasswd("bob", OTHER);
    (sandbox, alice, bob)
}

/// An ordinary user changes her own password through the setuid binary;
/// everything a user or an administrator could look at says it worked, and
/// nothing else moved.
fn self_service_change(args: &[&str]) {
    let (sandbox, alice, _bob) = alice_and_bob();
    let before = sandbox.shadow();
    let owner_before = sandbox.owner_and_mode("shadow");
    let pwck_before = sandbox.pwck();

    let out = sandbox
        .as_user(&alice)
        .run(args, &format!("{OLD}\n{NEW}\n"))
        .expect_ok("alice changes her password");
    assert!(
        out.stdout.contains("Password updated successfully"),
        "no success message:\n{out}"
    );
    assert!(
        out.stdout
            .contains("log this user out of all active application sessions"),
        "no logout warning:\n{out}"
    );

    // pam_unix, reading the file credsync wrote, and the record agree.
    sandbox.assert_only_accepts("alice", NEW, OLD);
    assert_eq!(sandbox.state("alice").as_deref(), Some("in-sync"));

    // The file is written the way shadow-utils writes it.
    let after = sandbox.shadow();
    assert_eq!(
        lines_except(&after, "alice"),
        lines_except(&before, "alice"),
        "other lines of /etc/shadow changed"
    );
    let fields = sandbox.shadow_fields("alice");
    assert!(
        fields[1].starts_with("$y$"),
        "not the yescrypt that common-password asks for: {}",
        fields[1]
    );
    assert_changed_today(&fields[2]);
    assert_eq!(
        sandbox.shadow_backup(),
        before,
        "/etc/shadow- is not the previous content"
    );
    assert_eq!(
        sandbox.owner_and_mode("shadow"),
        owner_before,
        "owner or mode of /etc/shadow changed"
    );
    assert_eq!(
        sandbox.owner_and_mode("shadow-"),
        owner_before,
        "/etc/shadow- has another owner or mode"
    );
    assert_eq!(
        owner_before,
        (0, sandbox.group_id("shadow"), 0o640),
        "the fixture's /etc/shadow is not root:shadow 0640 as on Debian"
    );

    let pwck_after = sandbox.pwck();
    assert_eq!(
        (pwck_after.code, &pwck_after.stdout, &pwck_after.stderr),
        (pwck_before.code, &pwck_before.stdout, &pwck_before.stderr),
        "pwck -r reports something new after the change"
    );
    assert!(
        !pwck_after.stdout.contains("alice") && !pwck_after.stderr.contains("alice"),
        "{pwck_after}"
    );
}

#[test]
fn user_changes_own_password_with_passwd() {
    self_service_change(&["passwd", "--stdin"]);
}

#[test]
fn user_changes_own_password_with_set_password() {
    self_service_change(&["set", "password", "--stdin"]);
}

#[test]
fn wrong_current_password_changes_nothing() {
    let (sandbox, alice, _bob) = alice_and_bob();
    let before = sandbox.shadow();

    let out = sandbox
        .as_user(&alice)
        .run(&["passwd", "--stdin"], &format!("Not-{OLD}\n{NEW}\n"));
    let out = out.expect_code(exit::DENIED, "a wrong current password");
    assert!(
        out.stderr.to_lowercase().contains("authentication failure"),
        "unclear message:\n{out}"
    );
    assert!(
        !out.stdout.contains("Password updated"),
        "claims success:\n{out}"
    );

    assert_eq!(sandbox.shadow(), before, "/etc/shadow changed");
    assert_eq!(
        sandbox.state("alice"),
        None,
        "a record was created for alice"
    );
    let status = sandbox
        .credsync(&["status", "alice"], "")
        .expect_ok("status alice");
    assert!(status.stdout.contains("not managed"), "{status}");
    assert_ne!(sandbox.verify("alice", NEW), exit::OK);
    assert!(
        sandbox.pamtester("alice", OLD),
        "the old password no longer works"
    );
}

#[test]
fn user_cannot_change_someone_elses_password() {
    let (sandbox, alice, _bob) = alice_and_bob();
    let before = sandbox.shadow();

    // Even with her own current password right.
    let out = sandbox
        .as_user(&alice)
        .run(&["passwd", "bob", "--stdin"], &format!("{OLD}\n{NEW}\n"));
    let out = out.expect_code(exit::DENIED, "alice changing bob's password");
    assert!(
        out.stderr.contains("only your own"),
        "unclear message:\n{out}"
    );

    assert_eq!(sandbox.shadow(), before, "/etc/shadow changed");
    assert_eq!(sandbox.state("bob"), None, "a record was created for bob");
    assert!(sandbox.pamtester("bob", OTHER) && !sandbox.pamtester("bob", NEW));
}

#[test]
fn user_cannot_run_the_administrators_commands() {
    let (sandbox, alice, _bob) = alice_and_bob();
    sandbox.enrol("bob", OTHER);
    let before = sandbox.shadow();
    let alice_runs = sandbox.as_user(&alice);

    let attempts: [(&[&str], String); 6] = [
        (&["recover", "bob", "--stdin"], format!("{NEW}\n")),
        (
            &["passwd", "alice", "--stdin", "--expire"],
            format!("{OLD}\n{NEW}\n"),
        ),
        (&["sync"], String::new()),
        (&["import"], format!("bob:{NEW}\n")),
        (&["status", "bob"], String::new()),
        // Not a guessing oracle for other accounts.
        (&["verify", "bob", "--stdin"], format!("{OTHER}\n")),
    ];
    for (args, stdin) in attempts {
        alice_runs
            .run(args, &stdin)
            .expect_code(exit::DENIED, &format!("alice runs {args:?}"));
    }
    assert_eq!(sandbox.shadow(), before, "/etc/shadow changed");
    assert_eq!(
        sandbox.verify("bob", OTHER),
        exit::OK,
        "bob's record changed"
    );
}

/// The appliance's documented recovery, done with real shadow-utils: root
/// resets `admin` with `chpasswd`; the next service start (`sync`) adopts it.
#[test]
fn chpasswd_recovery_is_adopted_by_sync() {
    let sandbox = Sandbox::new();
    sandbox.useradd("admin");
    sandbox.enrol("admin", OLD);
    assert_eq!(sandbox.state("admin").as_deref(), Some("in-sync"));

    sandbox.chpasswd("admin", NEW);
    assert_eq!(sandbox.state("admin").as_deref(), Some("linux-newer"));
    let dry = sandbox
        .credsync(&["sync", "--dry-run"], "")
        .expect_ok("sync --dry-run");
    assert!(
        dry.stdout.contains("would adopt"),
        "dry run doesn't say what it would do:\n{dry}"
    );
    assert_eq!(
        sandbox.state("admin").as_deref(),
        Some("linux-newer"),
        "--dry-run wrote"
    );

    let out = sandbox.credsync(&["sync"], "").expect_ok("sync");
    assert!(
        out.stdout.contains("admin") && out.stdout.contains("adopted"),
        "sync doesn't report it:\n{out}"
    );

    sandbox.assert_only_accepts("admin", NEW, OLD);
    assert_eq!(sandbox.state("admin").as_deref(), Some("in-sync"));
    // Adopting never rewrites Linux: the hash chpasswd wrote is kept.
    let after_sync = sandbox.shadow();
    sandbox.credsync(&["sync"], "").expect_ok("second sync");
    assert_eq!(
        sandbox.shadow(),
        after_sync,
        "a sync with nothing to do rewrote /etc/shadow"
    );
}

/// `recover` alone is the whole recovery: both stores take the password and
/// the faillock tally is cleared.
#[test]
fn recover_sets_both_stores_and_clears_the_failure_tally() {
    let (sandbox, _alice, _bob) = alice_and_bob();
    sandbox.useradd("admin");
    sandbox.chpasswd("admin", OLD);
    sandbox
        .root_sh("mkdir -p /run/faillock && head -c 128 /dev/zero > /run/faillock/admin && echo x > /run/faillock/bob", "")
        .expect_ok("write faillock tallies");
    let before = sandbox.shadow();

    let out = sandbox
        .credsync(&["recover", "admin", "--stdin"], &format!("{NEW}\n"))
        .expect_ok("recover");
    assert!(
        out.stdout.contains("Password updated successfully"),
        "{out}"
    );

    sandbox.assert_only_accepts("admin", NEW, OLD);
    assert_eq!(
        lines_except(&sandbox.shadow(), "admin"),
        lines_except(&before, "admin")
    );
    let sizes = sandbox
        .root_sh("stat -c '%n %s' /run/faillock/admin /run/faillock/bob", "")
        .expect_ok("stat");
    assert_eq!(
        sizes.stdout, "/run/faillock/admin 0\n/run/faillock/bob 2\n",
        "tally not cleared, or another cleared"
    );
}

#[test]
fn hash_written_by_credsync_is_yescrypt_and_pam_unix_accepts_it() {
    let sandbox = Sandbox::new();
    sandbox.useradd("admin");
    sandbox
        .credsync(&["recover", "admin", "--stdin"], &format!("{NEW}\n"))
        .expect_ok("recover");

    let hash = &sandbox.shadow_fields("admin")[1];
    // Debian's common-password: `pam_unix.so obscure yescrypt`, default cost.
    assert!(
        hash.starts_with("$y$j9T$"),
        "credsync did not hash like passwd would: {hash}"
    );
    assert!(sandbox.pamtester("admin", NEW));
    let account = sandbox.pamtester_ops("admin", NEW, &["authenticate", "acct_mgmt"]);
    account.expect_ok("pam_acct_mgmt on the account credsync wrote");
}

#[test]
fn password_set_by_real_passwd_is_adopted() {
    let sandbox = Sandbox::new();
    sandbox.useradd("admin");
    sandbox.enrol("admin", OLD);

    sandbox
        .passwd_as_root("admin", NEW)
        .expect_ok("real passwd admin");
    assert!(sandbox.shadow_fields("admin")[1].starts_with("$y$"));

    let out = sandbox.credsync(&["sync"], "").expect_ok("sync");
    assert!(out.stdout.contains("adopted"), "{out}");
    sandbox.assert_only_accepts("admin", NEW, OLD);
    assert_eq!(sandbox.state("admin").as_deref(), Some("in-sync"));
}

#[test]
fn sha512_hash_from_chpasswd_is_adopted_and_verified() {
    let sandbox = Sandbox::new();
    sandbox.useradd("admin");
    sandbox.enrol("admin", OLD);

    // chpasswd -c hashes itself, without PAM: the login.defs method.
    sandbox
        .root_tool("chpasswd", &["-c", "SHA512"], &format!("admin:{NEW}\n"))
        .expect_ok("chpasswd -c SHA512");
    assert!(sandbox.shadow_fields("admin")[1].starts_with("$6$"));

    sandbox.credsync(&["sync"], "").expect_ok("sync");
    assert_eq!(
        sandbox.verify("admin", NEW),
        exit::OK,
        "verify rejects a $6$ hash adopted from Linux"
    );
    assert_eq!(sandbox.verify("admin", OLD), exit::DENIED);
    // The first successful verify re-derives the record's own hash; it still works.
    assert_eq!(sandbox.verify("admin", NEW), exit::OK);
    assert!(sandbox.pamtester("admin", NEW));
}

/// Linux rolled back (an image restore): shadow holds an older password with
/// an older last-change day. `sync` puts the credsync password back.
#[test]
fn rolled_back_shadow_is_restored_by_sync() {
    let sandbox = Sandbox::new();
    sandbox.useradd("admin");
    sandbox.chpasswd("admin", OLD);
    let old_image = String::from_utf8(sandbox.shadow()).unwrap();
    sandbox
        .credsync(&["recover", "admin", "--stdin"], &format!("{NEW}\n"))
        .expect_ok("recover");

    let a_month_ago = (today() - 30).to_string();
    let rolled_back: String = old_image
        .split_inclusive('\n')
        .map(|line| {
            let mut fields: Vec<&str> = line.split(':').collect();
            if fields[0] != "admin" {
                return line.to_owned();
            }
            fields[2] = &a_month_ago;
            fields.join(":")
        })
        .collect();
    sandbox.put_shadow(rolled_back.as_bytes());
    assert!(
        sandbox.pamtester("admin", OLD),
        "the fixture did not roll back"
    );
    assert_eq!(sandbox.state("admin").as_deref(), Some("record-newer"));

    let out = sandbox.credsync(&["sync"], "").expect_ok("sync");
    assert!(
        out.stdout.contains("restored"),
        "sync doesn't report the restore:\n{out}"
    );

    sandbox.assert_only_accepts("admin", NEW, OLD);
    assert_eq!(sandbox.state("admin").as_deref(), Some("in-sync"));
    assert_eq!(
        lines_except(&sandbox.shadow(), "admin"),
        lines_except(rolled_back.as_bytes(), "admin")
    );
}

/// A temporary password: expired in Linux (field 3 = 0, as `passwd -e`), so
/// PAM's account stack demands a change, and `verify` says "right, but change it".
#[test]
fn recover_with_expire_forces_a_change_at_next_login() {
    let (sandbox, alice, _bob) = alice_and_bob();
    sandbox
        .credsync(
            &["recover", "alice", "--stdin", "--expire"],
            &format!("{OLD}\n"),
        )
        .expect_ok("recover --expire");

    assert_eq!(
        sandbox.shadow_fields("alice")[2],
        "0",
        "shadow's last-change day is not 0"
    );
    assert_eq!(
        sandbox.verify("alice", OLD),
        exit::MUST_CHANGE,
        "verify doesn't say the password must change"
    );
    assert_eq!(sandbox.verify("alice", NEW), exit::DENIED);
    assert!(
        sandbox.pamtester("alice", OLD),
        "pam_unix rejects the temporary password"
    );
    let login = sandbox.pamtester_ops("alice", OLD, &["authenticate", "acct_mgmt"]);
    assert_eq!(
        login.code, 1,
        "pam_acct_mgmt accepted an expired password:\n{login}"
    );
    assert!(
        login.stderr.contains("new one required"),
        "pam_unix did not ask for a new password:\n{login}"
    );

    // The user can still change the expired password herself (PAM lets an
    // expired password through precisely so it can be changed).
    sandbox
        .as_user(&alice)
        .run(&["passwd", "--stdin"], &format!("{OLD}\n{NEW}\n"))
        .expect_ok("change after expiry");
    assert_changed_today(&sandbox.shadow_fields("alice")[2]);
    assert_eq!(sandbox.verify("alice", NEW), exit::OK);
    sandbox
        .pamtester_ops("alice", NEW, &["authenticate", "acct_mgmt"])
        .expect_ok("login after the change");
}

/// credsync takes the same lock as glibc's `lckpwdf`, pam_unix and shadow-utils:
/// an fcntl lock on /etc/.pwd.lock (not flock). While another program holds
/// it, credsync gives up as "busy" after its timeout and writes nothing.
#[test]
fn waits_for_the_shadow_utils_lock_and_reports_busy() {
    let sandbox = Sandbox::new();
    sandbox.useradd("admin");
    sandbox.chpasswd("admin", OLD);
    sandbox.write_config(&format!("{FAST_CONFIG}[locks]\ntimeout_secs = 1\n"));
    let before = sandbox.shadow();

    let lock = sandbox.hold_pwd_lock();
    let started = std::time::Instant::now();
    let out = sandbox.credsync(&["recover", "admin", "--stdin"], &format!("{NEW}\n"));
    let out = out.expect_code(exit::BUSY, "recover while the password files are locked");
    assert!(
        out.stderr.contains("locked"),
        "the message doesn't say the files are locked:\n{out}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the 1 s timeout was not honoured"
    );
    assert_eq!(sandbox.shadow(), before, "/etc/shadow changed while locked");
    assert_eq!(sandbox.state("admin"), None);

    drop(lock);
    sandbox
        .credsync(&["recover", "admin", "--stdin"], &format!("{NEW}\n"))
        .expect_ok("recover after the lock is gone");
    assert!(sandbox.pamtester("admin", NEW));
}

/// Everything the caller controls is hostile to a setuid program: the loader,
/// PATH, locale, home. The change still works, runs nothing from the caller's
/// PATH, and `--root` (which would let the caller choose the files) is refused.
#[test]
fn setuid_run_ignores_a_hostile_environment() {
    let (sandbox, alice, _bob) = alice_and_bob();
    let evil = sandbox.scratch("evil");
    let marks = sandbox.scratch("marks");
    std::fs::set_permissions(&marks, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    for tool in [
        "nscd",
        "sss_cache",
        "unix_chkpwd",
        "sh",
        "sqlite3",
        "faillock",
        "logger",
    ] {
        let script = evil.join(tool);
        std::fs::write(
            &script,
            format!("#!/bin/sh\ntouch {}/{tool}\n", marks.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let evil = evil.to_str().unwrap();
    let hostile = [
        ("LD_PRELOAD", "/nonexistent.so"),
        ("LD_LIBRARY_PATH", evil),
        ("PATH", evil),
        ("LANG", "../../x"),
        ("LC_ALL", "../../x"),
        ("LANGUAGE", "../../x"),
        ("NLSPATH", "/nonexistent/%N"),
        ("HOME", evil),
        ("TMPDIR", evil),
        ("IFS", "/"),
        ("SQLITE_TMPDIR", evil),
    ];
    let alice_runs = sandbox.as_user(&alice).with_env(&hostile);

    alice_runs
        .run(&["passwd", "--stdin"], &format!("{OLD}\n{NEW}\n"))
        .expect_ok("change in a hostile environment");
    assert!(
        sandbox.pamtester("alice", NEW),
        "pam_unix rejects the new password"
    );
    assert_eq!(sandbox.verify("alice", NEW), exit::OK);
    let ran: Vec<_> = std::fs::read_dir(&marks)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        ran.is_empty(),
        "credsync ran programs from the caller's PATH: {ran:?}"
    );

    let before = sandbox.shadow();
    for args in [
        &["--root", "/tmp", "status"][..],
        &["passwd", "--root", "/tmp", "--stdin"],
    ] {
        let out = alice_runs
            .run(args, &format!("{NEW}\n{OLD}\n"))
            .expect_code(exit::DENIED, "--root when setuid");
        assert!(
            out.stderr.contains("--root"),
            "the refusal doesn't name --root:\n{out}"
        );
    }
    assert_eq!(sandbox.shadow(), before);
}

/// Through a setuid install, a failed `verify` costs time, as a failed login
/// does with pam_unix, so the record can't be brute-forced quickly.
#[test]
fn failed_verify_is_delayed() {
    let (sandbox, alice, _bob) = alice_and_bob();
    sandbox.enrol("alice", NEW);
    sandbox.write_config(""); // the default delay of 2 s

    let alice_runs = sandbox.as_user(&alice);
    let (wrong, took) = alice_runs.run_timed(&["verify", "alice", "--stdin"], &format!("{OLD}\n"));
    wrong.expect_code(exit::DENIED, "verify with a wrong password");
    assert!(
        took >= std::time::Duration::from_millis(1900),
        "no delay after a failure: {took:?}"
    );

    alice_runs
        .run(&["verify", "alice", "--stdin"], &format!("{NEW}\n"))
        .expect_ok("alice verifies her own password");
}

/// A setuid run takes on root's identity entirely once it knows its caller, so
/// the caller can't stop it (and so hold the password files' lock forever).
#[test]
fn the_caller_cannot_stop_a_setuid_run() {
    let sandbox = Sandbox::new();
    let alice = sandbox.useradd("alice");
    sandbox.chpasswd("alice", OLD);
    let out = sandbox
        .as_user(&alice)
        .bash(
            "\"$CREDSYNC\" passwd --stdin < <(sleep 5) >/dev/null 2>&1 & \
             sleep 1.5; kill -STOP $! 2>/dev/null; echo \"stop=$?\"; kill -0 $! 2>/dev/null; echo \"probe=$?\"",
        )
        .expect_ok("the script");
    assert!(
        out.stdout.contains("stop=1"),
        "alice could stop credsync:\n{out}"
    );
    assert!(
        out.stdout.contains("probe=1"),
        "alice could signal credsync:\n{out}"
    );
}
