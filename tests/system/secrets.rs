//! Where a password must never show: in the arguments or environment of a
//! program credsync starts, in the store's files (database, WAL, shared
//! memory), in syslog, in `/proc` of a running credsync, in a core dump.
//! Each check searches for distinctive passwords, and first shows that the
//! same search finds a planted copy, so a check that can't see is caught.

use super::harness::exit;
use super::hostile::{find, namespace_root, proc_status, store_files, wait_for};
use super::{OLD, OTHER, alice_and_bob};
use std::fs;
use std::path::Path;

/// Distinctive passwords: no search can find one by accident.
const SELF_SERVICE: &str = "Umbra4411-Kestrel-self";
const RECOVERED: &str = "Umbra4411-Kestrel-recover";
const IMPORTED_A: &str = "Umbra4411-Kestrel-import-a";
const IMPORTED_B: &str = "Umbra4411-Kestrel-import-b";
const WRONG: &str = "Umbra4411-Kestrel-wrong";
const PLANTED: &str = "Umbra4411-Kestrel-planted";

/// Every password the tests type, the current ones included.
const ALL: [&str; 8] = [
    OLD,
    OTHER,
    SELF_SERVICE,
    RECOVERED,
    IMPORTED_A,
    IMPORTED_B,
    WRONG,
    PLANTED,
];

/// The passwords among `secrets` that occur in `bytes`.
fn found_in(bytes: &[u8], secrets: &[&str]) -> Vec<String> {
    secrets
        .iter()
        .filter(|s| find(bytes, s.as_bytes()).is_some())
        .map(|s| (*s).to_owned())
        .collect()
}

// ---- programs credsync starts --------------------------------------------------------

/// Stand-ins for nscd and sss_cache, laid over `/usr/sbin` inside the
/// sandbox, so that credsync finds and runs them after every write.
const CACHE_TOOLS: &str = r#"
set -e
mkdir -p /run/cache-tools
for tool in nscd sss_cache; do
  printf '#!/bin/sh\nexit 0\n' > /run/cache-tools/$tool
  chmod 0755 /run/cache-tools/$tool
done
mount -t overlay credsync-test -o lowerdir=/run/cache-tools:/usr/sbin /usr/sbin
"#;

/// Under `strace -f`, a self-service change, a recovery and an import: every
/// program credsync runs (nscd, sss_cache) gets its arguments and an empty
/// environment, and no password is in any `execve`.
#[test]
fn no_program_credsync_starts_sees_a_password() {
    let (sandbox, _alice, _bob) = alice_and_bob();
    sandbox
        .root_sh(CACHE_TOOLS, "")
        .expect_ok("lay stand-ins for nscd and sss_cache over /usr/sbin");
    let traces = sandbox.scratch("traces");
    let traced = |name: &str, command: &str, stdin: &str| -> Vec<u8> {
        let out = sandbox.root_sh(
            &format!(
                "exec strace -f -v -s 4096 -e trace=execve -o {}/{name} {command}",
                traces.display()
            ),
            stdin,
        );
        out.expect_ok(&format!("{command} under strace"));
        fs::read(traces.join(name)).unwrap()
    };

    // The search sees whole argument lists and environments.
    let planted = traced(
        "planted",
        &format!("env PLANTED={PLANTED} /bin/true {PLANTED}"),
        "",
    );
    let text = String::from_utf8_lossy(&planted);
    assert!(
        text.contains(&format!("[\"/bin/true\", \"{PLANTED}\"]"))
            && text.contains(&format!("\"PLANTED={PLANTED}\"")),
        "strace does not show an argument or environment as the search expects:\n{text}"
    );

    let runs = [
        (
            "self-service",
            "-u alice \"$CREDSYNC\" passwd --stdin".to_owned(),
            format!("{OLD}\n{SELF_SERVICE}\n"),
        ),
        (
            "recover",
            "\"$CREDSYNC\" recover bob --stdin".to_owned(),
            format!("{RECOVERED}\n"),
        ),
        (
            "import",
            "\"$CREDSYNC\" import".to_owned(),
            format!("alice:{IMPORTED_A}\nbob:{IMPORTED_B}\n"),
        ),
    ];
    for (name, command, stdin) in runs {
        let trace = traced(name, &command, &stdin);
        let text = String::from_utf8_lossy(&trace);
        for program in [
            "execve(\"/usr/sbin/nscd\", [\"/usr/sbin/nscd\", \"-i\", \"passwd\"], []",
            "execve(\"/usr/sbin/sss_cache\", [\"/usr/sbin/sss_cache\", \"-U\"], []",
        ] {
            assert!(
                text.contains(program),
                "{name}: credsync did not run {program}:\n{text}"
            );
        }
        assert_eq!(
            found_in(&trace, &ALL),
            Vec::<String>::new(),
            "{name}: a password in an execve:\n{text}"
        );
    }
    assert_eq!(sandbox.verify("alice", IMPORTED_A), exit::OK);
}

// ---- syslog ---------------------------------------------------------------------------

/// A private `/dev` inside the sandbox (the host's nodes bound in), so that
/// `/dev/log` can be the test's own socket.
const PRIVATE_DEV: &str = r#"
set -e
mkdir -p /run/host-dev
mount --rbind /dev /run/host-dev
mount -t tmpfs -o mode=0755 credsync-test /dev
for node in null zero full random urandom tty ptmx; do
  touch /dev/$node
  mount --bind /run/host-dev/$node /dev/$node
done
for dir in pts shm; do
  mkdir /dev/$dir
  mount --rbind /run/host-dev/$dir /dev/$dir
done
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
"#;

/// Everything sent to the socket so far, one message per entry.
fn drain(log: &std::os::unix::net::UnixDatagram) -> Vec<String> {
    let mut messages = Vec::new();
    let mut buffer = vec![0u8; 65536];
    while let Ok(n) = log.recv(&mut buffer) {
        messages.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
    }
    messages
}

/// syslog (what credsync and the PAM modules it loads log) hears of every
/// change, recovery, refusal and failed verify — never of a password, the
/// wrong ones included.
#[test]
fn syslog_hears_of_every_change_but_never_a_password() {
    use std::os::unix::fs::PermissionsExt;
    let (sandbox, alice, _bob) = alice_and_bob();
    sandbox
        .root_sh(PRIVATE_DEV, "")
        .expect_ok("give the sandbox its own /dev");
    let socket = namespace_root(&sandbox).join("dev/log");
    let log = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    log.set_nonblocking(true).unwrap();

    // The search sees what reaches syslog through the C library.
    sandbox
        .root_tool(
            "python3",
            &["-c", &format!("import syslog; syslog.syslog('{PLANTED}')")],
            "",
        )
        .expect_ok("python's syslog");
    let planted = drain(&log).concat();
    assert_eq!(
        found_in(planted.as_bytes(), &ALL),
        [PLANTED],
        "the planted message was not captured: {planted:?}"
    );

    let alice_runs = sandbox.as_user(&alice);
    alice_runs
        .run(
            &["passwd", "--stdin"],
            &format!("{WRONG}\n{SELF_SERVICE}\n"),
        )
        .expect_code(exit::DENIED, "a wrong current password");
    alice_runs
        .run(&["passwd", "--stdin"], &format!("{OLD}\n{SELF_SERVICE}\n"))
        .expect_ok("alice changes her password");
    alice_runs
        .run(&["verify", "alice", "--stdin"], &format!("{WRONG}\n"))
        .expect_code(exit::DENIED, "a failed verify");
    alice_runs
        .run(&["recover", "bob", "--stdin"], &format!("{RECOVERED}\n"))
        .expect_code(exit::DENIED, "alice may not recover bob");
    sandbox
        .credsync(&["recover", "bob", "--stdin"], &format!("{RECOVERED}\n"))
        .expect_ok("root recovers bob");
    sandbox
        .credsync(
            &["import"],
            &format!("alice:{IMPORTED_A}\nbob:{IMPORTED_B}\n"),
        )
        .expect_ok("import");

    let messages = drain(&log);
    let all = messages.join("\n");
    for heard in [
        "credsync[",
        "password for 'alice' changed by 'alice' (passwd)",
        "verify failed for 'alice'",
        "refused password operation on 'bob' by 'alice'",
        "password for 'bob' changed by 'root' (recover)",
        "password for 'bob' changed by 'root' (import)",
        "authentication failure",
    ] {
        assert!(all.contains(heard), "syslog never heard {heard:?}:\n{all}");
    }
    assert_eq!(
        found_in(all.as_bytes(), &ALL),
        Vec::<String>::new(),
        "a password reached syslog:\n{all}"
    );
    assert!(
        !all.contains("$y$") && !all.contains("$argon2id$"),
        "a hash reached syslog:\n{all}"
    );
}

// ---- a change in progress ---------------------------------------------------------------

/// `/proc/<pid>/{cmdline,environ}` as bytes, and the core size limit.
/// The pid a test's shell wrote to `dir/pid` (written whole, by rename)
/// as it started the change.
fn started_pid(dir: &Path) -> u32 {
    wait_for(20, "the change to start", || {
        fs::read_to_string(dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

fn proc_view(pid: u32) -> (Vec<u8>, Vec<u8>, String) {
    let read = |what: &str| fs::read(format!("/proc/{pid}/{what}")).unwrap();
    let limits = String::from_utf8(read("limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .split_whitespace()
        .skip(4)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    (read("cmdline"), read("environ"), core)
}

/// A root change stopped in the middle (the test build's fault point, just
/// after the intent is committed, holding both locks): its command line and
/// environment hold no password, it can't dump core, and the store's
/// database, WAL and shared memory hold the new password only as hashes.
#[test]
#[cfg(feature = "fault-injection")]
fn a_change_in_progress_shows_a_password_nowhere() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let (sandbox, _alice, _bob) = alice_and_bob();
    sandbox.enrol("bob", OTHER);
    let inside = namespace_root(&sandbox);
    let scratch = sandbox.scratch("parked");
    let dir = scratch.display().to_string();

    // The reader finds a planted copy in another process's /proc.
    let mut decoy = std::process::Command::new("sh")
        .args(["-c", "read -r _", PLANTED])
        .env("PLANTED", PLANTED)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = decoy.id();
    wait_for(20, "the decoy to start", || {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        find(&cmdline, b"read -r _").map(|_| ())
    });
    let (cmdline, environ, _) = proc_view(pid);
    drop(decoy.stdin.take());
    decoy.wait().unwrap();
    assert_eq!(found_in(&cmdline, &ALL), [PLANTED]);
    assert_eq!(found_in(&environ, &ALL), [PLANTED]);

    std::thread::scope(|s| {
        let change = s.spawn(|| {
            sandbox.root_sh(
                &format!(
                    "echo $$ > {dir}/pid.tmp && mv {dir}/pid.tmp {dir}/pid && \
                     exec env CREDSYNC_FAULT=intent-recorded:stop \"$CREDSYNC\" recover alice --stdin"
                ),
                &format!("{RECOVERED}\n"),
            )
        });
        let pid = started_pid(&scratch);
        wait_for(30, "the change to stop after recording its intent", || {
            proc_status(pid, "State").filter(|s| s.starts_with('T'))
        });

        let (cmdline, environ, core) = proc_view(pid);
        let store = store_files(&inside);
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        change.join().unwrap().expect_ok("the change, resumed");

        assert!(
            String::from_utf8_lossy(&environ).contains("CREDSYNC_FAULT=intent-recorded:stop"),
            "the environment read is not credsync's"
        );
        assert_eq!(found_in(&cmdline, &ALL), Vec::<String>::new());
        assert_eq!(found_in(&environ, &ALL), Vec::<String>::new());
        assert_eq!(core, "0 0", "core dumps are possible");
        let everything: Vec<u8> = store.iter().flat_map(|(_, b)| b.clone()).collect();
        assert!(
            find(&everything, b"$argon2id$").is_some(),
            "the intent's hashes are not in the files read"
        );
        for (name, bytes) in &store {
            assert_eq!(
                found_in(bytes, &ALL),
                Vec::<String>::new(),
                "{name} holds a password"
            );
        }
    });
    assert_eq!(sandbox.verify("alice", RECOVERED), exit::OK);
}

/// After a self-service change, a recovery, an import and an adoption (all
/// of which write history), no file of the store holds a password; the same
/// search finds one planted in a copy of the store (in its WAL).
#[test]
fn the_store_holds_passwords_only_as_hashes() {
    let (sandbox, alice, _bob) = alice_and_bob();
    sandbox
        .as_user(&alice)
        .run(&["passwd", "--stdin"], &format!("{OLD}\n{SELF_SERVICE}\n"))
        .expect_ok("self-service");
    sandbox
        .credsync(&["recover", "bob", "--stdin"], &format!("{RECOVERED}\n"))
        .expect_ok("recover");
    sandbox
        .credsync(
            &["import"],
            &format!("alice:{IMPORTED_A}\nbob:{IMPORTED_B}\n"),
        )
        .expect_ok("import");
    sandbox.chpasswd("alice", WRONG);
    sandbox.credsync(&["sync"], "").expect_ok("sync adopts");
    assert_eq!(sandbox.verify("alice", WRONG), exit::OK);

    let inside = namespace_root(&sandbox);
    let store = store_files(&inside);
    assert!(!store.is_empty());
    for (name, bytes) in &store {
        assert_eq!(
            found_in(bytes, &ALL),
            Vec::<String>::new(),
            "{name} holds a password"
        );
    }

    // A copy, with a password written into it through SQLite.
    let copy = tempfile::tempdir().unwrap();
    for (name, bytes) in &store {
        let file = Path::new(name).file_name().unwrap();
        fs::write(copy.path().join(file), bytes).unwrap();
    }
    let db = rusqlite::Connection::open(copy.path().join("credsync.db")).unwrap();
    db.execute_batch(&format!(
        "CREATE TABLE planted (text TEXT); INSERT INTO planted VALUES ('{PLANTED}');"
    ))
    .unwrap();
    let wal = fs::read(copy.path().join("credsync.db-wal")).unwrap();
    assert_eq!(
        found_in(&wal, &ALL),
        [PLANTED],
        "the search does not see a password in a WAL"
    );
    drop(db);
}

/// An ordinary user's setuid run, once it has started: it has become root
/// entirely (its caller can't signal it), can't dump core, and its command
/// line and environment — the caller's — hold no password.
#[test]
fn a_setuid_run_becomes_root_entirely_and_cannot_dump_core() {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let (sandbox, alice, _bob) = alice_and_bob();
    let scratch = sandbox.scratch("setuid");
    std::os::unix::fs::chown(&scratch, Some(alice.uid), Some(alice.gid)).unwrap();
    let feed = scratch.join("feed");
    nix::unistd::mkfifo(&feed, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::os::unix::fs::chown(&feed, Some(alice.uid), Some(alice.gid)).unwrap();
    let dir = scratch.display().to_string();

    std::thread::scope(|s| {
        let change = s.spawn(|| {
            sandbox.as_user(&alice).bash(&format!(
                "echo $$ > {dir}/pid.tmp && mv {dir}/pid.tmp {dir}/pid && \
                 exec \"$CREDSYNC\" passwd --stdin < {dir}/feed"
            ))
        });
        let pid = started_pid(&scratch);
        // Opens once the shell has opened the other end (no reader: ENXIO).
        let mut input = wait_for(20, "the shell to open its input", || {
            fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&feed)
                .ok()
        });
        wait_for(20, "credsync to become root", || {
            proc_status(pid, "Uid").filter(|u| u.split_whitespace().all(|id| id == "0"))
        });
        let gids = proc_status(pid, "Gid").unwrap();
        let (cmdline, environ, core) = proc_view(pid);
        input
            .write_all(format!("{OLD}\n{SELF_SERVICE}\n").as_bytes())
            .unwrap();
        drop(input);
        change.join().unwrap().expect_ok("alice's change");

        assert!(gids.split_whitespace().all(|id| id == "0"), "Gid: {gids}");
        assert_eq!(found_in(&cmdline, &ALL), Vec::<String>::new());
        assert_eq!(found_in(&environ, &ALL), Vec::<String>::new());
        assert_eq!(core, "0 0", "core dumps are possible");
    });
    sandbox.assert_only_accepts("alice", SELF_SERVICE, OLD);
}
