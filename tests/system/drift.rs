//! What Linux changes around a managed password, made with the real tools:
//! a lock (`passwd -l`/`-u`) is a lock state, not a new password; a forced
//! change (`passwd -e`) reaches the record; an account without a password
//! (`passwd -d`) is never accepted; a rolled-back image is judged by the
//! record until `sync` restores it; and the hash cost follows pam_unix
//! 1.5.2, which ignores `YESCRYPT_COST_FACTOR`.

use crate::harness::{Sandbox, exit};
use crate::{NEW, OLD};

/// `admin` enrolled with OLD.
fn enrolled() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.useradd("admin");
    sandbox.enrol("admin", OLD);
    sandbox
}

fn history_rows(sandbox: &Sandbox) -> String {
    sandbox.sql("SELECT count(*) FROM history WHERE user = 'admin'")
}

#[test]
fn a_lock_in_linux_is_a_lock_state_not_a_password_change() {
    let sandbox = enrolled();
    assert_eq!(sandbox.verify("admin", OLD), exit::OK);
    let before = sandbox.status_row("admin");
    let history = history_rows(&sandbox);

    sandbox
        .root_tool("passwd", &["-l", "admin"], "")
        .expect_ok("passwd -l");
    let out = sandbox.credsync(&["sync"], "").expect_ok("sync");
    assert!(
        !out.stdout.contains("adopted"),
        "a lock taken for a change:\n{out}"
    );

    let locked = sandbox.status_row("admin");
    assert_eq!(locked["state"], "locked");
    assert_eq!(locked["account_locked"], true);
    for kept in [
        "changed_at_unix",
        "source",
        "changed_by",
        "app_hash_pending",
    ] {
        assert_eq!(locked[kept], before[kept], "{kept} changed with a lock");
    }
    assert_eq!(
        history_rows(&sandbox),
        history,
        "a lock went to the history"
    );
    assert_eq!(
        locked["session_epoch"].as_i64().unwrap(),
        before["session_epoch"].as_i64().unwrap() + 1,
        "locking must end the application sessions"
    );
    assert_eq!(
        sandbox.sql("SELECT locked FROM record WHERE user = 'admin'"),
        "1"
    );
    assert_eq!(sandbox.verify("admin", OLD), exit::DENIED);

    sandbox
        .root_tool("passwd", &["-u", "admin"], "")
        .expect_ok("passwd -u");
    sandbox.credsync(&["sync"], "").expect_ok("sync");
    let unlocked = sandbox.status_row("admin");
    assert_eq!(unlocked["state"], "in-sync");
    assert_eq!(unlocked["account_locked"], false);
    assert_eq!(unlocked["session_epoch"], locked["session_epoch"]);
    assert_eq!(history_rows(&sandbox), history);
    assert_eq!(sandbox.verify("admin", OLD), exit::OK);
}

/// `passwd -e` on a managed password: `status` and the record agree that
/// it must be changed, and a new password set in Linux lifts it again.
#[test]
fn a_forced_change_made_in_linux_reaches_the_record() {
    let sandbox = enrolled();
    sandbox
        .root_tool("passwd", &["-e", "admin"], "")
        .expect_ok("passwd -e");
    // Before any sync, status already shows Linux's word.
    let row = sandbox.status_row("admin");
    assert_eq!(
        (&row["must_change"], &row["password_state"]),
        (&serde_json::json!(true), &serde_json::json!("must-change"))
    );
    sandbox.credsync(&["sync"], "").expect_ok("sync");
    assert_eq!(
        sandbox.sql("SELECT must_change FROM record WHERE user = 'admin'"),
        "1",
        "the record still lets the user in without a change"
    );
    assert_eq!(sandbox.verify("admin", OLD), exit::MUST_CHANGE);

    sandbox.chpasswd("admin", NEW);
    sandbox.credsync(&["sync"], "").expect_ok("sync");
    assert_eq!(
        sandbox.sql("SELECT must_change FROM record WHERE user = 'admin'"),
        "0"
    );
    assert_eq!(sandbox.status_row("admin")["must_change"], false);
    assert_eq!(sandbox.verify("admin", NEW), exit::OK);
}

/// `passwd -d`: pam_unix with `nullok` lets anyone in; credsync refuses,
/// says why, and `status` shows it.
#[test]
fn an_account_without_a_password_is_never_accepted() {
    let sandbox = enrolled();
    sandbox
        .root_tool("passwd", &["-d", "admin"], "")
        .expect_ok("passwd -d");
    for password in ["", OLD] {
        let out = sandbox
            .credsync(&["verify", "admin", "--stdin"], &format!("{password}\n"))
            .expect_code(exit::DENIED, "verify of an account without a password");
        assert!(
            out.stderr.contains("has no password") && out.stderr.lines().count() == 1,
            "{out}"
        );
    }
    sandbox.credsync(&["sync"], "").expect_ok("sync");
    let row = sandbox.status_row("admin");
    assert_eq!(
        (&row["state"], &row["no_password"]),
        (&"no-password".into(), &true.into())
    );
    let table = sandbox.credsync(&["status"], "").expect_ok("status");
    assert!(table.stdout.contains("no-password"), "{table}");
}

/// A rolled-back image (`record-newer`): until `sync` restores it, pam_unix
/// accepts the rolled-back password and `verify` only the record's — the
/// record is the reference once Linux went back in time (README, "Drift").
#[test]
fn after_a_rollback_verify_follows_the_record_until_sync_restores_it() {
    let sandbox = enrolled();
    let image = sandbox.shadow();
    sandbox
        .credsync(&["recover", "admin", "--stdin"], &format!("{NEW}\n"))
        .expect_ok("recover");
    sandbox.put_shadow(&image);
    assert_eq!(sandbox.state("admin").as_deref(), Some("record-newer"));
    assert!(sandbox.pamtester("admin", OLD), "the image's password");
    assert_eq!(sandbox.verify("admin", NEW), exit::OK);
    assert_eq!(sandbox.verify("admin", OLD), exit::DENIED);

    sandbox.credsync(&["sync"], "").expect_ok("sync");
    sandbox.assert_only_accepts("admin", NEW, OLD);
}

/// With the method from login.defs (no method option on pam_unix),
/// Linux-PAM 1.5.2 ignores `YESCRYPT_COST_FACTOR`: `passwd` writes cost 5
/// (`$y$j9T$`), and so must credsync.
#[test]
fn the_hash_cost_is_the_one_real_passwd_writes() {
    let sandbox = Sandbox::new();
    sandbox.useradd("admin");
    sandbox.useradd("bob");
    sandbox
        .root_sh(
            "sed -i 's/^ENCRYPT_METHOD.*/ENCRYPT_METHOD YESCRYPT/' /etc/login.defs && \
             echo 'YESCRYPT_COST_FACTOR 7' >> /etc/login.defs && \
             sed -i '/pam_unix.so/s/ yescrypt\\b//' /etc/pam.d/common-password && \
             grep -q '^password.*pam_unix.so' /etc/pam.d/common-password && \
             ! grep -q '^password.*pam_unix.so.*yescrypt' /etc/pam.d/common-password",
            "",
        )
        .expect_ok("login.defs decides the method");
    sandbox
        .passwd_as_root("bob", OLD)
        .expect_ok("real passwd for bob");
    let by_passwd = sandbox.shadow_fields("bob")[1].clone();
    sandbox.enrol("admin", NEW);
    let by_credsync = sandbox.shadow_fields("admin")[1].clone();
    let setting = |hash: &str| hash.split('$').take(3).collect::<Vec<_>>().join("$");
    assert_eq!(setting(&by_passwd), "$y$j9T", "passwd: {by_passwd}");
    assert_eq!(setting(&by_credsync), setting(&by_passwd));
}
