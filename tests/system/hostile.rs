//! A hostile caller of the setuid binary, and hostile files, on the real
//! system: what the caller's environment, closed descriptors and terminal can
//! do to a change, what repeated wrong passwords cost, and an `/etc/shadow`
//! full of lines credsync must not touch. The caller is an ordinary account
//! running the setuid copy through `setpriv`, as in `tests/system.rs`.
//!
//! (The loader, PATH, locale and `--root`, `kill -STOP` from the caller and
//! one wrong current password are in `tests/system.rs`; these are the cases
//! it leaves out.)

use super::harness::{Account, FAST_CONFIG, Sandbox, exit};
use super::{NEW, OLD, OTHER, alice_and_bob, lines_except};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The exit code for an unusable password (README).
const INVALID: i32 = 6;

// ---- the caller's environment and descriptors --------------------------------------

/// Everything in the environment is the caller's: a test build's fault point,
/// a time zone or locale naming a file, the loader's audit hooks. None of it
/// reaches the setuid run, which changes the password as usual and speaks C.
#[test]
fn a_hostile_environment_reaches_neither_the_fault_points_nor_the_locale() {
    let (sandbox, alice, _bob) = alice_and_bob();
    let hostile = [
        ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        // With the test build, this would abort a root run half-way.
        ("CREDSYNC_FAULT", "intent-recorded"),
        ("TZ", "/etc/shadow"),
        ("LC_MESSAGES", "../../../../tmp/x"),
        ("LC_CTYPE", "/tmp/x"),
        ("LANG", "C/../../x"),
        ("GCONV_PATH", "/tmp"),
        ("LD_AUDIT", "/nonexistent.so"),
        ("MALLOC_CHECK_", "3"),
        ("TERM", "../../../etc/shadow"),
        ("POSIXLY_CORRECT", "1"),
    ];
    let out = sandbox
        .as_user(&alice)
        .with_env(&hostile)
        .run(&["passwd", "--stdin"], &format!("{OLD}\n{NEW}\n"))
        .expect_ok("a change in a hostile environment");
    assert!(
        out.stdout.contains("Password updated successfully"),
        "{out}"
    );
    sandbox.assert_only_accepts("alice", NEW, OLD);
    assert_eq!(sandbox.state("alice").as_deref(), Some("in-sync"));

    // The same variable does stop a root run of this build: the check above
    // could fail.
    if cfg!(feature = "fault-injection") {
        let signal = sandbox.credsync_killed(
            &[("CREDSYNC_FAULT", "intent-recorded")],
            &["recover", "bob", "--stdin"],
            &format!("{NEW}\n"),
        );
        assert_eq!(signal, 6, "the fault point did not abort a root run");
    }
}

/// A caller who closes standard input, output or error gets the outcome as
/// the exit code, and no file credsync opens takes the place of a closed
/// descriptor: no message ever lands in the password files or the store.
#[test]
fn closed_standard_descriptors_never_become_the_password_files() {
    let (sandbox, alice, _bob) = alice_and_bob();
    let before = sandbox.shadow();
    let script = format!(
        r#""$CREDSYNC" passwd --stdin <&-; echo "stdin closed: $?"
printf '%s\n' 'Not-{OLD}' '{NEW}' | "$CREDSYNC" passwd --stdin >&- 2>&-; echo "wrong, output closed: $?"
"$CREDSYNC" passwd --stdin <&- >&- 2>&-; echo "all closed: $?"
printf '%s\n' '{OLD}' '{NEW}' | "$CREDSYNC" passwd --stdin >&- 2>&-; echo "right, output closed: $?"
"#
    );
    let out = sandbox
        .as_user(&alice)
        .bash(&script)
        .expect_ok("the script");
    for outcome in [
        format!("stdin closed: {INVALID}"),
        format!("wrong, output closed: {}", exit::DENIED),
        format!("all closed: {INVALID}"),
        format!("right, output closed: {}", exit::OK),
    ] {
        assert!(out.stdout.contains(&outcome), "no {outcome:?}:\n{out}");
    }
    assert!(
        out.stderr
            .contains("standard input ended before the password"),
        "{out}"
    );

    sandbox.assert_only_accepts("alice", NEW, OLD);
    let after = sandbox.shadow();
    assert_eq!(
        lines_except(&after, "alice"),
        lines_except(&before, "alice")
    );
    let inside = namespace_root(&sandbox);
    let mut files = vec![
        ("/etc/shadow".to_owned(), after),
        ("/etc/shadow-".to_owned(), sandbox.shadow_backup()),
        (
            "/etc/.pwd.lock".to_owned(),
            fs::read(sandbox.etc(".pwd.lock")).unwrap(),
        ),
    ];
    files.extend(store_files(&inside));
    for (name, bytes) in &files {
        for message in [
            &b"Password updated"[..],
            b"log this user out",
            b"authentication failure",
            b"credsync:",
            b"Enter",
        ] {
            assert!(
                find(bytes, message).is_none(),
                "{name} holds {:?}",
                String::from_utf8_lossy(message)
            );
        }
    }
    assert!(files[2].1.is_empty(), "something wrote to /etc/.pwd.lock");
    assert!(!sandbox.etc("shadow.lock").exists());
}

// ---- the caller's terminal, in the middle of a change --------------------------------

/// Ctrl-Z is the one way left for the caller to stop a setuid run that has
/// become root. Typed while the change is being written, it must not leave
/// credsync stopped holding `/etc/.pwd.lock` — which would block every
/// password change on the system for as long as the caller liked. The
/// change finishes and is reported.
#[test]
fn ctrl_z_in_the_middle_of_a_change_cannot_hold_the_password_files() {
    let (sandbox, alice, _bob) = alice_and_bob();
    let seen = interrupt_mid_write(&sandbox, &alice, Key::CtrlZ);
    assert_ne!(
        seen.ended,
        Ended::Stopped { lock_held: true },
        "credsync stopped holding the password files' lock:\n{}",
        seen.terminal
    );
    assert_reported(&seen);
    assert_whole_and_unlocked(&sandbox);
}

/// Ctrl-C while the change is being written waits until both stores hold the
/// new password, and the change is reported: a Ctrl-C that came too late is
/// dropped, as shadow-utils ignores it while writing, rather than ending the
/// run silently after the password changed.
#[test]
fn ctrl_c_in_the_middle_of_a_change_waits_until_it_is_whole() {
    let (sandbox, alice, _bob) = alice_and_bob();
    let seen = interrupt_mid_write(&sandbox, &alice, Key::CtrlC);
    assert!(
        !seen.terminal.contains("nothing was changed"),
        "{}",
        seen.terminal
    );
    assert_reported(&seen);
    assert_whole_and_unlocked(&sandbox);
}

/// The terminal hanging up (the caller's connection drops) while the change
/// is being written does the same.
#[test]
fn a_hangup_in_the_middle_of_a_change_waits_until_it_is_whole() {
    let (sandbox, alice, _bob) = alice_and_bob();
    let seen = interrupt_mid_write(&sandbox, &alice, Key::Hangup);
    assert_eq!(seen.ended, Ended::Exited, "{}", seen.terminal);
    assert_whole_and_unlocked(&sandbox);
}

/// Ctrl-Z is ignored by a setuid run — except at a password prompt, where
/// it still ends the run as an interruption, with nothing changed.
#[test]
fn ctrl_z_at_a_password_prompt_still_interrupts_a_setuid_run() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let (sandbox, alice, _bob) = alice_and_bob();
    let before = sandbox.shadow();
    let terminal = Terminal::new(&sandbox, &alice);
    let shown = std::thread::scope(|s| {
        let run = s.spawn(|| {
            terminal.run(
                &sandbox,
                &alice,
                Key::CtrlZ,
                "Enter your current password:",
                "passwd",
            )
        });
        // The key goes at the prompt by itself; the terminal may end after.
        let (driver, _shell) = terminal.pids();
        kill(Pid::from_raw(driver as i32), Signal::SIGUSR1).unwrap();
        run.join().unwrap()
    });
    assert!(
        shown.contains("interrupted; nothing was changed") && shown.contains("exit=3"),
        "{shown}"
    );
    assert!(!shown.contains("Stopped"), "{shown}");
    assert_eq!(sandbox.shadow(), before);
    assert_eq!(sandbox.state("alice"), None);
}

/// The run ended on its own and reported the change as made.
#[track_caller]
fn assert_reported(seen: &Seen) {
    assert_eq!(seen.ended, Ended::Exited, "{}", seen.terminal);
    assert!(
        seen.terminal.contains("Password updated successfully") && seen.terminal.contains("exit=0"),
        "the change was not reported:\n{}",
        seen.terminal
    );
}

/// After an interrupted-but-finished change: both stores hold alice's new
/// password, nothing is pending, and the password files are free — root
/// changes bob at once, with a one-second lock timeout.
#[track_caller]
fn assert_whole_and_unlocked(sandbox: &Sandbox) {
    sandbox.assert_only_accepts("alice", NEW, OLD);
    assert_eq!(sandbox.state("alice").as_deref(), Some("in-sync"));
    sandbox.write_config(&format!("{FAST_CONFIG}[locks]\ntimeout_secs = 1\n"));
    sandbox
        .credsync(&["recover", "bob", "--stdin"], &format!("{NEW}\n"))
        .expect_ok("root changes bob right after");
    sandbox.assert_only_accepts("bob", NEW, OTHER);
}

// ---- wrong passwords ---------------------------------------------------------------

/// Every wrong current password costs PAM's failure delay (pam_unix asks for
/// 2 s; PAM spreads it over 1–3 s), however often it is tried, and changes
/// nothing; the right one then works at once.
#[test]
fn every_wrong_current_password_costs_pams_delay() {
    let (sandbox, alice, _bob) = alice_and_bob();
    let before = sandbox.shadow();
    let alice_runs = sandbox.as_user(&alice);
    for attempt in 1..=3 {
        let (out, took) = alice_runs.run_timed(
            &["passwd", "--stdin"],
            &format!("Wrong-{attempt}-{OLD}\n{NEW}\n"),
        );
        out.expect_code(exit::DENIED, &format!("wrong password, attempt {attempt}"));
        assert!(
            took >= Duration::from_secs(1),
            "attempt {attempt} was answered in {took:?}, without PAM's delay"
        );
        assert_eq!(sandbox.shadow(), before, "attempt {attempt} changed shadow");
        assert_eq!(sandbox.state("alice"), None);
    }
    let (out, took) = alice_runs.run_timed(&["passwd", "--stdin"], &format!("{OLD}\n{NEW}\n"));
    out.expect_ok("the right password after three wrong ones");
    assert!(took < Duration::from_secs(10), "{took:?}");
    sandbox.assert_only_accepts("alice", NEW, OLD);
}

// ---- an odd /etc/shadow ---------------------------------------------------------------

/// A self-service change through PAM on a shadow file full of lines credsync
/// must not touch — comments, blank lines, NIS entries, wrong field counts,
/// CRLF endings, no final newline: every other line keeps its bytes, and
/// `pwck` finds exactly what it found before.
#[test]
fn odd_shadow_lines_survive_a_self_service_change_byte_for_byte() {
    let (sandbox, alice, _bob) = alice_and_bob();
    let plain = sandbox.shadow();
    let (own, others): (Vec<&[u8]>, Vec<&[u8]>) = plain
        .split_inclusive(|&b| b == b'\n')
        .partition(|l| l.starts_with(b"alice:"));
    let odd: &[&[u8]] = &[
        b"# managed by hand: see ticket 42\n",
        b"\n",
        b"+\n",
        b"+nisuser::::::::\n",
        b"-nisblocked::::::::\n",
        b"+@netgroup::::::::\n",
        b"short:x:1\n",
        b"long:!:19000:0:99999:7::::extra\n",
        b"crlf:*:19000:0:99999:7:::\r\n",
        b"\r\n",
    ];
    let mut shadow = Vec::new();
    shadow.extend(odd.concat());
    shadow.extend(own.concat());
    shadow.extend(others.concat());
    shadow.extend(odd.concat());
    shadow.extend(b"# the last line has no newline");
    sandbox.put_shadow(&shadow);
    let pwck_before = sandbox.pwck();

    sandbox
        .as_user(&alice)
        .run(&["passwd", "--stdin"], &format!("{OLD}\n{NEW}\n"))
        .expect_ok("alice changes her password");

    let after = sandbox.shadow();
    assert_eq!(
        lines_except(&after, "alice"),
        lines_except(&shadow, "alice")
    );
    assert!(after.ends_with(b"\n# the last line has no newline"));
    sandbox.assert_only_accepts("alice", NEW, OLD);
    assert!(sandbox.pamtester("bob", OTHER));
    let pwck_after = sandbox.pwck();
    assert_eq!(
        (pwck_after.code, &pwck_after.stdout, &pwck_after.stderr),
        (pwck_before.code, &pwck_before.stdout, &pwck_before.stderr),
        "pwck -r reports something new"
    );
}

// ---- helpers ---------------------------------------------------------------------------

/// `/proc/<pid>/root` of the sandbox's holder: the sandbox's own view of the
/// file system (its `/var/lib`, `/run` and `/dev` are its own), for reading
/// files from the test. (Not for SQLite, which resolves the link back to `/`.)
pub fn namespace_root(sandbox: &Sandbox) -> PathBuf {
    let marker = format!(
        "credsync-namespace-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )
    .replace(['(', ')'], "");
    fs::write(sandbox.etc(&marker), "").unwrap();
    let me = std::process::id();
    let found = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_of(pid) == Some(me))
        .map(|pid| PathBuf::from(format!("/proc/{pid}/root")))
        .find(|root| root.join("etc").join(&marker).exists());
    fs::remove_file(sandbox.etc(&marker)).unwrap();
    found.expect("the sandbox's holder process, a child of this test")
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The store's files (database, WAL, shared memory) as they are now.
pub fn store_files(inside: &Path) -> Vec<(String, Vec<u8>)> {
    ["credsync.db", "credsync.db-wal", "credsync.db-shm"]
        .iter()
        .filter_map(|name| {
            let path = inside.join("var/lib/credsync").join(name);
            fs::read(&path)
                .ok()
                .map(|bytes| (format!("/var/lib/credsync/{name}"), bytes))
        })
        .collect()
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Waits for `what` to hold, up to `seconds`; panics naming `waiting_for`.
#[track_caller]
pub fn wait_for<T>(seconds: u64, waiting_for: &str, mut what: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = what() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {seconds} s waiting for {waiting_for}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A field of `/proc/<pid>/status` ("SigBlk", "ShdPnd", "State", ...).
pub fn proc_status(pid: u32, field: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')
            .map(|v| v.trim().to_owned())
    })
}

/// A signal set of `/proc/<pid>/status` ("SigBlk", "SigPnd", ...) as a mask.
pub fn signal_mask(pid: u32, field: &str) -> Option<u64> {
    u64::from_str_radix(&proc_status(pid, field)?, 16).ok()
}

fn bit(signal: nix::sys::signal::Signal) -> u64 {
    1 << (signal as i32 - 1)
}

/// The signals credsync holds back while it writes (`signals::Blocked`).
fn held_while_writing() -> u64 {
    use nix::sys::signal::Signal::*;
    [SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTSTP, SIGPIPE]
        .into_iter()
        .map(bit)
        .fold(0, |a, b| a | b)
}

#[derive(Clone, Copy, Debug)]
enum Key {
    CtrlZ,
    CtrlC,
    Hangup,
}

impl Key {
    fn name(self) -> &'static str {
        match self {
            Key::CtrlZ => "ctrl-z",
            Key::CtrlC => "ctrl-c",
            Key::Hangup => "hangup",
        }
    }

    fn signal(self) -> nix::sys::signal::Signal {
        use nix::sys::signal::Signal;
        match self {
            Key::CtrlZ => Signal::SIGTSTP,
            Key::CtrlC => Signal::SIGINT,
            Key::Hangup => Signal::SIGHUP,
        }
    }
}

#[derive(Debug, PartialEq)]
enum Ended {
    /// credsync is gone (its exit code is what the terminal showed).
    Exited,
    /// credsync stopped; with or without the password files' lock.
    Stopped { lock_held: bool },
}

struct Seen {
    ended: Ended,
    /// What the caller's terminal showed.
    terminal: String,
}

/// The caller's side: a pseudo-terminal with an interactive bash (job
/// control on, as at a login) that runs the setuid binary with the given
/// arguments and sends the terminal key — once the terminal shows the cue,
/// or, with cue `-`, when the test says so (SIGUSR1) — then ends when the
/// test says so (SIGUSR1), printing what the terminal showed. Bounded by an
/// alarm. Arguments: scratch directory, key, cue, credsync's arguments.
const TERMINAL: &str = r#"
import os, pty, re, select, signal, sys, time
signal.alarm(60)
scratch, key, cue, args = sys.argv[1:5]
pid, master = pty.fork()
if pid == 0:
    env = {"PATH": os.environ["PATH"], "CREDSYNC": os.environ["CREDSYNC"], "PS1": "[shell]$ ", "TERM": "dumb"}
    os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-i"], env)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
with open(scratch + "/pids.tmp", "w") as f:
    f.write("%d %d" % (os.getpid(), pid))
os.rename(scratch + "/pids.tmp", scratch + "/pids")
shown = bytearray()
def pump(seconds, until=None, start=0):
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (until and re.compile(until).search(shown, start)):
        if select.select([master], [], [], 0.05)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)
os.write(master, b'"$CREDSYNC" ' + args.encode() + b'; echo "exit=$?"\n')
if cue == "-":
    signal.sigwait({signal.SIGUSR1})
else:
    pump(30, re.escape(cue.encode()))
pump(0.2)
if key == "hangup":
    os.close(master)
    os.waitpid(pid, 0)
else:
    os.write(master, {"ctrl-z": b"\x1a", "ctrl-c": b"\x03"}[key])
    # Until the shell prompts again: credsync ended or stopped.
    pump(30, rb"\[shell\]\$ ", len(shown))
signal.sigwait({signal.SIGUSR1})
if key != "hangup":
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
sys.stdout.write(shown.decode(errors="replace"))
"#;

/// alice at her terminal (see `TERMINAL`), in a scratch directory she owns.
struct Terminal {
    dir: PathBuf,
}

impl Terminal {
    fn new(sandbox: &Sandbox, alice: &Account) -> Terminal {
        let dir = sandbox.scratch("terminal");
        fs::write(dir.join("terminal.py"), TERMINAL).unwrap();
        std::os::unix::fs::chown(&dir, Some(alice.uid), Some(alice.gid)).unwrap();
        Terminal { dir }
    }

    /// Runs the terminal until it ends; the test's side goes meanwhile.
    fn run(&self, sandbox: &Sandbox, alice: &Account, key: Key, cue: &str, args: &str) -> String {
        let dir = self.dir.display();
        sandbox
            .as_user(alice)
            .bash(&format!(
                "exec python3 {dir}/terminal.py {dir} {} '{cue}' '{args}'",
                key.name()
            ))
            .expect_ok("the terminal")
            .stdout
    }

    /// The terminal's own pid and its shell's, once it has started.
    fn pids(&self) -> (u32, u32) {
        let pids = wait_for(20, "the terminal to start", || {
            fs::read_to_string(self.dir.join("pids")).ok()
        });
        let mut p = pids.split_whitespace().map(|p| p.parse().unwrap());
        (p.next().unwrap(), p.next().unwrap())
    }
}

/// Root holds the store's write lock, inside the sandbox, until SIGUSR1:
/// credsync then waits in the middle of its change, after taking the
/// password files' locks, with its signals held back.
const HOLD_STORE: &str = r#"
import os, signal, sqlite3, sys
signal.alarm(60)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
db = sqlite3.connect("/var/lib/credsync/credsync.db", isolation_level=None, timeout=0)
db.execute("BEGIN IMMEDIATE")
with open(sys.argv[1] + "/holder.tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + "/holder.tmp", sys.argv[1] + "/holder")
signal.sigwait({signal.SIGUSR1})
db.execute("ROLLBACK")
"#;

/// alice changes her password (OLD to NEW) through the setuid binary on a
/// terminal; while the change is in the middle of its write, `key` reaches
/// it through the terminal. Returns how credsync ended and what the
/// terminal showed. A credsync left stopped is killed once looked at.
fn interrupt_mid_write(sandbox: &Sandbox, alice: &Account, key: Key) -> Seen {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    sandbox.enrol("bob", OTHER); // the store exists, so it can be held
    let terminal = Terminal::new(sandbox, alice);
    let scratch = &terminal.dir;
    fs::write(scratch.join("input"), format!("{OLD}\n{NEW}\n")).unwrap();
    fs::write(scratch.join("hold.py"), HOLD_STORE).unwrap();
    let dir = scratch.display().to_string();
    let usr1 = |pid: u32| kill(Pid::from_raw(pid as i32), Signal::SIGUSR1).unwrap();
    let args = format!("passwd --stdin < {dir}/input");

    std::thread::scope(|s| {
        let holder = s.spawn(|| sandbox.root_sh(&format!("exec python3 {dir}/hold.py {dir}"), ""));
        let holder_pid: u32 = wait_for(20, "root to hold the store", || {
            fs::read_to_string(scratch.join("holder"))
                .ok()?
                .parse()
                .ok()
        });
        let caller = s.spawn(|| terminal.run(sandbox, alice, key, "-", &args));
        let (driver, shell) = terminal.pids();
        let credsync = wait_for(20, "credsync to start on the terminal", || {
            fs::read_dir("/proc")
                .ok()?
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .find(|&pid| {
                    parent_of(pid) == Some(shell)
                        && fs::read_to_string(format!("/proc/{pid}/comm"))
                            .is_ok_and(|c| c.trim() == "credsync")
                })
        });
        // Its signals are held back: it has the locks and is writing,
        // waiting for the store.
        let held = held_while_writing();
        wait_for(20, "credsync to reach the middle of its change", || {
            signal_mask(credsync, "SigBlk").filter(|m| m & held == held)
        });
        usr1(driver);
        let signal = bit(key.signal());
        wait_for(20, "the terminal's signal to reach credsync", || {
            let pending = signal_mask(credsync, "ShdPnd").unwrap_or(0)
                | signal_mask(credsync, "SigPnd").unwrap_or(0);
            (pending & signal != 0).then_some(())
        });
        usr1(holder_pid);
        holder.join().unwrap().expect_ok("the store holder");

        let ended = wait_for(30, "credsync to end or stop", || {
            match proc_status(credsync, "State").as_deref().map(|s| &s[..1]) {
                None | Some("Z") => Some(Ended::Exited),
                Some("T") => {
                    let lock_held =
                        sandbox.root_tool("python3", &["-c", TRY_PWD_LOCK], "").code != 0;
                    let _ = kill(Pid::from_raw(credsync as i32), Signal::SIGKILL);
                    Some(Ended::Stopped { lock_held })
                }
                Some(_) => None,
            }
        });
        usr1(driver);
        let terminal = caller.join().unwrap();
        Seen { ended, terminal }
    })
}

/// Fails while another process holds `/etc/.pwd.lock`.
const TRY_PWD_LOCK: &str = "import fcntl, os; \
    fcntl.lockf(os.open('/etc/.pwd.lock', os.O_WRONLY), fcntl.LOCK_EX | fcntl.LOCK_NB)";
