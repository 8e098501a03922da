//! The built binary driven against throw-away roots (`--root`): every command,
//! the restart scenarios, and the bad inputs that must change nothing.

mod fixture;
#[path = "cli/hostile.rs"]
mod hostile;
#[path = "cli/kills.rs"]
mod kills;
#[path = "cli/lockout.rs"]
mod lockout;
#[path = "cli/policy.rs"]
mod policy;
#[path = "common/shim.rs"]
mod shim;
#[path = "cli/syscalls.rs"]
mod syscalls;

use fixture::{Fixture, linux_hash, today};
use predicates::str::contains;
use std::fs;

const NEW: &str = "N3w#Passw0rd";

// ---- changing a password ------------------------------------------------------

#[test]
fn root_changes_a_password_in_both_stores() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("bob", "Bob#Pass1")
        .build();
    let before = root.shadow();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .success()
        .stdout(contains("Password updated successfully"));

    let hash = root.shadow_field("alice", 2);
    assert!(hash.starts_with("$6$"), "configured sha512: {hash}");
    assert_eq!(root.shadow_field("alice", 3), today().to_string());
    // Every other line is byte-identical.
    let others = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("alice:"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(others(&root.shadow()), others(&before));
    // Owner and mode kept; the previous file is the backup.
    assert_eq!(root.mode("etc/shadow"), (0, 42, 0o640));
    assert_eq!(
        fs::read_to_string(root.file("etc/shadow-")).unwrap(),
        before
    );
    // The record accepts the new password, not the old one.
    assert_eq!(root.verify("alice", NEW), 0);
    assert_eq!(root.verify("alice", "Old#Pass1"), 1);
    assert_eq!(root.state_of("alice"), "in-sync");
}

#[test]
fn untouched_lines_stay_byte_identical_even_when_odd() {
    let odd = [
        "# a comment",
        "",
        "+nisuser::::::::",
        "short:line",
        "tab\tuser:x:1:2:3:4:5:6:7:8",
    ];
    let mut fixture = Fixture::new().user("alice", "Old#Pass1");
    for line in odd {
        fixture = fixture.shadow_line(line);
    }
    let root = fixture.build();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    for line in odd {
        assert!(root.shadow().lines().any(|l| l == line), "{line:?} kept");
    }
}

#[test]
fn the_hash_method_follows_the_pam_stack() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config("[argon2]\nmemory_kib = 64\niterations = 1\n")
        .pam_method("yescrypt")
        .build();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    assert!(root.shadow_field("alice", 2).starts_with("$y$"));
}

#[test]
fn a_change_bumps_the_session_epoch_and_the_json_says_so() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    for n in 1..=2 {
        root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}{n}\n"))
            .success();
    }
    let status = root.status_json();
    assert_eq!(status[0]["user"], "alice");
    assert_eq!(status[0]["session_epoch"], 2);
    assert_eq!(status[0]["source"], "passwd");
    assert_eq!(status[0]["changed_by"], "root");
}

#[test]
fn an_ordinary_user_changes_their_own_password_with_the_current_one() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    root.run_as(
        1000,
        &["set", "password", "--stdin"],
        &format!("Old#Pass1\n{NEW}\n"),
    )
    .success()
    .stdout(contains(
        "Changing the current password will log this user out",
    ))
    .stdout(contains("✔ Modifying password..."));
    assert_eq!(fixture_verify_as(&root, 1000, "alice", NEW), 0);
    assert!(linux_accepts(&root, "alice", NEW));
}

#[test]
fn a_wrong_current_password_changes_nothing() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let before = root.shadow();
    root.run_as(
        1000,
        &["passwd", "--stdin"],
        &format!("Wrong#Pass1\n{NEW}\n"),
    )
    .code(1)
    .stderr(contains("authentication failure"));
    assert_eq!(root.shadow(), before);
    assert!(!root.file("etc/shadow-").exists());
}

#[test]
fn an_ordinary_user_may_not_change_someone_else() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("bob", "Bob#Pass1")
        .build();
    let before = root.shadow();
    root.run_as(
        1000,
        &["passwd", "bob", "--stdin"],
        &format!("Old#Pass1\n{NEW}\n"),
    )
    .code(1)
    .stderr(contains("only your own password"));
    root.run_as(1000, &["recover", "bob", "--stdin"], &format!("{NEW}\n"))
        .code(1);
    root.run_as(1000, &["sync"], "").code(1);
    root.run_as(1000, &["import"], &format!("bob:{NEW}\n"))
        .code(1);
    root.run_as(1000, &["status", "bob"], "").code(1);
    assert_eq!(root.shadow(), before);
}

// ---- recovery ---------------------------------------------------------------------

#[test]
fn recovery_sets_both_stores_and_clears_the_failure_tally() {
    let root = Fixture::new().locked_user("admin").build();
    let tally = root.file("var/run/faillock/admin");
    fs::create_dir_all(tally.parent().unwrap()).unwrap();
    fs::write(&tally, [7u8; 32]).unwrap();
    root.run(&["recover", "admin", "--stdin"], &format!("{NEW}\n"))
        .success();
    assert!(linux_accepts(&root, "admin", NEW));
    assert_eq!(root.verify("admin", NEW), 0);
    assert_eq!(fs::metadata(&tally).unwrap().len(), 0);
    assert_eq!(root.status_json()[0]["source"], "recover");
}

#[test]
fn recovery_with_expire_forces_a_change_at_next_login() {
    let root = Fixture::new().user("admin", "Old#Pass1").build();
    root.run(
        &["recover", "admin", "--stdin", "--expire"],
        &format!("{NEW}\n"),
    )
    .success();
    assert_eq!(root.shadow_field("admin", 3), "0");
    assert_eq!(root.verify("admin", NEW), 11, "right password, must change");
    assert_eq!(root.verify("admin", "Wrong#1"), 1);
    assert_eq!(root.state_of("admin"), "in-sync");
}

// ---- restarts: sync -----------------------------------------------------------------

#[test]
fn an_outside_change_is_adopted_and_verify_accepts_it_at_once() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    // `chpasswd` later the same day, outside credsync.
    root.set_shadow_entry("alice", &linux_hash("Outside#Pass1"), &today().to_string());
    assert_eq!(root.state_of("alice"), "linux-newer");
    root.run(&["sync"], "")
        .success()
        .stdout(contains("alice: linux-newer: adopted"));
    assert_eq!(root.state_of("alice"), "in-sync");
    assert_eq!(root.verify("alice", "Outside#Pass1"), 0);
    assert_eq!(root.verify("alice", NEW), 1);
    // The first successful verify derived the Argon2id hash again.
    assert_eq!(root.status_json()[0]["app_hash_pending"], false);
    assert!(
        linux_accepts(&root, "alice", "Outside#Pass1"),
        "sync left Linux alone"
    );
}

#[test]
fn a_rolled_back_shadow_is_restored_from_the_record() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let old_image = root.shadow();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    root.set_shadow(&old_image);
    assert_eq!(root.state_of("alice"), "record-newer");
    root.run(&["sync"], "")
        .success()
        .stdout(contains("alice: record-newer: restored"));
    assert!(linux_accepts(&root, "alice", NEW));
    assert_eq!(root.verify("alice", NEW), 0);
    assert_eq!(root.shadow_field("alice", 3), today().to_string());
    assert_eq!(root.state_of("alice"), "in-sync");
}

#[test]
fn dry_run_reports_without_writing() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let old_image = root.shadow();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    root.set_shadow(&old_image);
    root.run(&["sync", "--dry-run"], "")
        .success()
        .stdout(contains("would restore"));
    assert_eq!(root.shadow(), old_image);
    assert_eq!(root.state_of("alice"), "record-newer");
}

#[test]
fn a_managed_user_without_an_account_is_reported_and_left_alone() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("bob", "Bob#Pass1")
        .build();
    root.run(&["passwd", "bob", "--stdin"], &format!("{NEW}\n"))
        .success();
    let without_bob: String = root
        .shadow()
        .lines()
        .filter(|l| !l.starts_with("bob:"))
        .map(|l| format!("{l}\n"))
        .collect();
    root.set_shadow(&without_bob);
    root.run(&["sync"], "")
        .success()
        .stderr(contains("'bob' is managed but has no Linux account"));
    assert_eq!(root.shadow(), without_bob);
    assert_eq!(root.state_of("bob"), "no-account");
}

#[test]
fn an_interrupted_change_that_reached_shadow_is_finished() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let old_hash = root.shadow_field("alice", 2);
    // The state a crash between "shadow replaced" and "record applied" leaves.
    root.run(&["sync"], "").success(); // creates the store
    let new_hash = insert_intent(&root, "alice", &old_hash, NEW);
    root.set_shadow_entry("alice", &new_hash, &today().to_string());
    assert_eq!(root.state_of("alice"), "pending");
    root.run(&["sync", "--dry-run"], "")
        .success()
        .stdout(contains("would finish"));
    root.run(&["sync"], "").success();
    assert_eq!(root.state_of("alice"), "in-sync");
    assert_eq!(root.status_json()[0]["session_epoch"], 1);
}

#[test]
fn an_interrupted_change_that_never_reached_shadow_is_dropped() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let old_hash = root.shadow_field("alice", 2);
    root.run(&["sync"], "").success(); // creates the store
    insert_intent(&root, "alice", &old_hash, NEW);
    assert_eq!(
        root.state_of("alice"),
        "pending",
        "status shows the change in flight"
    );
    root.run(&["sync"], "").success();
    assert_eq!(
        root.state_of("alice"),
        "unmanaged",
        "the change never happened"
    );
    root.run(&["passwd", "alice", "--stdin"], "Another#Pass1\n")
        .success();
    assert_eq!(root.verify("alice", "Another#Pass1"), 0);
    assert_eq!(root.verify("alice", NEW), 1);
}

// ---- import ---------------------------------------------------------------------------

#[test]
fn import_changes_a_batch_at_once() {
    let root = Fixture::new()
        .user("a1", "x#Pass1")
        .user("a2", "x#Pass1")
        .user("a3", "x#Pass1")
        .build();
    root.run(&["import"], "a1:One#Pass1\na2:Two:Pass2\na3:Three#Pass3\n")
        .success();
    assert_eq!(root.verify("a2", "Two:Pass2"), 0);
    assert!(linux_accepts(&root, "a3", "Three#Pass3"));
    assert_eq!(root.status_json().as_array().unwrap().len(), 3);
    assert_eq!(root.status_json()[0]["source"], "import");
}

/// `import --hashed` takes hashes as `chpasswd -e` does: both stores hold
/// them as given; a line without the Argon2id hash leaves the record's
/// empty until the first `verify` derives it from the password.
#[test]
fn a_hashed_import_takes_crypt_hashes_with_or_without_their_argon2id_hash() {
    let root = Fixture::new()
        .user("a1", "x#Pass1")
        .user("a2", "x#Pass1")
        .build();
    let phc = credsync_core::store::app_hash::AppHasher::new(
        &credsync_core::store::app_hash::Argon2Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
    )
    .unwrap()
    .hash(&credsync_core::secret::Password::new(b"One#Pass1".to_vec()).unwrap())
    .unwrap();
    let (one, two) = (linux_hash("One#Pass1"), linux_hash("Two#Pass2"));
    root.run(
        &["import", "--hashed"],
        &format!(
            "a1:{one}:{phc}
a2:{two}
"
        ),
    )
    .success();
    assert_eq!(root.shadow_field("a1", 2), one);
    assert_eq!(root.shadow_field("a2", 2), two);
    let db = rusqlite::Connection::open(root.file("var/lib/credsync/credsync.db")).unwrap();
    let app_hash = |user: &str| -> Option<String> {
        db.query_row("SELECT app_hash FROM record WHERE user = ?1", [user], |r| {
            r.get(0)
        })
        .unwrap()
    };
    assert_eq!(app_hash("a1"), Some(phc));
    assert_eq!(
        app_hash("a2"),
        None,
        "no PHC given: derived at the first verify"
    );
    assert_eq!(root.verify("a2", "Two#Pass2"), 0);
    assert!(app_hash("a2").is_some_and(|h| h.starts_with("$argon2id$")));
    assert_eq!(root.verify("a1", "One#Pass1"), 0);
    assert_eq!(root.status_json()[0]["source"], "import");
}

/// What is not a hash is refused with its line number, and nothing changes.
#[test]
fn a_hashed_import_refuses_what_is_not_a_hash() {
    let root = Fixture::new()
        .user("a1", "x#Pass1")
        .user("a2", "x#Pass1")
        .build();
    let before = root.shadow();
    let good = linux_hash("One#Pass1");
    for (line, message) in [
        (
            "a2:Plain#Text1".to_owned(),
            "line 2: the crypt hash is not a crypt hash",
        ),
        (
            "a2:*0".to_owned(),
            "line 2: the crypt hash is libcrypt's failure token",
        ),
        (
            "a2:$9z$salt$hash".to_owned(),
            "line 2: the crypt hash is not a hash this system's libcrypt can verify",
        ),
        (
            format!("a2:{good}:$argon2id$v=19$m=64,t=1,p=1"),
            "line 2: the Argon2id hash lacks its salt or its hash",
        ),
        (
            format!("a2:{good}:x:y"),
            "line 2: expected user:crypt_hash[:argon2id_phc]",
        ),
        (
            format!("nobody:{good}"),
            "line 2: user 'nobody' does not exist",
        ),
    ] {
        root.run(
            &["import", "--hashed"],
            &format!(
                "a1:{good}
{line}
"
            ),
        )
        .code(6)
        .stderr(contains(message));
        assert_eq!(root.shadow(), before, "{line}");
    }
    assert_eq!(root.state_of("a1"), "unmanaged");
}

#[test]
fn one_bad_import_line_rejects_the_whole_batch() {
    let root = Fixture::new()
        .user("a1", "x#Pass1")
        .user("a2", "x#Pass1")
        .build();
    let before = root.shadow();
    for (batch, message) in [
        (
            "a1:One#Pass1\nnobody:Two#Pass2\n",
            "line 2: user 'nobody' does not exist",
        ),
        ("a1:One#Pass1\na2\n", "line 2: expected user:password"),
        ("a1:One#Pass1\na2:\n", "line 2: the password is empty"),
        (
            "a1:One#Pass1\na\u{0}2:Two#Pass2\n",
            "line 2: invalid user name",
        ),
    ] {
        root.run(&["import"], batch)
            .code(6)
            .stderr(contains(message));
        assert_eq!(root.shadow(), before, "{batch:?}");
    }
    assert_eq!(root.state_of("a1"), "unmanaged");
}

// ---- verify -------------------------------------------------------------------------

#[test]
fn verify_is_only_for_ones_own_account_unless_in_a_verify_group() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("appsvc", "App#Pass1")
        .config(&format!(
            "{}\n[verify]\ngroups = [\"appsvc\"]\nfailure_delay_ms = 0\n",
            fixture::FAST_CONFIG.replace("[verify]\nfailure_delay_ms = 0\n", "")
        ))
        .build();
    root.run(&["recover", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    assert_eq!(
        fixture_verify_as(&root, 1001, "alice", NEW),
        0,
        "appsvc is in a verify group"
    );
    let root2 = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("bob", "Bob#Pass1")
        .build();
    root2
        .run(&["recover", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    assert_eq!(
        fixture_verify_as(&root2, 1001, "alice", NEW),
        1,
        "bob may not verify alice"
    );
}

#[test]
fn a_failed_verify_is_delayed() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .config(&fixture::FAST_CONFIG.replace("failure_delay_ms = 0", "failure_delay_ms = 400"))
        .build();
    root.run(&["recover", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    let started = std::time::Instant::now();
    assert_eq!(root.verify("alice", "Wrong#Pass1"), 1);
    assert!(started.elapsed() >= std::time::Duration::from_millis(400));
}

#[test]
fn verify_of_an_unmanaged_user_fails() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    assert_eq!(root.verify("alice", "Old#Pass1"), 1);
}

// ---- bad input: clear error, nothing changed ---------------------------------------------

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let before = root.shadow();
    let long = "x".repeat(1 << 20);
    let cases: Vec<(Vec<&str>, Vec<u8>, i32, &str)> = vec![
        (
            vec!["passwd", "nobody", "--stdin"],
            b"Pass#1234\n".to_vec(),
            6,
            "does not exist",
        ),
        (
            vec!["passwd", "al:ice", "--stdin"],
            b"Pass#1234\n".to_vec(),
            6,
            "not a valid user name",
        ),
        (
            vec!["passwd", "al\nice", "--stdin"],
            b"Pass#1234\n".to_vec(),
            6,
            "not a valid user name",
        ),
        (
            vec!["passwd", "alice", "--stdin"],
            b"\n".to_vec(),
            6,
            "empty",
        ),
        (
            vec!["passwd", "alice", "--stdin"],
            b"".to_vec(),
            6,
            "ended before the password",
        ),
        (
            vec!["passwd", "alice", "--stdin"],
            b"a\0b\n".to_vec(),
            6,
            "NUL",
        ),
        (
            vec!["passwd", "alice", "--stdin"],
            long.into_bytes(),
            6,
            "longer than 511 bytes",
        ),
        (vec!["frobnicate"], vec![], 2, "unrecognized subcommand"),
        (vec!["passwd", "--bogus"], vec![], 2, "unexpected argument"),
    ];
    for (args, stdin, code, message) in cases {
        let out = root
            .run_bytes(&args, &stdin)
            .code(code)
            .get_output()
            .clone();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
        assert_eq!(root.shadow(), before, "{args:?}");
    }
}

#[test]
fn a_non_utf8_password_is_accepted_as_bytes() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    root.run_bytes(&["passwd", "alice", "--stdin"], b"caf\xe9#Pass1\n")
        .success();
    assert_eq!(
        root.run_bytes(&["verify", "alice", "--stdin"], b"caf\xe9#Pass1\n")
            .get_output()
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn a_missing_shadow_file_is_reported() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    fs::remove_file(root.file("etc/shadow")).unwrap();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .code(4)
        .stderr(contains("is missing"));
}

#[test]
fn an_unsafe_store_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let dir = root.file("var/lib/credsync");
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let before = root.shadow();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .code(7)
        .stderr(contains("open to other users"));
    assert_eq!(root.shadow(), before);

    fs::remove_dir(&dir).unwrap();
    let elsewhere = root.file("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .code(7)
        .stderr(contains("symbolic link"));
    assert_eq!(root.shadow(), before);
}

#[test]
fn a_corrupt_store_is_refused_not_overwritten() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let dir = root.file("var/lib/credsync");
    root.run(&["sync"], "").success(); // creates the store
    let garbage = vec![0xa5u8; 4096];
    for leftover in ["credsync.db-wal", "credsync.db-shm"] {
        let _ = fs::remove_file(dir.join(leftover));
    }
    fs::write(dir.join("credsync.db"), &garbage).unwrap();
    let before = root.shadow();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .code(7)
        .stderr(contains("corrupt"));
    assert_eq!(fs::read(dir.join("credsync.db")).unwrap(), garbage);
    assert_eq!(root.shadow(), before);
}

#[test]
fn the_store_is_created_private() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    assert_eq!(root.mode("var/lib/credsync").2, 0o700);
    assert_eq!(root.mode("var/lib/credsync/credsync.db").2, 0o600);
}

#[test]
fn secrets_never_reach_the_output() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let secret = "Very#Secret#Value9";
    for args in [
        &["passwd", "alice", "--stdin"][..],
        &["--json", "passwd", "alice", "--stdin"],
        &["verify", "alice", "--stdin"],
    ] {
        let out = root.run(args, &format!("{secret}\n")).get_output().clone();
        let all = [out.stdout, out.stderr].concat();
        assert!(!String::from_utf8_lossy(&all).contains(secret), "{args:?}");
    }
    let status = root
        .run(&["--json", "status"], "")
        .get_output()
        .stdout
        .clone();
    assert!(
        !String::from_utf8_lossy(&status).contains("$6$"),
        "no hash in status"
    );
}

#[test]
fn a_held_password_lock_makes_credsync_exit_busy() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let lock = root.file("etc/.pwd.lock");
    let mut holder = std::process::Command::new("python3")
        .args(["-c", "import fcntl,sys,time; f=open(sys.argv[1],'w'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(30)"])
        .arg(&lock)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed to hold a POSIX lock");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    let before = root.shadow();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .code(5)
        .stderr(contains("locked"));
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(root.shadow(), before);
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
}

#[test]
fn help_and_version_read_like_a_system_tool() {
    let root = Fixture::new().build();
    root.run(&["--help"], "")
        .success()
        .stdout(contains("Usage: credsync [options] COMMAND"))
        .stdout(contains(
            "  recover  recover a lost password in one step (root only)",
        ))
        .stdout(contains(
            "-h, --help        display this help message and exit",
        ));
    root.run(&["passwd", "--help"], "")
        .success()
        .stdout(contains("Usage: credsync passwd [options] [USER]"))
        .stdout(contains("-e, --expire      force a change at next login"));
    // The short form is the version alone; the long one adds how the binary
    // was built, so a test build (fault points compiled in) is never mistaken
    // for a release.
    root.run(&["-V"], "")
        .success()
        .stdout(format!("credsync {}\n", env!("CARGO_PKG_VERSION")));
    root.run(&["--version"], "")
        .success()
        .stdout(contains(format!(
            "credsync {}\nfeatures: ",
            env!("CARGO_PKG_VERSION")
        )))
        .stdout(contains(if cfg!(feature = "fault-injection") {
            "features: fault-injection"
        } else {
            "features: none"
        }));
}

// ---- helpers ---------------------------------------------------------------------------

/// Does libcrypt accept `password` against the hash now in `user`'s shadow line?
fn linux_accepts(root: &fixture::Root, user: &str, password: &str) -> bool {
    let hash =
        credsync_core::system::crypt::LinuxHash::from_field(&root.shadow_field(user, 2)).unwrap();
    credsync_core::system::crypt::verify(
        &credsync_core::secret::Password::new(password.as_bytes().to_vec()).unwrap(),
        &hash,
    )
}

fn fixture_verify_as(root: &fixture::Root, uid: u32, user: &str, password: &str) -> i32 {
    root.run_as(uid, &["verify", user, "--stdin"], &format!("{password}\n"))
        .get_output()
        .status
        .code()
        .unwrap()
}

/// Plants the intent a change to `password` records before it touches shadow,
/// as a crash would leave it; returns the new Linux hash it names.
fn insert_intent(root: &fixture::Root, user: &str, old: &str, password: &str) -> String {
    let new = linux_hash(password);
    let cheap = credsync_core::store::app_hash::Argon2Cost {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let app = cheap
        .hash(&credsync_core::secret::Password::new(password.as_bytes().to_vec()).unwrap())
        .unwrap();
    let db = rusqlite::Connection::open(root.file("var/lib/credsync/credsync.db")).unwrap();
    db.execute(
        "INSERT INTO intent VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'root', 'passwd', 0, NULL, NULL, NULL, NULL)",
        rusqlite::params![user, old, new, app, today(), today() * 86_400],
    )
    .unwrap();
    new
}

#[test]
fn verify_finishes_its_users_interrupted_change_first() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let old_hash = root.shadow_field("alice", 2);
    root.run(&["sync"], "").success(); // creates the store
    let new_hash = insert_intent(&root, "alice", &old_hash, NEW);
    root.set_shadow_entry("alice", &new_hash, &today().to_string());
    assert_eq!(root.verify("alice", NEW), 0);
    assert_eq!(
        root.state_of("alice"),
        "in-sync",
        "verify completed the record"
    );
}

// ---- the terminal ---------------------------------------------------------------------

/// Runs credsync on a pseudo-terminal (util-linux `script`), typing `keys`.
fn on_terminal(root: &fixture::Root, args: &str, keys: &str) -> std::process::Output {
    on_terminal_then(root, args, "true", None, keys)
}

/// The same, with `after` run in the same terminal session once credsync has
/// exited, and the keys typed only once the terminal shows `cue`. The shell
/// traps SIGINT so that a Ctrl-C reaches credsync without ending the session.
fn on_terminal_then(
    root: &fixture::Root,
    args: &str,
    after: &str,
    cue: Option<&str>,
    keys: &str,
) -> std::process::Output {
    on_terminal_typing_ahead(root, args, after, cue, "", keys)
}

/// The same, with `ahead` typed at once, before credsync can show anything.
fn on_terminal_typing_ahead(
    root: &fixture::Root,
    args: &str,
    after: &str,
    cue: Option<&str>,
    ahead: &str,
    keys: &str,
) -> std::process::Output {
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    let bin = assert_cmd::cargo::cargo_bin("credsync");
    let command = format!(
        "trap : INT; {} --root {} {args}; code=$?; echo \"exit=$code\"; {after}; exit $code",
        bin.display(),
        root.path().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("util-linux script runs a command on a pseudo-terminal");
    let shown = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let shown = Arc::clone(&shown);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 512];
            while let Ok(n @ 1..) = stdout.read(&mut chunk) {
                shown.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        })
    };
    if let Some(cue) = cue {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !String::from_utf8_lossy(&shown.lock().unwrap()).contains(cue) {
            assert!(
                std::time::Instant::now() < deadline,
                "the terminal never showed {cue:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(ahead.as_bytes()).unwrap();
    if cue.is_some() {
        stdin.write_all(keys.as_bytes()).unwrap();
    } else {
        // credsync discards what is typed before a prompt shows (as getpass
        // does), so each line goes once its prompt is on the terminal.
        // Once credsync has exited, the rest is not typed: the session may
        // be gone, and a write would fail with EPIPE (seen once in CI).
        for (i, line) in keys.split_inclusive('\n').enumerate() {
            if !wait_for_prompts(&shown, i + 1) {
                break;
            }
            stdin.write_all(line.as_bytes()).unwrap();
        }
    }
    drop(stdin);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let stdout = std::mem::take(&mut *shown.lock().unwrap());
    std::process::Output {
        status,
        stdout,
        stderr: Vec::new(),
    }
}

/// Waits until the terminal has shown `count` password prompts (true), or
/// credsync has ended and nothing more will be asked (false).
fn wait_for_prompts(shown: &std::sync::Mutex<Vec<u8>>, count: usize) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = String::from_utf8_lossy(&shown.lock().unwrap()).into_owned();
        let prompts = ["password: ", "Password: ", "Confirm: "]
            .iter()
            .map(|p| text.matches(p).count())
            .sum::<usize>();
        if prompts >= count {
            return true;
        }
        if text.contains("exit=") {
            return false;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the terminal never showed prompt {count}: {text:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// What was typed before a hidden prompt showed has been echoed in clear
/// text already: it is discarded, as getpass(3) discards it, never taken as
/// the password.
#[test]
fn type_ahead_before_a_hidden_prompt_is_discarded() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let ahead = "Typed#Ahead-77\n";
    let out = on_terminal_typing_ahead(
        &root,
        "passwd alice",
        "true",
        None,
        ahead,
        &format!("{NEW}\n{NEW}\n"),
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert_eq!(root.verify("alice", NEW), 0, "{shown}");
    assert_ne!(root.verify("alice", "Typed#Ahead-77"), 0);
}

#[test]
fn ctrl_c_at_a_prompt_restores_the_echo_and_changes_nothing() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let before = root.shadow();
    // Ctrl-C as soon as the prompt shows, possibly before the echo is off
    // or the read has begun: the signal is held until the wait, so it still counts.
    let out = on_terminal_then(
        &root,
        "passwd alice",
        "stty -a",
        Some("Enter a new password:"),
        "\u{3}",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("interrupted; nothing was changed"), "{text}");
    assert!(text.contains("exit=3"), "{text}");
    assert!(
        text.split_whitespace().any(|w| w == "echo"),
        "echo restored: {text}"
    );
    assert!(!text.split_whitespace().any(|w| w == "-echo"), "{text}");
    assert_eq!(root.shadow(), before);
}

#[test]
fn on_a_terminal_the_new_password_is_asked_twice() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let out = on_terminal(&root, "passwd alice", &format!("{NEW}\n{NEW}\n"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Enter a new password:") && text.contains("Confirm:"),
        "{text}"
    );
    assert_eq!(root.verify("alice", NEW), 0);
}

#[test]
fn a_confirmation_that_differs_is_asked_again_then_changes_nothing() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let before = root.shadow();
    // Three tries, as passwd gives: every pair differs.
    let pairs = format!("{NEW}\nOther#Pass2\n").repeat(3);
    let out = on_terminal(&root, "passwd alice", &pairs);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{text}");
    assert_eq!(
        text.matches("Sorry, passwords do not match.").count(),
        2,
        "{text}"
    );
    assert!(text.contains("the passwords do not match"), "{text}");
    assert_eq!(root.shadow(), before);

    // A matching pair on the second try goes through.
    let out = on_terminal(
        &root,
        "passwd alice",
        &format!("{NEW}\nOther#Pass2\n{NEW}\n{NEW}\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(root.verify("alice", NEW), 0);
}

#[test]
fn without_root_privileges_the_live_system_is_refused() {
    let bin = assert_cmd::cargo::cargo_bin("credsync");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin)
        .args(["status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must run as root"));
}

#[test]
fn a_password_typed_on_a_terminal_is_kept_byte_for_byte() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let typed = "a\tb\u{e9}#Pass1";
    let out = on_terminal(&root, "passwd alice", &format!("{typed}\n{typed}\n"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(root.verify("alice", typed), 0, "the Tab and the é survive");
    assert!(linux_accepts(&root, "alice", typed));
}

#[test]
fn verify_follows_linux_when_it_locked_or_removed_the_account() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    let hash = root.shadow_field("alice", 2);
    // `passwd -l alice`: the same hash behind a `!`, before any sync.
    root.set_shadow_entry("alice", &format!("!{hash}"), &today().to_string());
    assert_eq!(
        root.verify("alice", NEW),
        1,
        "locked in Linux, locked for the application"
    );
    root.set_shadow_entry("alice", &hash, &today().to_string());
    assert_eq!(root.verify("alice", NEW), 0, "unlocked again");
    let without: String = root
        .shadow()
        .lines()
        .filter(|l| !l.starts_with("alice:"))
        .map(|l| format!("{l}\n"))
        .collect();
    root.set_shadow(&without);
    assert_eq!(root.verify("alice", NEW), 1, "no Linux account, no login");
}

#[test]
fn verify_accepts_a_linux_change_before_any_sync() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    root.set_shadow_entry("alice", &linux_hash("Outside#Pass1"), &today().to_string());
    assert_eq!(root.verify("alice", "Outside#Pass1"), 0);
    assert_eq!(root.verify("alice", NEW), 1);
}

#[test]
fn a_rollback_is_restored_even_when_the_old_image_has_no_date() {
    for old_day in ["", &today().to_string()] {
        let root = Fixture::new().user("alice", "Old#Pass1").build();
        let old_hash = root.shadow_field("alice", 2);
        root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
            .success();
        // The image from before the change, with field 3 empty or today.
        root.set_shadow_entry("alice", &old_hash, old_day);
        assert_eq!(
            root.state_of("alice"),
            "record-newer",
            "field 3 {old_day:?}"
        );
        root.run(&["sync"], "").success();
        assert!(linux_accepts(&root, "alice", NEW));
        assert_eq!(root.verify("alice", NEW), 0);
    }
}

#[test]
fn an_ordinary_user_sees_their_own_status() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("bob", "Bob#Pass1")
        .build();
    root.run(&["import"], &format!("alice:{NEW}\nbob:{NEW}\n"))
        .success();
    let out = root
        .run_as(1000, &["--json", "status"], "")
        .success()
        .get_output()
        .stdout
        .clone();
    let rows: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["user"], "alice");
}

#[test]
fn looking_creates_no_store() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    root.run(&["status"], "")
        .success()
        .stdout(contains("no account is managed"));
    root.run(&["sync", "--dry-run"], "").success();
    assert!(!root.file("var/lib/credsync").exists());
}

#[test]
fn a_store_others_may_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .success();
    let db = root.file("var/lib/credsync/credsync.db");
    fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
    root.run(&["status"], "")
        .code(7)
        .stderr(contains("open to other users"));
    assert_eq!(root.verify("alice", NEW), 7);
}

#[test]
fn a_missing_passwd_file_is_reported() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    fs::remove_file(root.file("etc/passwd")).unwrap();
    root.run(&["status"], "")
        .code(4)
        .stderr(contains("passwd is missing"));
}

#[test]
fn a_reader_that_goes_away_does_not_crash_a_finished_change() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    // Standard output is a pipe nobody reads any more.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("credsync"))
        .arg("--root")
        .arg(root.path())
        .args(["passwd", "alice", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{NEW}\n").as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(root.verify("alice", NEW), 0);
}

#[test]
fn an_unreadable_shadow_file_is_reported_and_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let before = root.shadow();
    fs::set_permissions(root.file("etc/shadow"), fs::Permissions::from_mode(0o000)).unwrap();
    // As alice (root would read it anyway), who owns the fixture under --root.
    root.run_as(1000, &["passwd", "--stdin"], &format!("Old#Pass1\n{NEW}\n"))
        .code(3)
        .stderr(contains("cannot read"))
        .stderr(contains("Permission denied"));
    fs::set_permissions(root.file("etc/shadow"), fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(root.shadow(), before);
}

#[test]
fn a_store_directory_owned_by_someone_else_is_refused() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let dir = root.file("var/lib/credsync");
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(1000), Some(1000)).unwrap();
    let before = root.shadow();
    root.run(&["passwd", "alice", "--stdin"], &format!("{NEW}\n"))
        .code(7)
        .stderr(contains("owned by uid 1000 instead of uid 0"));
    assert_eq!(root.shadow(), before);
}

/// The setuid binary stays lean: the service's async runtime and its
/// varlink pieces live in `credsyncd` alone (docs/design.md, "Layout").
#[test]
fn the_setuid_binary_links_no_async_runtime() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "credsync",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(tree.contains("credsync-core"), "{tree}");
    for crate_name in [
        "tokio ",
        "mio ",
        "zlink",
        "credsyncd",
        "futures",
        "credsync-web",
        "axum",
        "hyper",
        "rustls",
        "askama",
        "fantoccini",
        "credsync-fleet",
        "etcd-client",
        "tonic",
        "prost",
        "ed25519",
    ] {
        assert!(
            !tree.contains(crate_name),
            "{crate_name} is in the setuid binary's tree"
        );
    }
}
