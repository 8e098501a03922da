//! `pam_credsync.so` in a copy of the real Debian PAM stack: every password
//! change made through PAM — `passwd` by root and by the user, `chpasswd`,
//! `pamtester … chauthtok` — reaches the record in the same command, and
//! nothing about the module can break the change Linux made.
//!
//! The module is the workspace's own build (`target/*/libpam_credsync.so`,
//! next to the credsync binary the tests run), named by its absolute path
//! in `common-password`'s Additional block, as `pam-auth-update` puts it:
//! `password optional pam_credsync.so` after pam_permit.

use crate::harness::{Account, Sandbox, exit};
use crate::{NEW, OLD, OTHER, alice_and_bob};
use std::path::PathBuf;

/// The module this build made, beside the credsync binary; `cargo test`
/// builds no cdylib, so `scripts/test.sh` runs `cargo build --workspace`
/// first (do the same when running these tests by hand).
fn module() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_credsync"));
    let module = bin.with_file_name("libpam_credsync.so");
    assert!(
        module.is_file(),
        "{} is missing: build the workspace (cargo build --workspace --features fault-injection) before the tests",
        module.display()
    );
    module
}

/// Adds `password CONTROL pam_credsync.so` after pam_permit in the
/// sandbox's `common-password`.
fn install(sandbox: &Sandbox, control: &str) {
    let file = sandbox.etc("pam.d/common-password");
    let mut text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("pam_permit.so"), "{text}");
    text.push_str(&format!("password\t{control}\t{}\n", module().display()));
    std::fs::write(&file, text).unwrap();
}

/// alice (managed, OLD) and bob (not managed, OTHER), the module installed.
fn with_module(control: &str) -> Sandbox {
    with_module_and_alice(control).0
}

fn with_module_and_alice(control: &str) -> (Sandbox, Account) {
    let (sandbox, alice, _) = alice_and_bob();
    sandbox.enrol("alice", OLD);
    install(&sandbox, control);
    (sandbox, alice)
}

/// The record followed a change made through `service`: in sync at once,
/// the Argon2id hash there (no crypt fallback), a new epoch, the history
/// kept, the provenance PAM's.
#[track_caller]
fn followed(sandbox: &Sandbox, service: &str, epoch_before: i64, history_before: &str) {
    let row = sandbox.status_row("alice");
    assert_eq!(row["state"], "in-sync", "{row}");
    assert_eq!(row["source"], "pam", "{row}");
    assert_eq!(row["app_hash_pending"], false, "{row}");
    assert_eq!(row["must_change"], false, "{row}");
    assert_eq!(row["session_epoch"].as_i64().unwrap(), epoch_before + 1);
    assert_eq!(
        sandbox.sql("SELECT pam_service FROM record WHERE user = 'alice'"),
        service
    );
    let history: i64 = sandbox
        .sql("SELECT count(*) FROM history WHERE user = 'alice'")
        .parse()
        .unwrap();
    assert_eq!(history, history_before.parse::<i64>().unwrap() + 1);
    assert_eq!(sandbox.verify("alice", NEW), exit::OK);
    assert_eq!(sandbox.verify("alice", OLD), exit::DENIED);
    assert!(sandbox.pamtester("alice", NEW));
}

fn epoch_and_history(sandbox: &Sandbox) -> (i64, String) {
    (
        sandbox.status_row("alice")["session_epoch"]
            .as_i64()
            .unwrap(),
        sandbox.sql("SELECT count(*) FROM history WHERE user = 'alice'"),
    )
}

#[test]
fn passwd_by_root_reaches_the_record() {
    let sandbox = with_module("optional");
    let (epoch, history) = epoch_and_history(&sandbox);
    sandbox
        .passwd_as_root("alice", NEW)
        .expect_ok("passwd alice");
    followed(&sandbox, "passwd", epoch, &history);
    assert_eq!(sandbox.status_row("alice")["changed_by"], "root");
}

#[test]
fn passwd_by_the_user_reaches_the_record() {
    let (sandbox, alice) = with_module_and_alice("optional");
    let (epoch, history) = epoch_and_history(&sandbox);
    sandbox
        .as_user(&alice)
        .bash(&format!(
            "python3 -c '{}' '{OLD}' '{NEW}' /usr/bin/passwd",
            crate::harness::ON_A_PTY.replace('\'', "'\\''")
        ))
        .expect_ok("passwd as alice, on a pty");
    followed(&sandbox, "passwd", epoch, &history);
    assert_eq!(sandbox.status_row("alice")["changed_by"], "alice");
}

#[test]
fn chpasswd_reaches_the_record() {
    let sandbox = with_module("optional");
    let (epoch, history) = epoch_and_history(&sandbox);
    sandbox.chpasswd("alice", NEW);
    followed(&sandbox, "chpasswd", epoch, &history);
}

#[test]
fn a_chauthtok_through_the_credsync_service_reaches_the_record() {
    let sandbox = with_module("optional");
    let (epoch, history) = epoch_and_history(&sandbox);
    sandbox
        .root_tool(
            "pamtester",
            &["credsync", "alice", "chauthtok"],
            &format!("{NEW}\n{NEW}\n"),
        )
        .expect_ok("pamtester chauthtok");
    followed(&sandbox, "credsync", epoch, &history);
}

/// An unmanaged user is left alone (no record is made), and the change
/// itself works as without the module.
#[test]
fn an_unmanaged_user_is_left_alone() {
    let sandbox = with_module("optional");
    sandbox.passwd_as_root("bob", NEW).expect_ok("passwd bob");
    assert!(sandbox.pamtester("bob", NEW));
    assert_eq!(sandbox.state("bob"), None, "bob was enrolled");
}

/// With `[pam] enrol_on_change`, the first change through PAM enrols.
#[test]
fn enrol_on_change_takes_an_unmanaged_user_in() {
    let sandbox = with_module("optional");
    let config = std::fs::read_to_string(sandbox.etc("credsync/credsync.toml")).unwrap();
    sandbox.write_config(&format!("{config}\n[pam]\nenrol_on_change = true\n"));
    sandbox.passwd_as_root("bob", NEW).expect_ok("passwd bob");
    assert_eq!(sandbox.state("bob").as_deref(), Some("in-sync"));
    assert_eq!(sandbox.verify("bob", NEW), exit::OK);
    assert_eq!(sandbox.verify("bob", OTHER), exit::DENIED);
}

/// A store the module must not use — corrupt, or a symlink — and a missing
/// one: the change Linux made stands (passwd exits 0 with `optional`), the
/// store is not touched, and `sync` adopts the change once the store is
/// usable.
#[test]
fn a_store_the_module_cannot_use_never_breaks_the_change() {
    let sandbox = with_module("optional");
    let db = "/var/lib/credsync/credsync.db";
    sandbox
        .root_sh(
            &format!("cp {db} /run/good.db && head -c 4096 /dev/urandom > {db}"),
            "",
        )
        .expect_ok("corrupt the store");
    let corrupt = sandbox.root_sh(&format!("sha256sum {db}"), "").stdout;
    sandbox
        .passwd_as_root("alice", NEW)
        .expect_ok("passwd with a corrupt store");
    assert!(sandbox.pamtester("alice", NEW));
    assert_eq!(
        sandbox.root_sh(&format!("sha256sum {db}"), "").stdout,
        corrupt
    );

    sandbox
        .root_sh(
            &format!("rm -f {db}-wal {db}-shm; cp /run/good.db {db}"),
            "",
        )
        .expect_ok("restore the store");
    sandbox.credsync(&["sync"], "").expect_ok("sync");
    assert_eq!(sandbox.verify("alice", NEW), exit::OK);

    sandbox
        .root_sh("rm -rf /var/lib/credsync", "")
        .expect_ok("remove the store");
    sandbox
        .passwd_as_root("alice", OTHER)
        .expect_ok("passwd without a store");
    assert!(sandbox.pamtester("alice", OTHER));
    assert_ne!(
        sandbox.root_sh("test -e /var/lib/credsync", "").code,
        0,
        "the module made a store"
    );
}

/// With `required`, a record that can't be written fails the command, as
/// the README says — though Linux has the new password already.
#[test]
fn required_reports_a_record_that_cannot_be_written() {
    let sandbox = with_module("required");
    sandbox
        .root_sh(
            "head -c 4096 /dev/urandom > /var/lib/credsync/credsync.db",
            "",
        )
        .expect_ok("corrupt the store");
    let out = sandbox.passwd_as_root("alice", NEW);
    assert_ne!(out.code, 0, "passwd hid the failure:\n{out}");
    assert!(
        sandbox.pamtester("alice", NEW),
        "Linux has the new password"
    );
}

/// The host's stderr closed: nothing of the module's needs it.
#[test]
fn a_closed_stderr_changes_nothing_for_the_module() {
    let sandbox = with_module("optional");
    let (epoch, history) = epoch_and_history(&sandbox);
    sandbox
        .root_sh(
            &format!("printf '%s\\n' '{NEW}' '{NEW}' | passwd alice 2>&-"),
            "",
        )
        .expect_ok("passwd with stderr closed");
    followed(&sandbox, "passwd", epoch, &history);
}

/// The host killed inside the module's write (shadow has the new password,
/// the record not yet): no split — `sync` adopts the change.
#[test]
fn a_crash_inside_the_module_leaves_no_split() {
    let sandbox = with_module("optional");
    let out = sandbox.root_sh(
        &format!(
            "printf '%s\\n' '{NEW}' '{NEW}' | CREDSYNC_FAULT=pam-record-unwritten passwd alice"
        ),
        "",
    );
    assert_ne!(out.code, 0, "the fault point was not reached:\n{out}");
    assert!(
        sandbox.pamtester("alice", NEW),
        "pam_unix had written shadow"
    );
    assert_eq!(sandbox.state("alice").as_deref(), Some("linux-newer"));
    sandbox.credsync(&["sync"], "").expect_ok("sync");
    assert_eq!(sandbox.state("alice").as_deref(), Some("in-sync"));
    assert_eq!(sandbox.verify("alice", NEW), exit::OK);
    assert_eq!(sandbox.verify("alice", OLD), exit::DENIED);
}

/// An expired password (`passwd -e`) changed at `su`'s forced change, on a
/// pseudo-terminal, by another user switching to alice.
#[test]
fn sus_forced_change_of_an_expired_password_reaches_the_record() {
    let (sandbox, _alice, bob) = alice_and_bob();
    sandbox.enrol("alice", OLD);
    install(&sandbox, "optional");
    sandbox
        .root_tool("passwd", &["-e", "alice"], "")
        .expect_ok("passwd -e alice");
    let (epoch, history) = epoch_and_history(&sandbox);
    let out = sandbox
        .as_user(&bob)
        .bash(&format!(
            "python3 -c '{}' '{OLD}' '{NEW}' /bin/su alice -c true",
            crate::harness::ON_A_PTY.replace('\'', "'\\''")
        ))
        .expect_ok("su's forced change");
    assert!(
        out.stdout.contains("change your password"),
        "su did not force a change:\n{out}"
    );
    followed(&sandbox, "su", epoch, &history);
    assert_eq!(sandbox.status_row("alice")["changed_by"], "alice");
}

/// sshd's forced change of an expired password, over a real ssh login on
/// 127.0.0.1.
#[test]
fn sshds_forced_change_of_an_expired_password_reaches_the_record() {
    let sandbox = with_module("optional");
    sandbox
        .root_tool("passwd", &["-e", "alice"], "")
        .expect_ok("passwd -e alice");
    let (epoch, history) = epoch_and_history(&sandbox);
    let sshd = sandbox.start_sshd();
    let out = sandbox.ssh(&sshd, "alice", OLD, NEW);
    assert!(
        out.stdout.contains("change your password"),
        "sshd did not force a change:\n{out}"
    );
    followed(&sandbox, "sshd", epoch, &history);
    assert_eq!(sandbox.status_row("alice")["changed_by"], "root");
}
