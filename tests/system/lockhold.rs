//! An ordinary user must not be able to hold the password files locked.
//!
//! A setuid run that dies while it holds `/etc/.pwd.lock` and
//! `/etc/shadow.lock`, and that its parent then never reaps, stays a zombie
//! whose pid in `shadow.lock` is "alive" to shadow-utils and to credsync:
//! every password change on the system is refused for as long as the caller
//! likes. The caller controls more than `kill` (which a run that became root
//! ignores): the terminal (Ctrl-C, Ctrl-\, a hangup), interval timers and
//! resource limits set before `execve`, all of which survive it.
//!
//! Each test is such a caller: `alice`, through the setuid binary, changes her
//! own password with one of those set against the run, from a parent
//! (`CALLER`) that waits for the run to end without reaping it. While the run
//! lies unreaped, `/etc/shadow.lock` must be gone and root's `passwd -l bob`
//! must work; afterwards both stores hold the same password for alice (the
//! change may have been made or not).
//!
//! To make the blow land while the run holds the password files, root holds
//! the store (SQLite, exclusively, as a slow disk or a long `sync` would):
//! the run then waits there, having taken both locks, until root lets go.
//! What counts CPU time can't be aimed that way: a calibration run, with a
//! large `/etc/shadow` (50,000 long lines, ~32 MB) that makes the locked
//! part of a change long, tells how much CPU a run has used when it takes
//! the locks and when it is done; the timer or limit is set to come due at
//! three points between the two (runs vary). A memory limit is tried at
//! several sizes around what that large file needs.

use super::harness::{Account, FAST_CONFIG, Sandbox, exit};
use super::hostile::{proc_status, signal_mask, wait_for};
use super::{NEW, OLD, OTHER, alice_and_bob};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The caller, run by alice: forks, sets `attack` up in the child and
/// executes the setuid binary (`passwd --stdin`, stdin from a file), then
/// waits for it to end *without reaping it* (`waitid` with `WNOWAIT`) and
/// reaps it only when the test says so (SIGUSR1).
///
/// It reports through files in the scratch directory: `pid` ("<own pid>
/// <credsync's pid>"), `ended` ("exited N" or "killed SIGNAL"), and `reaped`
/// (credsync's user and system CPU seconds from `wait4`, then whatever its
/// terminal showed).
///
/// Attacks: `none`; `ctrl-c`, `ctrl-backslash`, `hangup` (credsync on a pty
/// of the caller's, the key typed or the terminal closed when the test says
/// so); `timer-real`, `timer-virtual`, `timer-prof` (`setitimer`, `amount`
/// seconds); `cpu-limit` (RLIMIT_CPU set so that the run reaches it after
/// `amount` seconds of its own CPU); `address-space`, `data` (RLIMIT_AS,
/// RLIMIT_DATA of `amount` bytes). Bounded by an alarm.
const CALLER: &str = r#"
import math, os, pty, resource, select, signal, sys, threading, time
signal.alarm(60)
scratch, attack, amount, credsync, stdin = sys.argv[1:6]

def report(name, text):
    with open(f"{scratch}/{name}.tmp", "w") as f:
        f.write(text)
    os.rename(f"{scratch}/{name}.tmp", f"{scratch}/{name}")

def until_told():
    if signal.sigtimedwait({signal.SIGUSR1}, 45) is None:
        sys.exit("the test never said to go on")

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGCHLD})
on_terminal = attack in ("ctrl-c", "ctrl-backslash", "hangup")
if on_terminal:
    pid, master = pty.fork()
else:
    pid = os.fork()
if pid == 0:
    try:
        # As from a login shell: nothing blocked, the default actions (a
        # background job of `sh -c`, as this is, ignores SIGINT and SIGQUIT;
        # Python ignores SIGPIPE and SIGXFSZ).
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        for number in ("SIGINT", "SIGQUIT", "SIGHUP", "SIGTERM", "SIGALRM", "SIGVTALRM",
                       "SIGPROF", "SIGXCPU", "SIGPIPE", "SIGXFSZ"):
            signal.signal(getattr(signal, number), signal.SIG_DFL)
        fd = os.open(stdin, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
        if attack == "timer-real":
            signal.setitimer(signal.ITIMER_REAL, float(amount))
        elif attack == "timer-virtual":
            signal.setitimer(signal.ITIMER_VIRTUAL, float(amount))
        elif attack == "timer-prof":
            signal.setitimer(signal.ITIMER_PROF, float(amount))
        elif attack == "cpu-limit":
            # RLIMIT_CPU counts the CPU this process used before exec too.
            budget = float(amount)
            limit = math.ceil(budget + 0.2)
            while time.process_time() < limit - budget:
                pass
            resource.setrlimit(resource.RLIMIT_CPU, (limit, limit))
        elif attack == "address-space":
            resource.setrlimit(resource.RLIMIT_AS, (int(amount), int(amount)))
        elif attack == "data":
            resource.setrlimit(resource.RLIMIT_DATA, (int(amount), int(amount)))
        os.execv(credsync, [credsync, "passwd", "--stdin"])
    finally:
        os._exit(127)

report("pid", f"{os.getpid()} {pid}")
shown = bytearray()
if on_terminal:
    stop = threading.Event()
    def drain():
        while not stop.is_set():
            if select.select([master], [], [], 0.05)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                shown.extend(chunk)
    drainer = threading.Thread(target=drain)
    drainer.start()
    # Unless credsync ends first.
    told = signal.sigtimedwait({signal.SIGUSR1, signal.SIGCHLD}, 45)
    if told is None:
        sys.exit("the test never said to go on")
    if told.si_signo == signal.SIGCHLD:
        pass
    elif attack == "hangup":
        stop.set()
        drainer.join()
        os.close(master)
    else:
        os.write(master, {"ctrl-c": b"\x03", "ctrl-backslash": b"\x1c"}[attack])
ended = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
if ended.si_code == os.CLD_EXITED:
    report("ended", f"exited {ended.si_status}")
else:
    report("ended", f"killed {ended.si_status}")
until_told()
_, _, usage = os.wait4(pid, 0)
if on_terminal and attack != "hangup":
    stop.set()
    drainer.join()
report("reaped", f"{usage.ru_utime} {usage.ru_stime}\n" + shown.decode(errors="replace"))
"#;

/// Root holds the store exclusively — readers too — until SIGUSR1: a run
/// that has taken the password files' locks then waits to open it. Bounded
/// by an alarm (and by credsync's own 15 s wait for the store).
const GATE: &str = r#"
import os, signal, sqlite3, sys
signal.alarm(60)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
db = sqlite3.connect("/var/lib/credsync/credsync.db", isolation_level=None, timeout=0)
db.execute("PRAGMA locking_mode = EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE")
with open(sys.argv[1] + "/gate.tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + "/gate.tmp", sys.argv[1] + "/gate")
signal.sigtimedwait({signal.SIGUSR1}, 45)
db.execute("ROLLBACK")
db.close()
"#;

/// How the caller saw its run of credsync end (before reaping it).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ended {
    Exited(i32),
    Killed(i32),
}

/// alice and bob, both managed by credsync (so the store exists), and a
/// scratch directory of alice's holding the caller's script and input.
struct Scene {
    sandbox: Sandbox,
    alice: Account,
    dir: PathBuf,
    /// alice's password is NEW (else OLD), as of the end of the last run.
    changed: std::cell::Cell<bool>,
}

impl Scene {
    /// With `large`, `/etc/shadow` also holds 50,000 long lines (~32 MB)
    /// after the accounts of the fixture, and Argon2 is cheap, so that most
    /// of a run's CPU goes to the file, much of it under the locks.
    fn new(large: bool) -> Scene {
        let (sandbox, alice, _bob) = alice_and_bob();
        sandbox.enrol("alice", OLD);
        sandbox.enrol("bob", OTHER);
        let dir = sandbox.scratch("caller");
        fs::write(dir.join("caller.py"), CALLER).unwrap();
        fs::write(dir.join("gate.py"), GATE).unwrap();
        fs::write(dir.join("old-to-new"), format!("{OLD}\n{NEW}\n")).unwrap();
        fs::write(dir.join("new-to-old"), format!("{NEW}\n{OLD}\n")).unwrap();
        std::os::unix::fs::chown(&dir, Some(alice.uid), Some(alice.gid)).unwrap();
        if large {
            let mut shadow = sandbox.shadow();
            let hash = format!(
                "$6${}${}{}",
                "s".repeat(16),
                "h".repeat(86),
                "x".repeat(500)
            );
            for i in 0..50_000 {
                shadow.extend(format!("pad{i:05}:{hash}:19000:0:99999:7:::\n").bytes());
            }
            sandbox.put_shadow(&shadow);
            sandbox.write_config(&format!(
                "{FAST_CONFIG}[argon2]\nmemory_kib = 1024\niterations = 1\n"
            ));
        }
        Scene {
            sandbox,
            alice,
            dir,
            changed: std::cell::Cell::new(false),
        }
    }

    /// Root starts holding the store; returns once it does.
    fn gate(&self) -> Gate {
        let _ = fs::remove_file(self.dir.join("gate"));
        let dir = self.dir.display();
        self.sandbox
            .root_sh(
                &format!("python3 {dir}/gate.py {dir} </dev/null >{dir}/gate.log 2>&1 &"),
                "",
            )
            .expect_ok("start root's hold on the store");
        let pid = wait_for(20, "root to hold the store", || {
            fs::read_to_string(self.dir.join("gate")).ok()?.parse().ok()
        });
        Gate {
            pid,
            released: false,
        }
    }

    /// alice starts changing her password (from whichever of OLD and NEW she
    /// has to the other) with `attack` set against the run; returns once
    /// credsync has started.
    fn start(&self, attack: &str, amount: &str) -> Run<'_> {
        for name in ["pid", "ended", "reaped"] {
            let _ = fs::remove_file(self.dir.join(name));
        }
        // Not asked of the store here: root may be holding it.
        let input = if self.changed.get() {
            "new-to-old"
        } else {
            "old-to-new"
        };
        let dir = self.dir.display();
        self.sandbox
            .as_user(&self.alice)
            .bash(&format!(
                "python3 {dir}/caller.py {dir} {attack} {amount} \"$CREDSYNC\" {dir}/{input} \
                 </dev/null >{dir}/caller.log 2>&1 &"
            ))
            .expect_ok("start alice's caller");
        let pids = wait_for(20, "alice's caller to start credsync", || {
            fs::read_to_string(self.dir.join("pid")).ok()
        });
        let mut pids = pids.split_whitespace().map(|p| p.parse().unwrap());
        Run {
            scene: self,
            what: format!("{attack} {amount}"),
            caller: pids.next().unwrap(),
            credsync: pids.next().unwrap(),
            started: Instant::now(),
            reaped: false,
        }
    }

    /// The process named in `/etc/shadow.lock` (`"<pid>\0"`), if it exists.
    fn shadow_lock(&self) -> Option<String> {
        let raw = fs::read(self.sandbox.etc("shadow.lock")).ok()?;
        Some(
            String::from_utf8_lossy(&raw)
                .trim_end_matches(['\0', '\n'])
                .to_owned(),
        )
    }

    /// The property. `run` has ended and lies unreaped: its pid is alive to
    /// anyone who asks. No `shadow.lock` is left, and root's `passwd -l` of
    /// another user goes through at once.
    #[track_caller]
    fn assert_password_files_free(&self, run: &Run, ended: Ended) {
        let state = proc_status(run.credsync, "State");
        assert!(
            state.as_deref().is_some_and(|s| s.starts_with('Z')),
            "credsync {} is not an unreaped zombie: {state:?}",
            run.credsync
        );
        let lock = self.shadow_lock();
        let passwd = self.sandbox.root_tool("passwd", &["-l", "bob"], "");
        assert_eq!(
            passwd.code,
            exit::OK,
            "alice's run ({}) ended {ended:?} (/etc/shadow.lock: {lock:?}); while it lies \
             unreaped, root's `passwd -l bob` fails:\n{passwd}\n{}",
            run.what,
            run.log()
        );
        assert_eq!(
            lock, None,
            "/etc/shadow.lock is left by alice's run ({}), ended {ended:?}",
            run.what
        );
        assert!(
            self.sandbox.shadow_fields("bob")[1].starts_with('!'),
            "passwd -l did not lock bob"
        );
        self.sandbox
            .root_tool("passwd", &["-u", "bob"], "")
            .expect_ok("passwd -u bob");
    }

    /// Lets go of the store, then checks what every held run must leave:
    /// the password files free once it ends, both stores agreeing.
    #[track_caller]
    fn let_go_and_check(&self, gate: Gate, run: Run<'_>) {
        gate.release();
        let ended = run.wait_ended();
        self.assert_password_files_free(&run, ended);
        run.reap();
        self.assert_consistent();
    }

    /// Both stores hold the same password for alice, whichever it is, and
    /// nothing is pending.
    #[track_caller]
    fn assert_consistent(&self) {
        let (current, previous) = if self.sandbox.verify("alice", NEW) == exit::OK {
            (NEW, OLD)
        } else {
            (OLD, NEW)
        };
        self.sandbox.assert_only_accepts("alice", current, previous);
        assert_eq!(self.sandbox.state("alice").as_deref(), Some("in-sync"));
        assert!(self.sandbox.pamtester("bob", OTHER));
        assert_eq!(self.sandbox.verify("bob", OTHER), exit::OK);
    }
}

/// Root's hold on the store; let go by `release`, or when dropped.
struct Gate {
    pid: u32,
    released: bool,
}

impl Gate {
    fn release(mut self) {
        kill(Pid::from_raw(self.pid as i32), Signal::SIGUSR1).expect("signal root's hold");
        self.released = true;
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if !self.released {
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        }
    }
}

/// One run of alice's caller.
struct Run<'a> {
    scene: &'a Scene,
    what: String,
    caller: u32,
    credsync: u32,
    /// Just after the caller set the attack up and started credsync.
    started: Instant,
    reaped: bool,
}

impl Run<'_> {
    fn ended(&self) -> Option<Ended> {
        let ended = fs::read_to_string(self.scene.dir.join("ended")).ok()?;
        let (how, number) = ended.split_once(' ')?;
        let number = number.trim().parse().ok()?;
        Some(match how {
            "exited" => Ended::Exited(number),
            _ => Ended::Killed(number),
        })
    }

    fn wait_ended(&self) -> Ended {
        wait_for(40, "alice's run of credsync to end", || self.ended())
    }

    /// Waits until the run holds both password files' locks.
    fn wait_holding_locks(&self) {
        let pid = self.credsync.to_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.scene.shadow_lock().as_deref() != Some(&pid) {
            if let Some(ended) = self.ended() {
                panic!(
                    "alice's run ({}) ended {ended:?} before taking the locks:\n{}",
                    self.what,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "alice's run ({}) did not take the password files' locks in 20 s \
                 (/etc/shadow.lock: {:?}; credsync {}: {:?}):\n{}",
                self.what,
                self.scene.shadow_lock(),
                self.credsync,
                proc_status(self.credsync, "State"),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Tells the caller to go on: type its key, or reap the run.
    fn tell(&self) {
        kill(Pid::from_raw(self.caller as i32), Signal::SIGUSR1).expect("signal alice's caller");
    }

    /// Has the caller reap the run; its user and system CPU seconds.
    fn reap(mut self) -> (f64, f64) {
        self.tell();
        let reaped = wait_for(20, "alice's caller to reap credsync", || {
            fs::read_to_string(self.scene.dir.join("reaped")).ok()
        });
        self.reaped = true;
        let scene = self.scene;
        scene
            .changed
            .set(scene.sandbox.verify("alice", NEW) == exit::OK);
        let mut cpu = reaped
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .map(|s| s.parse::<f64>().unwrap());
        (cpu.next().unwrap(), cpu.next().unwrap())
    }

    /// What the caller and credsync printed, for failure messages.
    fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.scene.dir.join(name)).unwrap_or_default();
        format!(
            "--- alice's caller and credsync ---\n{}{}",
            read("caller.log"),
            read("reaped")
        )
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(Pid::from_raw(self.caller as i32), Signal::SIGKILL);
        }
    }
}

/// CPU seconds (user, user + system) a process has used so far, with
/// those of its threads that have ended.
fn cpu_of(pid: u32) -> (f64, f64) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/PID/stat");
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("run getconf CLK_TCK");
    let ticks: f64 = String::from_utf8_lossy(&ticks.stdout)
        .trim()
        .parse()
        .expect("clock ticks per second");
    let user = fields[11].parse::<f64>().unwrap() / ticks;
    let system = fields[12].parse::<f64>().unwrap() / ticks;
    (user, user + system)
}

// ---- the caller's terminal ---------------------------------------------------------

/// The run holds the locks (waiting for the store) when alice's terminal
/// sends it `signal`: by a key (`attack`), or by hanging up.
fn terminal_signal_while_holding_the_locks(attack: &str, signal: Signal) {
    let scene = Scene::new(false);
    let gate = scene.gate();
    let run = scene.start(attack, "-");
    run.wait_holding_locks();
    run.tell();
    let bit = 1u64 << (signal as i32 - 1);
    wait_for(20, "the terminal's signal to reach credsync", || {
        let pending = signal_mask(run.credsync, "ShdPnd").unwrap_or(0)
            | signal_mask(run.credsync, "SigPnd").unwrap_or(0);
        (run.ended().is_some() || pending & bit != 0).then_some(())
    });
    // It got the signal in the locked part, not (say) after giving up on the
    // store.
    let ended = run.ended();
    assert!(
        ended.is_none() || ended == Some(Ended::Killed(signal as i32)),
        "alice's run ended {ended:?} before the terminal's signal reached it:\n{}",
        run.log()
    );
    scene.let_go_and_check(gate, run);
}

/// Ctrl-C, typed while the run holds the password files (here: before its
/// first write), must not end it there.
#[test]
fn ctrl_c_while_the_locks_are_held_leaves_them_free() {
    terminal_signal_while_holding_the_locks("ctrl-c", Signal::SIGINT);
}

/// Nor Ctrl-\ (SIGQUIT).
#[test]
fn ctrl_backslash_while_the_locks_are_held_leaves_them_free() {
    terminal_signal_while_holding_the_locks("ctrl-backslash", Signal::SIGQUIT);
}

/// Nor the terminal hanging up (SIGHUP).
#[test]
fn a_hangup_while_the_locks_are_held_leaves_them_free() {
    terminal_signal_while_holding_the_locks("hangup", Signal::SIGHUP);
}

// ---- a timer set before exec -------------------------------------------------------

/// `setitimer(ITIMER_REAL)` before exec: SIGALRM comes due while the run
/// holds the locks (waiting for the store).
#[test]
fn a_real_time_timer_set_before_exec_leaves_the_locks_free() {
    const DUE: f64 = 3.0;
    let scene = Scene::new(false);
    let gate = scene.gate();
    let run = scene.start("timer-real", &DUE.to_string());
    run.wait_holding_locks();
    // Past the timer (set just before `started`), with room for a slow start.
    let due = Duration::from_secs_f64(DUE + 1.0);
    wait_for(20, "the timer to come due", || {
        (run.ended().is_some() || run.started.elapsed() > due).then_some(())
    });
    // The timer came due in the locked part: the run died of it there, or
    // holds the locks still.
    match run.ended() {
        None => assert_eq!(
            scene.shadow_lock(),
            Some(run.credsync.to_string()),
            "alice's run let go of the locks before the timer came due"
        ),
        Some(ended) => assert_eq!(
            ended,
            Ended::Killed(Signal::SIGALRM as i32),
            "alice's run ended before the timer came due:\n{}",
            run.log()
        ),
    }
    scene.let_go_and_check(gate, run);
}

// ---- CPU time --------------------------------------------------------------------------

/// How much CPU a run of alice's change uses, with the large shadow file:
/// (user, user + system) seconds when it holds the locks, and in all.
struct Calibration {
    locked: (f64, f64),
    whole: (f64, f64),
}

impl Calibration {
    /// A plain run, held at the store to read its CPU time there.
    fn measure(scene: &Scene) -> Calibration {
        let gate = scene.gate();
        let run = scene.start("none", "-");
        run.wait_holding_locks();
        let locked = cpu_of(run.credsync);
        gate.release();
        let ended = run.wait_ended();
        assert_eq!(
            ended,
            Ended::Exited(0),
            "the calibration run failed:\n{}",
            run.log()
        );
        let (user, system) = run.reap();
        let calibration = Calibration {
            locked,
            whole: (user, user + system),
        };
        assert!(
            calibration.whole.0 - calibration.locked.0 > 0.1
                && calibration.whole.1 - calibration.locked.1 > 0.1,
            "the locked part of a change took too little CPU to aim at: locked at {:?}, done at {:?}",
            calibration.locked,
            calibration.whole
        );
        calibration
    }
}

/// Runs alice's change with `attack` three times, its CPU budget (seconds
/// of the run's own CPU, user only with `user_only`) running out at three
/// points of the locked part as the calibration saw it: runs vary by a
/// tenth of a second or more, so one point could miss. Checks the property
/// after each, and that the timer or limit did come due in at least one.
fn cpu_attacks(scene: &Scene, attack: &str, calibration: &Calibration, user_only: bool) {
    let (locked, whole) = if user_only {
        (calibration.locked.0, calibration.whole.0)
    } else {
        (calibration.locked.1, calibration.whole.1)
    };
    let mut came_due = Vec::new();
    for part in [0.15, 0.4, 0.65] {
        let budget = format!("{:.3}", locked + part * (whole - locked));
        let run = scene.start(attack, &budget);
        let ended = run.wait_ended();
        scene.assert_password_files_free(&run, ended);
        let log = run.log();
        let (user, system) = run.reap();
        let used = if user_only { user } else { user + system };
        let budget: f64 = budget.parse().unwrap();
        // What `CALLER` sets: the timer to the budget; RLIMIT_CPU to whole
        // seconds, counting the CPU it burns before exec.
        let due = if attack == "cpu-limit" {
            (budget + 0.2).ceil()
        } else {
            budget
        };
        // Where root can't lift the limit (no CAP_SYS_RESOURCE, as in a
        // container), the setuid run refuses to start under it, before any
        // lock: that answers the attack too.
        let refused =
            ended == Ended::Exited(3) && log.contains("refusing to run with a CPU time limit");
        came_due.push((budget, used >= due || refused, ended));
    }
    assert!(
        came_due.iter().any(|&(_, due, _)| due),
        "{attack}: the runs ended before their budget ran out (budget, came due, ended): \
         {came_due:?}; calibration: locked at {:?}, done at {:?}",
        calibration.locked,
        calibration.whole
    );
}

/// `setitimer(ITIMER_VIRTUAL)` and `setitimer(ITIMER_PROF)` before exec:
/// SIGVTALRM and SIGPROF come due in the middle of the locked part.
#[test]
fn cpu_time_timers_set_before_exec_leave_the_locks_free() {
    let scene = Scene::new(true);
    let calibration = Calibration::measure(&scene);
    cpu_attacks(&scene, "timer-virtual", &calibration, true);
    cpu_attacks(&scene, "timer-prof", &calibration, false);
    scene.assert_consistent();
}

/// `ulimit -t` before exec, the CPU already used counted: SIGXCPU (and
/// SIGKILL) come due in the middle of the locked part.
#[test]
fn a_cpu_time_limit_set_before_exec_leaves_the_locks_free() {
    let scene = Scene::new(true);
    let calibration = Calibration::measure(&scene);
    cpu_attacks(&scene, "cpu-limit", &calibration, false);
    scene.assert_consistent();
}

// ---- memory ------------------------------------------------------------------------------

/// Limits, in MiB, across the sizes at which, with the large shadow file,
/// the locked part of a change runs out of memory (about 80 to 120 MiB for
/// the test build: below, the run can't even read the file and fails
/// cleanly before any lock; above, it has enough).
const MEMORY_LIMITS_MIB: [u64; 5] = [80, 92, 104, 116, 128];

/// alice changes her password under each limit of `attack` in turn.
fn memory_limits(attack: &str) {
    let scene = Scene::new(true);
    for mib in MEMORY_LIMITS_MIB {
        let run = scene.start(attack, &(mib << 20).to_string());
        let ended = run.wait_ended();
        scene.assert_password_files_free(&run, ended);
        // Root lifts the limit, or (without CAP_SYS_RESOURCE) the setuid
        // run refuses to start under it; either way it finishes whole.
        assert!(
            ended == Ended::Exited(0)
                || (ended == Ended::Exited(3) && run.log().contains("refusing to run with")),
            "{attack} {mib} MiB: neither lifted nor refused ({ended:?}):\n{}",
            run.log()
        );
        run.reap();
    }
    scene.assert_consistent();
}

/// `ulimit -v` before exec: an allocation of the locked part fails, which
/// aborts the run.
#[test]
fn an_address_space_limit_with_a_large_shadow_leaves_the_locks_free() {
    memory_limits("address-space");
}

/// `ulimit -d` before exec, likewise.
#[test]
fn a_data_limit_with_a_large_shadow_leaves_the_locks_free() {
    memory_limits("data");
}
