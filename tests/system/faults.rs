//! A crash at every step of a change. The test build's fault points
//! (`src/fault.rs`) abort credsync dead at a named step — no destructor runs,
//! so locks, temporaries and intents stay as a power cut would leave them.
//! After each crash, `status` and `sync` must leave:
//!
//! - both stores agreeing, on the old password before shadow's rename and on
//!   the new one from the rename on (pam_unix through `pamtester`, and
//!   `verify`, say the same);
//! - every other line of `/etc/shadow`, and all of `/etc/passwd`, byte-identical;
//! - no temporary, no `shadow.lock`, no intent behind;
//! - the next change working as usual.

use super::harness::Sandbox;
use super::{NEW, OLD, OTHER};
use credsync_core::fault;

/// SIGABRT, as `abort()` raises it.
const ABORTED: i32 = 6;
const THIRD: &str = "Third+Pass-3003";

/// Which password a crash at each point leaves, once `sync` has run.
const SURVIVOR: [(&str, Password); 11] = [
    ("locked", Password::Old),
    ("intent-recorded", Password::Old),
    ("backup-written", Password::Old),
    ("backup-synced", Password::Old),
    ("backup-renamed", Password::Old),
    ("shadow-temp-written", Password::Old),
    ("shadow-temp-synced", Password::Old),
    ("shadow-renamed", Password::New),
    ("directory-synced", Password::New),
    ("record-uncommitted", Password::New),
    ("intent-cleared", Password::New),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Password {
    Old,
    New,
}

/// Every fault point the build knows has a case here, and no other.
#[test]
fn every_fault_point_has_a_crash_case() {
    let covered: Vec<&str> = SURVIVOR.iter().map(|(point, _)| *point).collect();
    assert_eq!(covered, fault::POINTS);
}

/// The world before a crash: alice (changing) and bob (a bystander), both
/// managed, and the bytes every check compares against.
struct Before {
    sandbox: Sandbox,
    shadow: Vec<u8>,
    passwd: Vec<u8>,
}

fn two_managed_users() -> Before {
    let sandbox = Sandbox::new();
    sandbox.useradd("alice");
    sandbox.useradd("bob");
    sandbox.enrol("alice", OLD);
    sandbox.enrol("bob", OTHER);
    let shadow = sandbox.shadow();
    let passwd = std::fs::read(sandbox.etc("passwd")).unwrap();
    Before {
        sandbox,
        shadow,
        passwd,
    }
}

/// Kills `recover alice` at `point`, then runs `status` and `sync`.
fn crash_then_sync(before: &Before, point: &str) {
    let sandbox = &before.sandbox;
    let signal = sandbox.credsync_killed(
        &[(fault::VARIABLE, point)],
        &["recover", "alice", "--stdin"],
        &format!("{NEW}\n"),
    );
    assert_eq!(signal, ABORTED, "credsync did not abort at {point}");
    sandbox
        .credsync(&["status"], "")
        .expect_ok(&format!("status after a crash at {point}"));
    sandbox
        .credsync(&["sync"], "")
        .expect_ok(&format!("sync after a crash at {point}"));
}

/// The checks every crash must pass, `survivor` being alice's password.
#[track_caller]
fn assert_whole(before: &Before, point: &str, survivor: Password) {
    let sandbox = &before.sandbox;
    let (kept, lost) = match survivor {
        Password::Old => (OLD, NEW),
        Password::New => (NEW, OLD),
    };
    assert!(
        sandbox.pamtester("alice", kept),
        "after a crash at {point}, pam_unix rejects the {survivor:?} password"
    );
    assert!(
        !sandbox.pamtester("alice", lost),
        "after a crash at {point}, pam_unix accepts the other password"
    );
    assert_eq!(
        sandbox.verify("alice", kept),
        0,
        "after a crash at {point}, the record rejects the {survivor:?} password"
    );
    assert_eq!(
        sandbox.verify("alice", lost),
        1,
        "after a crash at {point}, the record accepts the other password"
    );
    for user in ["alice", "bob"] {
        assert_eq!(
            sandbox.state(user).as_deref(),
            Some("in-sync"),
            "after a crash at {point}, {user}'s stores disagree"
        );
    }
    assert!(sandbox.pamtester("bob", OTHER), "bob's password changed");

    assert_eq!(
        lines_except(&sandbox.shadow(), "alice"),
        lines_except(&before.shadow, "alice"),
        "a crash at {point} altered another line of /etc/shadow"
    );
    assert_eq!(
        std::fs::read(sandbox.etc("passwd")).unwrap(),
        before.passwd,
        "a crash at {point} altered /etc/passwd"
    );
    let leftovers: Vec<String> = std::fs::read_dir(sandbox.etc(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            name.starts_with("shadow") && !["shadow", "shadow-"].contains(&name.as_str())
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "after a crash at {point} and a sync, /etc still holds {leftovers:?}"
    );
    assert_eq!(
        intents_left(sandbox),
        "0",
        "after a crash at {point} and a sync, an intent remains"
    );
}

/// `user`'s line removed: what must not change when only `user` changes.
fn lines_except(file: &[u8], user: &str) -> Vec<Vec<u8>> {
    let prefix = format!("{user}:");
    file.split_inclusive(|&b| b == b'\n')
        .filter(|line| !line.starts_with(prefix.as_bytes()))
        .map(<[u8]>::to_vec)
        .collect()
}

/// The number of unfinished intents in the store, read with sqlite3.
fn intents_left(sandbox: &Sandbox) -> String {
    sandbox
        .root_sh(
            "sqlite3 -readonly /var/lib/credsync/credsync.db 'SELECT count(*) FROM intent'",
            "",
        )
        .expect_ok("sqlite3 counts the intents")
        .stdout
        .trim()
        .to_owned()
}

/// After the crash and the sync, the next change goes through as usual.
#[track_caller]
fn assert_next_change_works(before: &Before, survivor: Password) {
    let sandbox = &before.sandbox;
    sandbox
        .credsync(&["recover", "alice", "--stdin"], &format!("{THIRD}\n"))
        .expect_ok("the change after the crash");
    let previous = match survivor {
        Password::Old => OLD,
        Password::New => NEW,
    };
    sandbox.assert_only_accepts("alice", THIRD, previous);
}

macro_rules! crash_at {
    ($($test:ident: $point:literal,)*) => {$(
        #[doc = concat!("A crash at `", $point, "` leaves both stores whole.")]
        #[test]
        fn $test() {
            let survivor = SURVIVOR
                .iter()
                .find(|(point, _)| *point == $point)
                .expect("listed in SURVIVOR")
                .1;
            let before = two_managed_users();
            crash_then_sync(&before, $point);
            assert_whole(&before, $point, survivor);
            assert_next_change_works(&before, survivor);
        }
    )*};
}

crash_at! {
    a_crash_once_locked: "locked",
    a_crash_after_the_intent: "intent-recorded",
    a_crash_with_the_backup_written: "backup-written",
    a_crash_with_the_backup_synced: "backup-synced",
    a_crash_with_the_backup_renamed: "backup-renamed",
    a_crash_with_the_new_shadow_written: "shadow-temp-written",
    a_crash_with_the_new_shadow_synced: "shadow-temp-synced",
    a_crash_with_the_new_shadow_renamed: "shadow-renamed",
    a_crash_with_the_directory_synced: "directory-synced",
    a_crash_before_the_record_commits: "record-uncommitted",
    a_crash_after_the_intent_is_cleared: "intent-cleared",
}

/// A crash while finishing a crashed change: the recovery itself is
/// interrupted before its transaction commits, and the next run finishes it.
#[test]
fn a_crash_during_recovery_is_recovered_too() {
    let before = two_managed_users();
    let sandbox = &before.sandbox;
    let signal = sandbox.credsync_killed(
        &[(fault::VARIABLE, "shadow-renamed")],
        &["recover", "alice", "--stdin"],
        &format!("{NEW}\n"),
    );
    assert_eq!(signal, ABORTED);
    let signal = sandbox.credsync_killed(&[(fault::VARIABLE, "record-uncommitted")], &["sync"], "");
    assert_eq!(signal, ABORTED, "sync did not reach the recovery's commit");
    sandbox.credsync(&["sync"], "").expect_ok("the second sync");
    assert_whole(&before, "record-uncommitted during recovery", Password::New);
}

/// A crash while `sync` puts a rolled-back shadow right: shadow holds the old
/// or the restored line, never a torn file, and the next `sync` restores it.
#[test]
fn a_crash_while_sync_restores_shadow() {
    let before = two_managed_users();
    let sandbox = &before.sandbox;
    sandbox
        .credsync(&["recover", "alice", "--stdin"], &format!("{NEW}\n"))
        .expect_ok("recover");
    let changed = sandbox.shadow();
    // An image restore brings back the file from before the change, with
    // an older change day so that the record is the newer side.
    let rolled_back = with_change_day(&before.shadow, "alice", 1);
    sandbox.put_shadow(&rolled_back);
    assert_eq!(sandbox.state("alice").as_deref(), Some("record-newer"));

    for point in [
        "backup-written",
        "shadow-temp-written",
        "shadow-temp-synced",
    ] {
        let signal = sandbox.credsync_killed(&[(fault::VARIABLE, point)], &["sync"], "");
        assert_eq!(signal, ABORTED, "sync did not abort at {point}");
        assert_eq!(
            sandbox.shadow(),
            rolled_back,
            "a crash at {point} changed shadow"
        );
    }
    sandbox.credsync(&["sync"], "").expect_ok("sync");
    assert_eq!(
        lines_except(&sandbox.shadow(), "alice"),
        lines_except(&changed, "alice")
    );
    assert_whole(&before, "a restoring sync", Password::New);
}

/// `user`'s last-change field set to `day`.
fn with_change_day(file: &[u8], user: &str, day: i64) -> Vec<u8> {
    let text = String::from_utf8(file.to_vec()).expect("shadow is UTF-8");
    text.split_inclusive('\n')
        .map(|line| {
            let mut fields: Vec<String> = line.split(':').map(str::to_owned).collect();
            if fields[0] == user {
                fields[2] = day.to_string();
            }
            fields.join(":")
        })
        .collect::<String>()
        .into_bytes()
}
