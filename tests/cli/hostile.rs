//! Hostile input on the `--root` fixtures: passwords and names that can't be
//! stored, a megabyte on standard input, odd `/etc/shadow` files, and a store
//! that is a symlink, a FIFO or corrupt. Every refusal is one line on stderr
//! with a documented exit code, and leaves every byte where it was.
//!
//! (Names with `:` or a newline, a NUL or a megabyte given to `passwd`, the
//! world-writable or symlinked store directory and a garbage database file
//! are in `tests/cli.rs`; these are the cases it leaves out.)

use super::fixture::{Fixture, Root};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

const NEW: &str = "N3w#Passw0rd";

/// The exit code for a bad password, name or import line (README).
const INVALID: i32 = 6;
/// The exit code for a store that is unsafe or corrupt (README).
const STORE: i32 = 7;

/// `credsync --root DIR ARGS...` with `stdin`, stopped if it takes longer
/// than a refusal ever should.
fn refused(root: &Root, args: &[&OsStr], stdin: &[u8]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("credsync")
        .unwrap()
        .arg("--root")
        .arg(root.path())
        .args(args)
        .write_stdin(stdin.to_vec())
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap()
}

fn os<'a>(args: &[&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(|a| OsStr::new(*a)).collect()
}

/// Exactly one line on stderr, naming `what`.
#[track_caller]
fn assert_one_line(out: &std::process::Output, code: i32, what: &str, case: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{case}: {stderr}");
    assert!(stderr.contains(what), "{case}: {stderr:?} lacks {what:?}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{case}: not one line: {stderr:?}"
    );
}

/// Every file under `dir` (relative name, bytes), for "nothing changed".
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(next) = todo.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file() {
                files.push((name, fs::read(&path).unwrap()));
            } else {
                files.push((name, Vec::new()));
            }
        }
    }
    files.sort();
    files
}

// ---- passwords and names that can't be stored -------------------------------------

#[test]
fn recover_refuses_unusable_passwords_with_one_line() {
    let root = Fixture::new().user("admin", "Old#Pass1").build();
    let before = snapshot(root.path());
    let megabyte = vec![b'x'; 1 << 20];
    let nuls = vec![0u8; 1 << 20];
    for (stdin, what) in [
        (&b"a\0b#Pass1\n"[..], "NUL"),
        (b"a\rb#Pass1\n", "line break"),
        (&megabyte, "longer than 511 bytes"),
        (&nuls, "longer than 511 bytes"),
        (b"\n", "empty"),
        (b"", "ended before the password"),
    ] {
        let out = refused(&root, &os(&["recover", "admin", "--stdin"]), stdin);
        let case = format!(
            "{:?}",
            String::from_utf8_lossy(&stdin[..stdin.len().min(12)])
        );
        assert_one_line(&out, INVALID, what, &case);
        assert_eq!(snapshot(root.path()), before, "{case} changed a file");
    }
}

#[test]
fn import_refuses_hostile_batches_with_one_line() {
    let root = Fixture::new()
        .user("a1", "x#Pass1")
        .user("a2", "x#Pass1")
        .build();
    let before = snapshot(root.path());
    let long_line = [b"a1:".to_vec(), vec![b'p'; 1 << 20], b"\n".to_vec()].concat();
    let no_newline = vec![b'z'; 1 << 20];
    for (batch, what) in [
        (
            &b"a1:One#Pass1\na2:Tw\0o#Pass2\n"[..],
            "line 2: the password contains a NUL byte",
        ),
        (
            b"a1:One#Pass1\na2:Tw\ro#Pass2\n",
            "line 2: the password contains a line break",
        ),
        (
            b"a1:One#Pass1\na\xff2:Two#Pass2\n",
            "line 2: invalid user name",
        ),
        (b"+a1:One#Pass1\n", "line 1: invalid user name"),
        (b"-a1:One#Pass1\n", "line 1: invalid user name"),
        (b"+@admins:One#Pass1\n", "line 1: invalid user name"),
        (b"a 1:One#Pass1\n", "line 1: invalid user name"),
        (&long_line, "line 1: the line is too long"),
        (&no_newline, "line 1: the line is too long"),
        (b"\n\n\n", "no user:password lines"),
    ] {
        let out = refused(&root, &os(&["import"]), batch);
        let case = format!(
            "{:?}",
            String::from_utf8_lossy(&batch[..batch.len().min(24)])
        );
        assert_one_line(&out, INVALID, what, &case);
        assert_eq!(snapshot(root.path()), before, "{case} changed a file");
    }
}

/// A megabyte of well-formed lines for users that don't exist is refused
/// whole, naming the first bad line, before anything is hashed. (Its speed —
/// duplicate users are found through a map, not a scan — is not timed here.)
#[test]
fn a_megabyte_import_is_refused_whole() {
    let root = Fixture::new().user("a1", "x#Pass1").build();
    let before = snapshot(root.path());
    let mut batch = Vec::new();
    for n in 0.. {
        if batch.len() >= 1 << 20 {
            break;
        }
        batch.extend_from_slice(format!("u{n}:Pass#{n}\n").as_bytes());
    }
    let out = refused(&root, &os(&["import"]), &batch);
    assert_one_line(&out, INVALID, "line 1: user 'u0' does not exist", "1 MiB");
    assert_eq!(snapshot(root.path()), before);
}

/// A current password that could never be one is refused before it is
/// checked (so it never reaches PAM or libcrypt).
#[test]
fn a_current_password_that_cannot_be_one_is_refused_before_it_is_checked() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let before = root.shadow();
    let megabyte = "x".repeat(1 << 20);
    for (current, what) in [
        ("Old#Pass1\0", "NUL"),
        ("Old#\rPass1", "line break"),
        (megabyte.as_str(), "longer than 511 bytes"),
    ] {
        let out = root
            .run_as(1000, &["passwd", "--stdin"], &format!("{current}\n{NEW}\n"))
            .get_output()
            .clone();
        assert_one_line(&out, INVALID, what, &current[..current.len().min(12)]);
        assert_eq!(root.shadow(), before);
        assert!(
            !root.file("var/lib/credsync").exists(),
            "a store was created"
        );
    }
}

/// A name argument that is not UTF-8 is a usage error, whatever the command.
#[test]
fn a_user_name_that_is_not_utf8_is_a_usage_error() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    let before = snapshot(root.path());
    let name = OsStr::from_bytes(b"al\xffice");
    for (command, flag) in [
        ("passwd", Some("--stdin")),
        ("recover", Some("--stdin")),
        ("verify", Some("--stdin")),
        ("status", None),
    ] {
        let mut args = vec![OsStr::new(command), name];
        args.extend(flag.map(OsStr::new));
        let out = refused(&root, &args, format!("{NEW}\n").as_bytes());
        assert_one_line(&out, 2, "invalid UTF-8", command);
        assert_eq!(snapshot(root.path()), before);
    }
}

/// `:` is an ordinary password byte: it is hashed, never written into the line.
#[test]
fn colons_in_a_password_never_split_the_shadow_line() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("admin", "Old#Pass1")
        .build();
    let colons = "a:b::c:#Pass1:";
    root.run(&["passwd", "alice", "--stdin"], &format!("{colons}\n"))
        .success();
    root.run(&["recover", "admin", "--stdin"], &format!("{colons}\n"))
        .success();
    for user in ["alice", "admin"] {
        let shadow = root.shadow();
        let line = shadow
            .lines()
            .find(|l| l.starts_with(&format!("{user}:")))
            .unwrap();
        assert_eq!(line.split(':').count(), 9, "{line}");
        assert!(!line.contains(colons), "{line}");
        assert!(linux_accepts(&root, user, colons), "{user}");
        assert_eq!(root.verify(user, colons), 0, "{user}");
    }
}

// ---- odd shadow files --------------------------------------------------------------

/// Every line credsync may meet and must not touch: comments, blank lines,
/// NIS `+`/`-`/`+@group` entries, too many or too few fields, CRLF endings,
/// a field 3 that is not a number, bytes that aren't UTF-8.
const ODD: &[&[u8]] = &[
    b"# a comment: with: colons:::::::\n",
    b"\n",
    b"   \n",
    b"+\n",
    b"+nisuser::::::::\n",
    b"-nisblocked::::::::\n",
    b"+@netgroup::::::::\n",
    b"-@banned\n",
    b"short:x:1\n",
    b"long:!:19000:0:99999:7::::extra:more\n",
    b"crlf:*:19000:0:99999:7:::\r\n",
    b"\r\n",
    b"baddate:*:yesterday:0:99999:7:::\n",
    b"latin\xe9:*:19000:0:99999:7:::\n",
    b"\x00\xffbinary\x01\n",
];

/// `user`'s line, and every other line of `shadow` with its ending.
fn split_out<'a>(shadow: &'a [u8], user: &str) -> (Vec<&'a [u8]>, Vec<&'a [u8]>) {
    shadow
        .split_inclusive(|&b| b == b'\n')
        .partition(|l| l.starts_with(format!("{user}:").as_bytes()))
}

#[test]
fn every_other_line_keeps_its_bytes_however_odd() {
    let root = Fixture::new()
        .user("alice", "Old#Pass1")
        .user("bob", "Bob#Pass1")
        .build();
    // alice in the middle of the odd lines, bob last, without a final newline.
    let plain = fs::read(root.file("etc/shadow")).unwrap();
    let (bob, rest) = split_out(&plain, "bob");
    let rest = rest.concat();
    let (alice, head) = split_out(&rest, "alice");
    let mut shadow = head.concat();
    shadow.extend(ODD.concat());
    shadow.extend(alice.concat());
    shadow.extend(ODD.concat());
    shadow.extend(bob.concat().strip_suffix(b"\n").unwrap());
    fs::write(root.file("etc/shadow"), &shadow).unwrap();

    for user in ["alice", "bob"] {
        let before = fs::read(root.file("etc/shadow")).unwrap();
        root.run(&["passwd", user, "--stdin"], &format!("{NEW}\n"))
            .success();
        let after = fs::read(root.file("etc/shadow")).unwrap();
        assert_eq!(
            split_out(&after, user).1,
            split_out(&before, user).1,
            "changing {user} touched another line"
        );
        let (old_line, new_line) = (split_out(&before, user).0, split_out(&after, user).0);
        let fields =
            |l: &[u8]| -> Vec<Vec<u8>> { l.split(|&b| b == b':').map(<[u8]>::to_vec).collect() };
        let (old_fields, new_fields) = (fields(old_line[0]), fields(new_line[0]));
        assert_eq!(new_fields.len(), 9);
        assert_eq!(new_fields[0], old_fields[0]);
        assert_eq!(
            new_fields[3..],
            old_fields[3..],
            "{user}: fields 4-9 and the line ending"
        );
        assert!(linux_accepts(&root, user, NEW));
    }
    assert!(!fs::read(root.file("etc/shadow")).unwrap().ends_with(b"\n"));
}

/// A user whose only line glibc would skip (a CRLF ending, the wrong number
/// of fields) has no account as far as credsync is concerned: refused, and
/// the line stays as it was.
#[test]
fn a_line_glibc_would_skip_is_never_rewritten() {
    let mut fixture = Fixture::new().user("alice", "Old#Pass1");
    for line in [
        "crlf:$6$abc$def:19000:0:99999:7:::\r",
        "short:$6$abc$def:19000",
        "long:$6$abc$def:19000:0:99999:7::::",
    ] {
        fixture = fixture.shadow_line(line);
    }
    let root = fixture.build();
    let before = snapshot(root.path());
    for user in ["crlf", "short", "long"] {
        let out = refused(
            &root,
            &os(&["recover", user, "--stdin"]),
            format!("{NEW}\n").as_bytes(),
        );
        assert_one_line(&out, INVALID, "does not exist", user);
        assert_eq!(snapshot(root.path()), before, "{user}");
    }
}

// ---- a store that is not what it should be ---------------------------------------

/// Every command that opens the store, with the input it reads.
fn every_store_command() -> Vec<(Vec<&'static str>, String)> {
    vec![
        (vec!["status"], String::new()),
        (vec!["sync", "--dry-run"], String::new()),
        (vec!["sync"], String::new()),
        (vec!["verify", "alice", "--stdin"], format!("{NEW}\n")),
        (vec!["passwd", "alice", "--stdin"], format!("{NEW}\n")),
        (vec!["recover", "alice", "--stdin"], format!("{NEW}\n")),
        (vec!["import"], format!("alice:{NEW}\n")),
    ]
}

/// A root whose store exists (alice is managed) and whose database is then
/// replaced by `replace`.
fn store_replaced_by(replace: impl FnOnce(&Path)) -> Root {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    root.run(&["recover", "alice", "--stdin"], "Old#Pass1\n")
        .success();
    let db = root.file("var/lib/credsync/credsync.db");
    for leftover in ["credsync.db-wal", "credsync.db-shm"] {
        let _ = fs::remove_file(db.with_file_name(leftover));
    }
    fs::remove_file(&db).unwrap();
    replace(&db);
    root
}

#[test]
fn a_database_that_is_a_symlink_is_refused_and_its_target_left_alone() {
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("precious");
    fs::write(&victim, b"not a database, and it must stay so\n").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let root = store_replaced_by(|db| std::os::unix::fs::symlink(&victim, db).unwrap());
    let before = snapshot(root.path());
    for (args, stdin) in every_store_command() {
        let out = refused(&root, &os(&args), stdin.as_bytes());
        assert_one_line(&out, STORE, "is a symbolic link", args[0]);
        assert_eq!(snapshot(root.path()), before, "{args:?}");
        assert_eq!(
            fs::read(&victim).unwrap(),
            b"not a database, and it must stay so\n"
        );
    }
}

/// Opening a FIFO would wait for a writer forever; credsync looks first.
#[test]
fn a_database_that_is_a_fifo_is_refused_without_waiting() {
    let root = store_replaced_by(|db| {
        nix::unistd::mkfifo(db, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
    });
    let before = snapshot(root.path());
    for (args, stdin) in every_store_command() {
        let started = Instant::now();
        let out = refused(&root, &os(&args), stdin.as_bytes());
        assert_one_line(&out, STORE, "is not a regular file", args[0]);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?} waited"
        );
        assert_eq!(snapshot(root.path()), before, "{args:?}");
    }
}

#[test]
fn a_corrupt_database_is_refused_by_every_command_and_never_rewritten() {
    let garbage: Vec<u8> = (0..16384u32).map(|i| (i * 7 + 3) as u8).collect();
    let root = store_replaced_by(|db| {
        fs::write(db, &garbage).unwrap();
        fs::set_permissions(db, fs::Permissions::from_mode(0o600)).unwrap();
    });
    every_store_command_refuses_as_corrupt(&root);
}

/// Every command that opens the store refuses it as corrupt, in one line
/// with exit 7, and writes nothing anywhere under the root.
#[track_caller]
fn every_store_command_refuses_as_corrupt(root: &Root) {
    let before = snapshot(root.path());
    for (args, stdin) in every_store_command() {
        let out = refused(root, &os(&args), stdin.as_bytes());
        assert_one_line(&out, STORE, "corrupt", args[0]);
        assert_eq!(snapshot(root.path()), before, "{args:?} wrote something");
    }
}

/// SQLite reads a database lazily, so damage past the first pages shows
/// only when a statement reaches it — which must not be after `/etc/shadow`
/// was replaced. A change refuses the store before writing anything.
#[test]
fn a_database_damaged_past_its_first_pages_is_refused_before_anything_is_written() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    // Enough history that the database has pages beyond the schema's.
    for n in 0..30 {
        root.run(&["recover", "alice", "--stdin"], &format!("Pass#{n}\n"))
            .success();
    }
    let db = root.file("var/lib/credsync/credsync.db");
    let checkpoint = rusqlite::Connection::open(&db).unwrap();
    checkpoint
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(checkpoint);
    let history_page: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT rootpage FROM sqlite_master WHERE name = 'history'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut bytes = fs::read(&db).unwrap();
    let page = (history_page as usize - 1) * 4096;
    bytes[page..page + 4096].fill(0xa5);
    fs::write(&db, &bytes).unwrap();
    let before = snapshot(root.path());

    let out = refused(
        &root,
        &os(&["recover", "alice", "--stdin"]),
        format!("{NEW}\n").as_bytes(),
    );
    assert_one_line(&out, STORE, "corrupt", "recover");
    assert_eq!(snapshot(root.path()), before, "something was written");
}

/// A database that SQLite opens but that is not a credsync store (its tables
/// are missing) is refused as corrupt, and not converted or filled in.
#[test]
fn a_database_without_credsyncs_tables_is_refused_and_left_as_it_is() {
    let root = store_replaced_by(|db| {
        let other = rusqlite::Connection::open(db).unwrap();
        other
            .execute_batch("PRAGMA user_version = 1; CREATE TABLE notes (text TEXT);")
            .unwrap();
        drop(other);
        fs::set_permissions(db, fs::Permissions::from_mode(0o600)).unwrap();
    });
    every_store_command_refuses_as_corrupt(&root);
}

#[test]
fn a_store_directory_that_others_may_write_or_that_is_no_directory_is_refused() {
    for (make, what) in [
        (
            (|dir: &Path| {
                fs::create_dir(dir).unwrap();
                fs::set_permissions(dir, fs::Permissions::from_mode(0o770)).unwrap();
            }) as fn(&Path),
            "open to other users",
        ),
        (
            |dir: &Path| {
                fs::create_dir(dir).unwrap();
                fs::set_permissions(dir, fs::Permissions::from_mode(0o1777)).unwrap();
            },
            "open to other users",
        ),
        (
            |dir: &Path| fs::write(dir, b"").unwrap(),
            "is not a directory",
        ),
        (
            |dir: &Path| {
                nix::unistd::mkfifo(dir, nix::sys::stat::Mode::from_bits_truncate(0o700)).unwrap()
            },
            "is not a directory",
        ),
    ] {
        let root = Fixture::new().user("alice", "Old#Pass1").build();
        fs::create_dir_all(root.file("var/lib")).unwrap();
        make(&root.file("var/lib/credsync"));
        // The (empty) lock file every password tool creates and leaves.
        fs::write(root.file("etc/.pwd.lock"), "").unwrap();
        let before = snapshot(root.path());
        for (args, stdin) in every_store_command() {
            let out = refused(&root, &os(&args), stdin.as_bytes());
            assert_one_line(&out, STORE, what, args[0]);
            assert_eq!(snapshot(root.path()), before, "{args:?}");
        }
    }
}

// ---- no core dumps -------------------------------------------------------------------

/// Even an ordinary user's run over a fixture can't be dumped: the process
/// is not dumpable (so the kernel hands its `/proc` files to root, and no
/// core handler ever gets its memory) and its core size limit is 0.
#[test]
fn a_run_holding_a_password_cannot_be_dumped() {
    let root = Fixture::new().user("alice", "Old#Pass1").build();
    open_to(root.path(), 1000);
    let mut child = std::process::Command::new("setpriv")
        .args(["--reuid=1000", "--regid=1000", "--clear-groups"])
        .arg(assert_cmd::cargo::cargo_bin("credsync"))
        .arg("--root")
        .arg(root.path())
        .args(["passwd", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The logout warning comes just before it reads the current password.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("log this user out"), "{line:?}");
    // The kernel gives the files of a process that is not dumpable to root.
    let proc_dir = format!("/proc/{}", child.id());
    let owner = fs::metadata(format!("{proc_dir}/environ")).unwrap().uid();
    let limits = fs::read_to_string(format!("{proc_dir}/limits")).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(INVALID),
        "no input, nothing changed"
    );

    assert_eq!(
        owner, 0,
        "credsync is dumpable: {proc_dir} belongs to uid {owner}"
    );
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().collect::<Vec<_>>()[4..6],
        ["0", "0"],
        "{core}"
    );
}

// ---- helpers ----------------------------------------------------------------------

/// Does libcrypt accept `password` against `user`'s hash in the fixture's shadow?
fn linux_accepts(root: &Root, user: &str, password: &str) -> bool {
    let shadow = fs::read(root.file("etc/shadow")).unwrap();
    let (line, _) = split_out(&shadow, user);
    let field = line[0].split(|&b| b == b':').nth(1).unwrap();
    let hash =
        credsync_core::system::crypt::LinuxHash::from_field(std::str::from_utf8(field).unwrap())
            .unwrap();
    credsync_core::system::crypt::verify(
        &credsync_core::secret::Password::new(password.as_bytes().to_vec()).unwrap(),
        &hash,
    )
}

/// Hands the fixture to `uid` (under `--root` the caller must own it).
fn open_to(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
    if path.is_dir() && !path.is_symlink() {
        for entry in fs::read_dir(path).unwrap() {
            open_to(&entry.unwrap().path(), uid);
        }
    }
}
