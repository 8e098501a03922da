//! System calls that fail in the middle of a change. A small LD_PRELOAD shim
//! (`tests/shim/failsys.c`, compiled here with `cc`) makes one kind of call —
//! `write`, `fsync`, `rename`, `link`, an `open` for writing, `unlink` — fail
//! for one path, the way shadow-utils' own failure tests do, while everything
//! else runs for real.
//!
//! Before `/etc/shadow` is replaced, whichever call fails on whichever file,
//! credsync must print one line, exit 3 ("unexpected failure", README "Exit
//! codes") and leave both stores as they were: the same bytes in
//! `/etc/shadow`, the same `status --json`, the same answers from `verify`,
//! no temporary or lock file left behind, and a plain `sync` afterwards
//! works as if the failure had never happened. Once `/etc/shadow` is
//! replaced the change can't be undone: a failure there must say so, and the
//! next `sync` finishes it.

use super::fixture::{Fixture, Root, linux_hash, today};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

const OLD: &str = "Old#Pass1";
const NEW: &str = "N3w#Passw0rd";
const BOB_OLD: &str = "Bob#Pass1";
const BOB_NEW: &str = "Bob#Pass2";
/// Set in Linux behind credsync's back.
const OUTSIDE: &str = "Outside#Pass1";
/// Exit code 3, "unexpected failure" (README "Exit codes").
const FAILURE: i32 = 3;

// ---- the shim ------------------------------------------------------------------------

/// The shim, compiled once per test run. Without a C compiler every test
/// here fails, saying so.
fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| crate::shim::build("failsys", &["-ldl", "-lpthread"]))
}

/// One kind of call made to fail for the paths a pattern names (see
/// failsys.c for the families and the pattern syntax).
#[derive(Debug, Clone, Copy)]
struct Fault {
    call: &'static str,
    path: &'static str,
    /// Nothing fails until a `family:pattern` call has succeeded.
    after: Option<&'static str>,
    /// What the one line on stderr must say about the cause.
    says: &'static str,
}

const fn fault(call: &'static str, path: &'static str, says: &'static str) -> Fault {
    Fault {
        call,
        path,
        after: None,
        says,
    }
}

const NO_SPACE: &str = "No space left on device";
const IO_ERROR: &str = "Input/output error";

/// Taking `/etc/shadow.lock`: the file holding our PID, and the link to it.
const LOCK_FAULTS: &[Fault] = &[
    fault("write", "*/etc/shadow.[0-9]*", NO_SPACE),
    fault("fsync", "*/etc/shadow.[0-9]*", IO_ERROR),
    fault("link", "*/etc/shadow.lock", IO_ERROR),
];

/// Writing the backup `/etc/shadow-` through its temporary `/etc/shadow-+`.
const BACKUP_FAULTS: &[Fault] = &[
    fault("open", "*/etc/shadow-+", NO_SPACE),
    fault("write", "*/etc/shadow-+", NO_SPACE),
    fault("fsync", "*/etc/shadow-+", IO_ERROR),
    fault("rename", "*/etc/shadow-", IO_ERROR),
];

/// Writing the new `/etc/shadow` through its temporary `/etc/shadow+`.
const NEW_SHADOW_FAULTS: &[Fault] = &[
    fault("open", "*/etc/shadow+", NO_SPACE),
    fault("write", "*/etc/shadow+", NO_SPACE),
    fault("fsync", "*/etc/shadow+", IO_ERROR),
    fault("rename", "*/etc/shadow+", IO_ERROR),
];

/// The record's first write of a change (the intent, or an adoption): the
/// database's write-ahead log.
const RECORD_FAULTS: &[Fault] = &[
    fault(
        "write",
        "*/var/lib/credsync/credsync.db-wal",
        "disk is full",
    ),
    fault(
        "fsync",
        "*/var/lib/credsync/credsync.db-wal",
        "disk I/O error",
    ),
];

/// What a run under the shim showed, and the failures the shim injected.
struct Run {
    output: Output,
    injected: String,
}

impl Run {
    fn code(&self) -> i32 {
        self.output
            .status
            .code()
            .unwrap_or_else(|| panic!("credsync was killed: {:?}\n{self}", self.output.status))
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The shim really failed a call: a test that injected nothing proves nothing.
    #[track_caller]
    fn assert_injected(&self, what: &str) {
        assert!(
            !self.injected.is_empty(),
            "{what}: the shim failed no call, so this proves nothing\n{self}"
        );
    }

    /// One line on stderr, naming the cause, the documented exit code, and no
    /// claim of success.
    #[track_caller]
    fn assert_failed_with(&self, code: i32, says: &str, what: &str) {
        assert_eq!(self.code(), code, "{what}: exit code\n{self}");
        let stderr = self.stderr();
        assert_eq!(
            stderr.lines().count(),
            1,
            "{what}: not one line on stderr\n{self}"
        );
        assert!(
            stderr.starts_with("credsync: ") && stderr.contains(says),
            "{what}: the message does not say {says:?}\n{self}"
        );
        assert!(
            !self.stdout().contains("updated successfully"),
            "{what}: claims success\n{self}"
        );
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- injected ---\n{}--- stdout ---\n{}--- stderr ---\n{}",
            self.injected,
            self.stdout(),
            self.stderr()
        )
    }
}

/// `credsync --root DIR ARGS...` with `stdin`, as root, with `fault` injected.
fn run_failing(root: &Root, fault: Fault, args: &[&str], stdin: &str) -> Run {
    let log = root.file("failsys.log");
    let _ = fs::remove_file(&log);
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("credsync"));
    cmd.arg("--root")
        .arg(root.path())
        .args(args)
        .env("LD_PRELOAD", shim())
        .env("FAILSYS_CALL", fault.call)
        .env("FAILSYS_PATH", fault.path)
        .env("FAILSYS_LOG", &log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(after) = fault.after {
        cmd.env("FAILSYS_AFTER", after);
    }
    let mut child = cmd.spawn().expect("start credsync");
    // A command that fails before reading its input is not an error here.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    Run {
        output,
        injected: fs::read_to_string(&log).unwrap_or_default(),
    }
}

// ---- what a user or an administrator can see -----------------------------------------

/// Everything observable about both stores, for the passwords of a story.
#[derive(Debug, PartialEq)]
struct Seen {
    shadow: Vec<u8>,
    status: serde_json::Value,
    /// `verify USER` exit codes, one per password tried.
    verify: Vec<(String, String, i32)>,
    /// The names in `etc/`: a temporary or lock file left behind shows here.
    etc: Vec<String>,
    /// alice's pam_faillock tally, which only a successful `recover` clears.
    tally: Option<Vec<u8>>,
}

/// What the stores look like now. `status` is read before `verify`, which
/// finishes an interrupted change.
fn look(root: &Root, tried: &[(&str, &str)]) -> Seen {
    let status = root.status_json();
    let mut etc: Vec<String> = fs::read_dir(root.file("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    etc.sort();
    Seen {
        shadow: fs::read(root.file("etc/shadow")).unwrap(),
        status,
        verify: tried
            .iter()
            .map(|(user, password)| {
                (
                    (*user).to_owned(),
                    (*password).to_owned(),
                    root.verify(user, password),
                )
            })
            .collect(),
        etc,
        tally: fs::read(tally(root)).ok(),
    }
}

fn tally(root: &Root) -> PathBuf {
    root.file("var/run/faillock/alice")
}

/// A lock or temporary file of the shadow protocol, if `name` is one.
fn is_leftover(name: &str) -> bool {
    name == "shadow+"
        || name == "shadow-+"
        || name == "shadow.lock"
        || name
            .strip_prefix("shadow.")
            .is_some_and(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
}

#[track_caller]
fn assert_no_leftovers(root: &Root, what: &str) {
    let left: Vec<String> = fs::read_dir(root.file("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| is_leftover(name))
        .collect();
    assert!(left.is_empty(), "{what}: left behind in etc/: {left:?}");
}

// ---- the stories -----------------------------------------------------------------------

/// A command on a root prepared for it, and the passwords whose `verify`
/// answers show which one each store holds.
struct Story {
    name: &'static str,
    root: Root,
    args: &'static [&'static str],
    stdin: String,
    tried: Vec<(&'static str, &'static str)>,
}

/// alice (OLD) and bob (BOB_OLD), both managed and in sync, and a failure
/// tally for alice.
fn enrolled() -> Root {
    let root = Fixture::new()
        .user("alice", OLD)
        .user("bob", BOB_OLD)
        .build();
    root.run(&["import"], &format!("alice:{OLD}\nbob:{BOB_OLD}\n"))
        .success();
    fs::create_dir_all(tally(&root).parent().unwrap()).unwrap();
    fs::write(tally(&root), [7u8; 64]).unwrap();
    root
}

fn alice_tried() -> Vec<(&'static str, &'static str)> {
    vec![("alice", OLD), ("alice", NEW)]
}

/// The password changes, each replacing shadow and writing the record.
fn changes() -> Vec<Story> {
    vec![
        Story {
            name: "passwd",
            root: enrolled(),
            args: &["passwd", "alice", "--stdin"],
            stdin: format!("{NEW}\n"),
            tried: alice_tried(),
        },
        Story {
            name: "recover",
            root: enrolled(),
            args: &["recover", "alice", "--stdin"],
            stdin: format!("{NEW}\n"),
            tried: alice_tried(),
        },
        Story {
            name: "import",
            root: enrolled(),
            args: &["import"],
            stdin: format!("alice:{NEW}\nbob:{BOB_NEW}\n"),
            tried: vec![
                ("alice", OLD),
                ("alice", NEW),
                ("bob", BOB_OLD),
                ("bob", BOB_NEW),
            ],
        },
    ]
}

/// `sync` restoring bob's password into a shadow file rolled back to before
/// his last change: it replaces shadow.
fn sync_restoring() -> Story {
    let root = enrolled();
    let image = root.shadow();
    root.run(&["passwd", "bob", "--stdin"], &format!("{BOB_NEW}\n"))
        .success();
    root.set_shadow(&image);
    assert_eq!(root.state_of("bob"), "record-newer");
    Story {
        name: "sync (restoring)",
        root,
        args: &["sync"],
        stdin: String::new(),
        tried: vec![("bob", BOB_OLD), ("bob", BOB_NEW)],
    }
}

/// `sync` adopting a password set in Linux: it writes the record only.
fn sync_adopting() -> Story {
    let root = enrolled();
    root.set_shadow_entry("alice", &linux_hash(OUTSIDE), &today().to_string());
    assert_eq!(root.state_of("alice"), "linux-newer");
    Story {
        name: "sync (adopting)",
        root,
        args: &["sync"],
        stdin: String::new(),
        tried: vec![("alice", OLD), ("alice", OUTSIDE)],
    }
}

/// Runs `story` with `fault` injected and proves the failure was clean: one
/// line, exit 3, both stores as they were, nothing left behind; then a plain
/// `sync` succeeds, leaves no lock or temporary either, and brings every
/// user of the story in sync (with nothing to do after a failed change).
fn fails_cleanly(story: Story, fault: Fault) {
    let what = format!(
        "{} with {} failing on {}",
        story.name, fault.call, fault.path
    );
    let root = &story.root;
    let before = look(root, &story.tried);

    let run = run_failing(root, fault, story.args, &story.stdin);
    run.assert_injected(&what);
    run.assert_failed_with(FAILURE, fault.says, &what);
    assert_eq!(
        look(root, &story.tried),
        before,
        "{what}: the stores changed\n{run}"
    );

    root.run(&["sync"], "").success();
    assert_no_leftovers(root, &format!("{what}, then sync"));
    for (user, _) in &story.tried {
        assert_eq!(root.state_of(user), "in-sync", "{what}, then sync");
    }
    if story.args[0] != "sync" {
        assert_eq!(
            look(root, &story.tried),
            before,
            "{what}: the sync after it changed something"
        );
    }
}

/// Every change, and a `sync` that restores shadow: the stories a fault on
/// the shadow side must leave clean.
fn changes_and_restoring_sync() -> Vec<Story> {
    let mut stories = changes();
    stories.push(sync_restoring());
    stories
}

/// Every change, and a `sync` that adopts into the record.
fn changes_and_adopting_sync() -> Vec<Story> {
    let mut stories = changes();
    stories.push(sync_adopting());
    stories
}

#[track_caller]
fn each_fails_cleanly(faults: &[Fault], stories: impl Fn() -> Vec<Story>) {
    for &fault in faults {
        for story in stories() {
            fails_cleanly(story, fault);
        }
    }
}

// ---- failures before /etc/shadow is replaced -----------------------------------------------

/// The shadow lock can't be taken (its PID file can't be written or synced,
/// or the link fails): nothing is written anywhere.
#[test]
fn a_lock_that_cannot_be_taken_changes_nothing() {
    each_fails_cleanly(LOCK_FAULTS, changes_and_restoring_sync);
}

/// The backup `/etc/shadow-` can't be created, written, synced or renamed
/// into place: `/etc/shadow` and the record stay as they were.
#[test]
fn a_backup_that_cannot_be_written_changes_nothing() {
    each_fails_cleanly(BACKUP_FAULTS, changes_and_restoring_sync);
}

/// The new `/etc/shadow+` can't be created, written, synced or renamed over
/// `/etc/shadow`: the intent is abandoned and both stores stay as they were.
#[test]
fn a_new_shadow_that_cannot_be_written_changes_nothing() {
    each_fails_cleanly(NEW_SHADOW_FAULTS, changes_and_restoring_sync);
}

/// The record's log can't be written or synced when a change records its
/// intent, or when `sync` adopts a Linux change: shadow is never touched.
#[test]
fn a_record_that_cannot_be_written_changes_nothing() {
    each_fails_cleanly(RECORD_FAULTS, changes_and_adopting_sync);
}

/// A failed recovery leaves pam_faillock's tally alone: the lockout clears
/// only with the password that goes with it.
#[test]
fn a_failed_recovery_keeps_the_failure_tally() {
    let root = enrolled();
    let fault = fault("rename", "*/etc/shadow+", IO_ERROR);
    let run = run_failing(
        &root,
        fault,
        &["recover", "alice", "--stdin"],
        &format!("{NEW}\n"),
    );
    run.assert_injected("recover");
    run.assert_failed_with(FAILURE, IO_ERROR, "recover");
    assert_eq!(
        fs::read(tally(&root)).unwrap(),
        [7u8; 64],
        "the tally was cleared\n{run}"
    );
}

/// Two failures at once, as on a disk that is full for both stores: the new
/// shadow can't be written, and then the intent can't be deleted either.
/// Shadow is untouched and the one line names the cause, the new shadow that
/// could not be written (not the intent that failed after it); the leftover
/// intent shows as `pending` until the next command, which drops it (shadow
/// still holds the old hash), and `status` is then exactly as before.
#[test]
fn an_intent_that_cannot_be_abandoned_is_dropped_by_the_next_command() {
    let root = enrolled();
    let tried = alice_tried();
    let before = look(&root, &tried);
    let fault = Fault {
        call: "write",
        path: "*/etc/shadow+|*/var/lib/credsync/credsync.db-wal",
        after: Some("rename:*/etc/shadow-"),
        says: "cannot write",
    };
    let run = run_failing(
        &root,
        fault,
        &["passwd", "alice", "--stdin"],
        &format!("{NEW}\n"),
    );
    assert!(
        run.injected.contains("shadow+") && run.injected.contains("credsync.db-wal"),
        "not both writes failed\n{run}"
    );
    run.assert_failed_with(FAILURE, fault.says, "passwd");
    assert!(run.stderr().contains("shadow+"), "not the cause\n{run}");
    assert_eq!(root.shadow().as_bytes(), before.shadow, "shadow changed");
    assert_eq!(root.state_of("alice"), "pending");

    root.run(&["sync"], "").success();
    assert_eq!(look(&root, &tried), before, "the stores changed\n{run}");
}

// ---- failures after /etc/shadow is replaced ---------------------------------------------

/// The record can't be updated after `/etc/shadow` took the new password:
/// that can't be undone, so the one line says shadow changed and to run
/// `sync`; `verify` already follows Linux, and `sync` completes the record.
#[test]
fn a_record_that_fails_after_shadow_was_replaced_is_finished_by_sync() {
    for call in ["write", "fsync"] {
        for story in changes() {
            let fault = Fault {
                call,
                path: "*/var/lib/credsync/credsync.db-wal",
                after: Some("rename:*/etc/shadow"),
                says: "/etc/shadow was changed but the record could not be updated",
            };
            let what = format!(
                "{} with {call} failing on the log after the rename",
                story.name
            );
            let root = &story.root;
            let shadow_before = root.shadow();

            let run = run_failing(root, fault, story.args, &story.stdin);
            run.assert_injected(&what);
            run.assert_failed_with(FAILURE, fault.says, &what);
            assert!(
                run.stderr().contains("run 'credsync sync'"),
                "{what}: no hint what to do\n{run}"
            );
            assert_ne!(root.shadow(), shadow_before, "{what}: shadow not replaced");
            assert_no_leftovers(root, &what);

            root.run(&["sync"], "").success();
            assert_eq!(root.state_of("alice"), "in-sync", "{what}");
            assert_eq!(root.verify("alice", NEW), 0, "{what}");
            assert_eq!(root.verify("alice", OLD), 1, "{what}");
            assert_no_leftovers(root, &what);
        }
    }
}

/// Once the change is committed, a failure to checkpoint the log into the
/// database file, or to sync a directory, is no failure of the change: it
/// succeeds, and the record keeps the new password for the next command.
#[test]
fn a_failure_after_the_change_is_committed_loses_nothing() {
    let faults = [
        fault("write", "*/var/lib/credsync/credsync.db", ""),
        fault("fsync", "*/var/lib/credsync/credsync.db", ""),
        fault("fsync", "*/etc", ""),
    ];
    for fault in faults {
        let what = format!("{} failing on {}", fault.call, fault.path);
        let root = enrolled();
        let run = run_failing(
            &root,
            fault,
            &["passwd", "alice", "--stdin"],
            &format!("{NEW}\n"),
        );
        run.assert_injected(&what);
        assert_eq!(run.code(), 0, "{what}\n{run}");
        assert!(
            run.stdout().contains("Password updated successfully"),
            "{what}\n{run}"
        );
        assert_eq!(root.state_of("alice"), "in-sync", "{what}");
        assert_eq!(root.verify("alice", NEW), 0, "{what}");
        assert_eq!(root.verify("alice", OLD), 1, "{what}");
        assert_no_leftovers(&root, &what);
    }
}

/// `/etc/shadow.lock` can't be removed when a change ends: the change stands,
/// and the next run takes the lock over (its process is gone) and removes it.
#[test]
fn a_lock_file_that_cannot_be_removed_is_taken_over_by_the_next_run() {
    let root = enrolled();
    let fault = fault("unlink", "*/etc/shadow.lock", "");
    let run = run_failing(
        &root,
        fault,
        &["passwd", "alice", "--stdin"],
        &format!("{NEW}\n"),
    );
    run.assert_injected("unlink of shadow.lock");
    assert_eq!(run.code(), 0, "{run}");
    assert!(
        root.file("etc/shadow.lock").exists(),
        "the shim did not keep the lock file\n{run}"
    );

    root.run(&["sync"], "").success();
    assert_no_leftovers(&root, "the next sync");
    assert_eq!(root.verify("alice", NEW), 0);
}

/// The failure tally can't be cleared after a recovery: both stores have the
/// new password, and the one line says exactly that.
#[test]
fn a_tally_that_cannot_be_cleared_is_reported_after_the_recovery() {
    let root = enrolled();
    let fault = fault(
        "open",
        "*/var/run/faillock/alice",
        "the password was recovered, but the failure tally could not be cleared",
    );
    let run = run_failing(
        &root,
        fault,
        &["recover", "alice", "--stdin"],
        &format!("{NEW}\n"),
    );
    run.assert_injected("recover");
    run.assert_failed_with(FAILURE, fault.says, "recover");
    assert_eq!(root.state_of("alice"), "in-sync");
    assert_eq!(root.verify("alice", NEW), 0);
    assert_eq!(fs::read(tally(&root)).unwrap(), [7u8; 64]);
}

// ---- the store on a disk that refuses writes -------------------------------------------

/// The store can't be created on first use, or its log can't be opened or
/// grown: that is a full or failing disk, not a corrupt store. The message
/// must not send the administrator to restore a backup of a healthy (or
/// not yet existing) store, and the exit code is 3, not 7; once the disk
/// works again, the same command succeeds.
#[test]
fn a_store_on_a_failing_disk_is_not_called_corrupt() {
    let on_first_use = [
        fault("open", "*/var/lib/credsync/credsync.db", NO_SPACE),
        fault("write", "*/var/lib/credsync/credsync.db", "disk is full"),
        fault(
            "write",
            "*/var/lib/credsync/credsync.db-journal",
            "disk is full",
        ),
        fault("open", "*/var/lib/credsync/credsync.db-wal", ""),
    ];
    let on_existing = [
        fault("open", "*/var/lib/credsync/credsync.db-wal", ""),
        fault("open", "*/var/lib/credsync/credsync.db-shm", ""),
        fault("write", "*/var/lib/credsync/credsync.db-shm", ""),
    ];
    let cases = on_first_use
        .iter()
        .map(|f| (*f, false))
        .chain(on_existing.iter().map(|f| (*f, true)));
    for (fault, existing) in cases {
        let what = format!(
            "{} failing on {} ({} store)",
            fault.call,
            fault.path,
            if existing { "existing" } else { "new" }
        );
        let root = if existing {
            enrolled()
        } else {
            Fixture::new().user("alice", OLD).build()
        };
        let before = root.shadow();
        let run = run_failing(
            &root,
            fault,
            &["passwd", "alice", "--stdin"],
            &format!("{NEW}\n"),
        );
        run.assert_injected(&what);
        run.assert_failed_with(FAILURE, fault.says, &what);
        assert!(
            !run.stderr().contains("corrupt") && !run.stderr().contains("backup"),
            "{what}: a disk failure reported as a corrupt store\n{run}"
        );
        assert_eq!(root.shadow(), before, "{what}: shadow changed");
        assert_no_leftovers(&root, &what);

        root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
            .success();
        assert_eq!(root.verify("alice", NEW), 0, "{what}");
    }
}

// ---- the shim itself -----------------------------------------------------------------------

/// The shim fails nothing it is not told to: with a pattern that names no
/// file credsync touches, a change succeeds and nothing is injected. (Every
/// other test checks that its fault was injected.)
#[test]
fn the_shim_changes_nothing_it_is_not_told_to() {
    let root = enrolled();
    let fault = fault("write,fsync,rename,link,open,unlink", "*/no-such-file", "");
    let run = run_failing(
        &root,
        fault,
        &["passwd", "alice", "--stdin"],
        &format!("{NEW}\n"),
    );
    assert_eq!(run.code(), 0, "{run}");
    assert!(run.injected.is_empty(), "{run}");
    assert_eq!(root.verify("alice", NEW), 0);
}
