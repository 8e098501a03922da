//! credsync among the real shadow-utils, at the same time: `chpasswd` (through
//! pam_unix), `passwd -l`/`-u`, `useradd`/`userdel`, `vipw` and other credsync
//! runs all take `/etc/.pwd.lock` (and, but for pam_unix, `/etc/shadow.lock`),
//! so each waits for the others and none undoes another's change.
//!
//! The load test keeps a log of what every command reported and when it ran,
//! and judges the end state against it: a change that reported success is in
//! both stores unless a change that may have run after it replaced it. The
//! lock tests hold one side still — `vipw` with its editor open, or credsync
//! stopped by its `locked:stop` fault point — and watch the other wait.

use super::harness::{FAST_CONFIG, Outcome, Sandbox, exit};
use super::hostile::wait_for;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long the mixed load runs.
const LOAD: Duration = Duration::from_secs(15);

/// A cheap Argon2id cost, so the load runs as many changes as it can; the
/// cost has no bearing on how the locks are taken.
const LOAD_CONFIG: &str = "[argon2]\nmemory_kib = 1024\niterations = 1\n\
                           [locks]\ntimeout_secs = 1\n";

/// The process named in the sandbox's `/etc/shadow.lock` (shadow-utils'
/// format, `"<pid>\0"`), if the file exists.
fn shadow_lock_holder(sandbox: &Sandbox) -> Option<i32> {
    let raw = std::fs::read(sandbox.etc("shadow.lock")).ok()?;
    let text = String::from_utf8(raw).ok()?;
    text.trim_end_matches(['\0', '\n']).parse().ok()
}

/// The command name of a process, as `ps` shows it.
fn command_name(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The processes blocked waiting for the sandbox's `/etc/.pwd.lock`: the
/// `->` lines of `/proc/locks` on its inode.
fn waiting_for_pwd_lock(sandbox: &Sandbox) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(sandbox.etc(".pwd.lock")) else {
        return Vec::new();
    };
    let inode = format!(":{}", meta.ino());
    std::fs::read_to_string("/proc/locks")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            // A waiter: "7: -> POSIX  ADVISORY  WRITE 32267 fe:00:10089459 0 EOF"
            match line.split_whitespace().collect::<Vec<_>>()[..] {
                [_, "->", _, _, _, pid, device_inode, ..] if device_inode.ends_with(&inode) => {
                    pid.parse().ok()
                }
                _ => None,
            }
        })
        .collect()
}

/// Creates `count` accounts named `<prefix>1`…, and returns their names.
fn accounts(sandbox: &Sandbox, prefix: &str, count: usize) -> Vec<String> {
    (1..=count)
        .map(|i| {
            let name = format!("{prefix}{i}");
            sandbox.useradd(&name);
            name
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The mixed load: what ran, and what the end state must be.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    // credsync
    Recover,
    Passwd,
    Import,
    Sync,
    Verify,
    Status,
    // shadow-utils and PAM
    Chpasswd,
    Lock,
    Unlock,
    Useradd,
    Userdel,
    Pamtester,
}

impl Kind {
    fn is_credsync(self) -> bool {
        self <= Kind::Status
    }

    fn command(self) -> &'static str {
        match self {
            Kind::Recover => "credsync recover",
            Kind::Passwd => "credsync passwd",
            Kind::Import => "credsync import",
            Kind::Sync => "credsync sync",
            Kind::Verify => "credsync verify",
            Kind::Status => "credsync status",
            Kind::Chpasswd => "chpasswd",
            Kind::Lock => "passwd -l",
            Kind::Unlock => "passwd -u",
            Kind::Useradd => "useradd",
            Kind::Userdel => "userdel",
            Kind::Pamtester => "pamtester",
        }
    }
}

/// One command of the load, as it ran.
struct Op {
    kind: Kind,
    /// The accounts it changes, each with the password it sets (if it sets one).
    sets: Vec<(String, Option<String>)>,
    started: Instant,
    ended: Instant,
    outcome: Outcome,
}

impl Op {
    fn ok(&self) -> bool {
        self.outcome.code == exit::OK
    }

    fn busy(&self) -> bool {
        self.outcome.code == exit::BUSY
    }

    fn touches(&self, user: &str) -> bool {
        self.sets.iter().any(|(u, _)| u == user)
    }

    fn password_for(&self, user: &str) -> Option<&str> {
        self.sets
            .iter()
            .find(|(u, _)| u == user)
            .and_then(|(_, p)| p.as_deref())
    }

    /// It certainly came before `other`: it had ended when `other` began.
    fn before(&self, other: &Op) -> bool {
        self.ended < other.started
    }

    fn describe(&self, since: Instant) -> String {
        format!(
            "{} {:?} [{:.3}s..{:.3}s] exit {}: {}",
            self.kind.command(),
            self.sets,
            self.started.duration_since(since).as_secs_f64(),
            self.ended.duration_since(since).as_secs_f64(),
            self.outcome.code,
            self.outcome.stderr.trim()
        )
    }
}

fn timed(kind: Kind, sets: Vec<(String, Option<String>)>, run: impl FnOnce() -> Outcome) -> Op {
    let started = Instant::now();
    let outcome = run();
    Op {
        kind,
        sets,
        started,
        ended: Instant::now(),
        outcome,
    }
}

/// A credsync change of one user's password, as root.
fn change(sandbox: &Sandbox, kind: Kind, user: &str, password: String) -> Op {
    let verb = match kind {
        Kind::Recover => "recover",
        Kind::Passwd => "passwd",
        _ => unreachable!("not a single-user credsync change"),
    };
    let stdin = format!("{password}\n");
    timed(kind, vec![(user.into(), Some(password))], || {
        sandbox.credsync(&[verb, user, "--stdin"], &stdin)
    })
}

/// `credsync import` of one batch: every user of `users` gets a new password.
fn import(sandbox: &Sandbox, users: &[String], tag: &str) -> Op {
    let sets: Vec<(String, Option<String>)> = users
        .iter()
        .map(|u| (u.clone(), Some(format!("Imp#{u}-{tag}"))))
        .collect();
    let stdin: String = sets
        .iter()
        .map(|(u, p)| format!("{u}:{}\n", p.as_deref().unwrap()))
        .collect();
    timed(Kind::Import, sets, || sandbox.credsync(&["import"], &stdin))
}

/// Real `chpasswd` (pam_unix on Debian) for one user.
fn chpasswd(sandbox: &Sandbox, user: &str, password: String) -> Op {
    let stdin = format!("{user}:{password}\n");
    timed(Kind::Chpasswd, vec![(user.into(), Some(password))], || {
        sandbox.root_tool("chpasswd", &[], &stdin)
    })
}

/// A shadow-utils command on one account that sets no password. (The names
/// are plain words, safe in a shell command line.)
fn tool(sandbox: &Sandbox, kind: Kind, user: &str) -> Op {
    let command = match kind {
        Kind::Lock => format!("passwd -l {user}"),
        Kind::Unlock => format!("passwd -u {user}"),
        Kind::Useradd => format!("useradd -M -l -d /nonexistent -s /bin/sh {user}"),
        Kind::Userdel => format!("userdel {user}"),
        _ => unreachable!("not a shadow-utils account command"),
    };
    timed(kind, vec![(user.into(), None)], || {
        sandbox.root_sh(&command, "")
    })
}

/// Runs `step(0)`, `step(1)`, … until `until`; the log of every command run.
fn keep_running(until: Instant, mut step: impl FnMut(usize) -> Vec<Op>) -> Vec<Op> {
    let mut log = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        log.extend(step(n));
        n += 1;
    }
    log
}

/// The successful password changes to `user` that no other successful change
/// to `user` certainly followed: whichever of them ran last is what both
/// stores must hold now.
fn possible_last<'a>(log: &'a [Op], user: &str) -> Vec<(&'a Op, &'a str)> {
    let changes: Vec<(&Op, &str)> = log
        .iter()
        .filter(|op| op.ok())
        .filter_map(|op| Some((op, op.password_for(user)?)))
        .collect();
    changes
        .iter()
        .filter(|(op, _)| !changes.iter().any(|(later, _)| op.before(later)))
        .copied()
        .collect()
}

/// The change among `candidates` whose password both stores hold for `user`
/// now. The record picks it (`verify` fails fast; pam_unix waits 2 s after
/// each wrong password), pam_unix must agree. Otherwise the test fails saying
/// whose password each store holds instead.
#[track_caller]
fn current_password<'a>(
    sandbox: &Sandbox,
    log: &'a [Op],
    user: &str,
    candidates: &[(&'a Op, &'a str)],
    since: Instant,
) -> (&'a Op, &'a str) {
    let in_record = candidates
        .iter()
        .find(|(_, password)| sandbox.verify(user, password) == exit::OK);
    if let Some(&(op, password)) = in_record
        && sandbox.pamtester(user, password)
    {
        return (op, password);
    }
    let holder = |accepts: &dyn Fn(&str) -> bool| {
        log.iter()
            .rev()
            .find(|op| op.password_for(user).is_some_and(accepts))
            .map_or("no command of the log".into(), |op| op.describe(since))
    };
    let candidates: String = candidates
        .iter()
        .map(|(op, _)| format!("\n  {}", op.describe(since)))
        .collect();
    panic!(
        "{user}: the stores do not both hold the password of a change that may have \
         been last:{candidates}\n/etc/shadow holds the password of: {}\nthe record \
         holds the password of: {}",
        holder(&|p| sandbox.pamtester(user, p)),
        holder(&|p| sandbox.verify(user, p) == exit::OK),
    );
}

/// Names in `dir` a writer leaves behind only when it dies mid-change:
/// lock files (but `.pwd.lock`, which always stays), the link temporaries
/// `shadow.<pid>`, and the replacement temporaries.
fn leftovers(dir: &std::path::Path) -> Vec<String> {
    let temporaries = [
        "shadow+", "passwd+", "group+", "gshadow+", "nshadow", "npasswd",
    ];
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            let pid_suffix = ["shadow.", "passwd.", "group.", "gshadow."]
                .iter()
                .any(|p| {
                    name.strip_prefix(p)
                        .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
                });
            (name.ends_with(".lock") && name != ".pwd.lock")
                || temporaries.contains(&name.as_str())
                || pid_suffix
        })
        .collect();
    found.sort();
    found
}

/// How many of each kind of command ran, and how they ended.
fn tally(log: &[Op]) -> String {
    let mut by_kind: BTreeMap<Kind, (usize, usize, usize)> = BTreeMap::new();
    for op in log {
        let entry = by_kind.entry(op.kind).or_default();
        entry.0 += 1;
        if op.ok() {
            entry.1 += 1;
        } else if op.busy() {
            entry.2 += 1;
        }
    }
    by_kind
        .iter()
        .map(|(kind, (ran, ok, busy))| {
            format!(
                "  {:<18} {ran:>4} ran, {ok:>4} succeeded, {busy:>3} busy (exit 5), {:>2} other\n",
                kind.command(),
                ran - ok - busy
            )
        })
        .collect()
}

/// Many credsync changes at once — one user each, several on the same user,
/// `import` batches over the same users, `sync` — while real `chpasswd`,
/// `passwd -l`/`-u` and `useradd`/`userdel` loop, and readers (`verify`,
/// `status`, pam_unix) look on. With the lock bound at 1 s some credsync runs
/// give up; they must say "busy" (exit 5) and change nothing. Afterwards every
/// change that reported success is in both stores unless a change that may
/// have run after it replaced it, every `import` is whole, every file parses,
/// and nothing is left behind.
#[test]
fn changes_under_load_from_credsync_and_shadow_utils_lose_nothing() {
    let sandbox = Sandbox::new();
    sandbox.write_config(&format!("{FAST_CONFIG}{LOAD_CONFIG}"));
    let since = Instant::now();

    // credsync's accounts: three with one writer each, one with two writers,
    // a batch that two importers fight over, one that credsync and chpasswd
    // both change, and one nobody changes, which readers watch.
    let solo = accounts(&sandbox, "solo", 3);
    let batch = accounts(&sandbox, "batch", 3);
    let managed: Vec<String> = solo
        .iter()
        .chain(&batch)
        .cloned()
        .chain(["shared", "mixed", "steady"].map(String::from))
        .collect();
    for user in ["shared", "mixed", "steady"] {
        sandbox.useradd(user);
    }
    // Linux-only accounts: chpasswd's own, and one that passwd -l/-u toggles.
    sandbox.useradd("linuxonly");
    sandbox.useradd("locky");
    sandbox.chpasswd("linuxonly", "Start#linuxonly-0");
    sandbox.chpasswd("locky", "Start#locky-0");
    let locky_hash = sandbox.shadow_fields("locky")[1].clone();

    let mut log: Vec<Op> = managed
        .iter()
        .map(|user| change(&sandbox, Kind::Recover, user, format!("Start#{user}-0")))
        .collect();
    for op in &log {
        assert!(op.ok(), "enrolment failed: {}", op.describe(since));
    }
    let pwck_before = sandbox.pwck();
    let grpck_before = sandbox.root_sh("grpck -r", "");

    let load_started = Instant::now();
    let until = load_started + LOAD;
    let sandbox = &sandbox;
    let (batch, solo) = (&batch, &solo);
    let load: Vec<Op> = std::thread::scope(|s| {
        let mut workers = Vec::new();
        // One credsync writer per account, alternating recover and passwd.
        for (i, user) in solo.iter().enumerate() {
            workers.push(s.spawn(move || {
                keep_running(until, |n| {
                    let kind = [Kind::Recover, Kind::Passwd][(n + i) % 2];
                    vec![change(sandbox, kind, user, format!("Solo#{user}-{n}"))]
                })
            }));
        }
        // Two credsync writers on the same account.
        for w in 0..2 {
            workers.push(s.spawn(move || {
                keep_running(until, |n| {
                    let kind = [Kind::Passwd, Kind::Recover][(n + w) % 2];
                    vec![change(sandbox, kind, "shared", format!("Shared#w{w}-{n}"))]
                })
            }));
        }
        // Two importers, each batch naming the same three accounts.
        for w in 0..2 {
            workers.push(s.spawn(move || {
                keep_running(until, |n| {
                    vec![import(sandbox, batch, &format!("w{w}-{n}"))]
                })
            }));
        }
        // credsync and chpasswd on the same account; chpasswd on its own too.
        workers.push(s.spawn(move || {
            keep_running(until, |n| {
                vec![change(
                    sandbox,
                    Kind::Recover,
                    "mixed",
                    format!("Mixed#cs-{n}"),
                )]
            })
        }));
        workers.push(s.spawn(move || {
            keep_running(until, |n| {
                vec![
                    chpasswd(sandbox, "mixed", format!("Mixed#chp-{n}")),
                    chpasswd(sandbox, "linuxonly", format!("Chp#linuxonly-{n}")),
                ]
            })
        }));
        // passwd -l / -u, and accounts coming and going.
        workers.push(s.spawn(move || {
            keep_running(until, |_| {
                vec![
                    tool(sandbox, Kind::Lock, "locky"),
                    tool(sandbox, Kind::Unlock, "locky"),
                ]
            })
        }));
        workers.push(s.spawn(move || {
            keep_running(until, |n| {
                let name = format!("churn{n}");
                let added = tool(sandbox, Kind::Useradd, &name);
                let mut ops = vec![added];
                if ops[0].ok() {
                    ops.push(tool(sandbox, Kind::Userdel, &name));
                }
                ops
            })
        }));
        // A service start now and then.
        workers.push(s.spawn(move || {
            keep_running(until, |_| {
                vec![timed(Kind::Sync, Vec::new(), || {
                    sandbox.credsync(&["sync"], "")
                })]
            })
        }));
        // Readers: the account nobody changes must work throughout.
        workers.push(s.spawn(move || {
            keep_running(until, |n| {
                let steady = "Start#steady-0";
                vec![match n % 3 {
                    0 => timed(Kind::Verify, Vec::new(), || {
                        sandbox.credsync(&["verify", "steady", "--stdin"], &format!("{steady}\n"))
                    }),
                    1 => timed(Kind::Pamtester, Vec::new(), || {
                        sandbox.pamtester_ops("steady", steady, &["authenticate"])
                    }),
                    _ => timed(Kind::Status, Vec::new(), || {
                        sandbox.credsync(&["--json", "status", "steady"], "")
                    }),
                }]
            })
        }));
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a load worker panicked"))
            .collect()
    });
    let load_took = load_started.elapsed();
    let figures = tally(&load);
    println!(
        "concurrent load: {} commands in {:.1} s (after {:.1} s of set-up)\n{figures}",
        load.len(),
        load_took.as_secs_f64(),
        load_started.duration_since(since).as_secs_f64()
    );
    log.extend(load);

    // 1. credsync either did its job or said "busy"; shadow-utils always got
    //    its turn; readers never saw a broken state.
    let mut problems: Vec<String> = Vec::new();
    for op in &log {
        let fine = match op.kind {
            kind if kind.is_credsync() && op.busy() => {
                let said = op.outcome.stderr.to_lowercase();
                said.contains("locked") || said.contains("busy")
            }
            Kind::Status => {
                op.ok()
                    && serde_json::from_str::<serde_json::Value>(op.outcome.stdout.trim())
                        .is_ok_and(|v| v[0]["state"] == "in-sync")
            }
            Kind::Sync => op.ok() && !op.outcome.stdout.contains("restored"),
            _ => op.ok(),
        };
        if !fine {
            problems.push(format!("{}\n{}", op.describe(since), op.outcome));
        }
    }
    assert!(
        problems.is_empty(),
        "{} command(s) failed other than with a clear busy exit, or saw a broken \
         state:\n{}\n{figures}",
        problems.len(),
        problems.join("\n")
    );
    let busy = log.iter().filter(|op| op.busy()).count();

    // 2. Every line of every file parses, as before; nothing is left behind.
    let pwck_after = sandbox.pwck();
    let grpck_after = sandbox.root_sh("grpck -r", "");
    assert_eq!(
        (pwck_after.code, &pwck_after.stdout, &pwck_after.stderr),
        (pwck_before.code, &pwck_before.stdout, &pwck_before.stderr),
        "pwck -r reports something new after the load"
    );
    assert_eq!(
        (grpck_after.code, &grpck_after.stdout, &grpck_after.stderr),
        (
            grpck_before.code,
            &grpck_before.stdout,
            &grpck_before.stderr
        ),
        "grpck -r reports something new after the load"
    );
    assert_eq!(
        leftovers(&sandbox.etc("")),
        Vec::<String>::new(),
        "lock files or temporaries left in /etc"
    );
    let held = waiting_for_pwd_lock(sandbox);
    assert!(
        held.is_empty(),
        "processes still wait for .pwd.lock: {held:?}"
    );

    // 3. Accounts credsync does not manage: exactly what their one writer did.
    let last_chpasswd = log
        .iter()
        .rfind(|op| op.ok() && op.kind == Kind::Chpasswd && op.touches("linuxonly"))
        .and_then(|op| op.password_for("linuxonly"))
        .unwrap_or("Start#linuxonly-0");
    assert!(
        sandbox.pamtester("linuxonly", last_chpasswd),
        "chpasswd's last change to linuxonly is lost"
    );
    let locked = log
        .iter()
        .rfind(|op| op.ok() && matches!(op.kind, Kind::Lock | Kind::Unlock))
        .is_some_and(|op| op.kind == Kind::Lock);
    let locky = &sandbox.shadow_fields("locky")[1];
    assert_eq!(
        (locky.starts_with('!'), locky.trim_start_matches('!')),
        (locked, locky_hash.as_str()),
        "locky's lock state is not what passwd -l/-u left, or its hash moved"
    );
    let churned: Vec<String> = {
        let mut present: Vec<String> = Vec::new();
        for op in log
            .iter()
            .filter(|op| op.ok() && matches!(op.kind, Kind::Useradd | Kind::Userdel))
        {
            let name = &op.sets[0].0;
            if op.kind == Kind::Useradd {
                present.push(name.clone());
            } else {
                present.retain(|n| n != name);
            }
        }
        present
    };
    for file in ["passwd", "shadow", "group"] {
        let text = std::fs::read_to_string(sandbox.etc(file)).unwrap();
        let found: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split(':').next())
            .filter(|n| n.starts_with("churn"))
            .collect();
        assert_eq!(found, churned, "/etc/{file} lost or kept a useradd/userdel");
    }

    // 4. A service start finishes whatever is left and reconciles everything.
    sandbox.credsync(&["sync"], "").expect_ok("the final sync");
    let status = sandbox
        .credsync(&["--json", "status"], "")
        .expect_ok("status --json");
    let rows: serde_json::Value = serde_json::from_str(status.stdout.trim()).unwrap();
    let states: Vec<(String, String)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["user"].as_str().unwrap().to_owned(),
                r["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut expected: Vec<(String, String)> = managed
        .iter()
        .map(|u| (u.clone(), "in-sync".to_owned()))
        .collect();
    expected.sort();
    assert_eq!(states, expected, "not every managed account is in sync");
    let intents = sandbox
        .root_sh(
            "sqlite3 -readonly /var/lib/credsync/credsync.db 'SELECT count(*) FROM intent'",
            "",
        )
        .expect_ok("count the intents");
    assert_eq!(intents.stdout.trim(), "0", "intents left after sync");
    assert_eq!(leftovers(&sandbox.etc("")), Vec::<String>::new());

    // 5. Nothing lost: for every managed account, the stores hold the password
    //    of a successful change that may have been the last one, and agree.
    for user in &managed {
        let candidates = possible_last(&log, user);
        let (last, password) = current_password(sandbox, &log, user, &candidates, since);
        // The record let go of the enrolment password (pam_unix's hash is the
        // new password's, checked above).
        let start = format!("Start#{user}-0");
        if password != start {
            assert_eq!(
                sandbox.verify(user, &start),
                exit::DENIED,
                "{user}: the enrolment password still works after it was replaced"
            );
        }
        // An `import` is whole: every account of the batch has its password.
        if last.kind == Kind::Import {
            for (other, password) in &last.sets {
                assert!(
                    sandbox.pamtester(other, password.as_deref().unwrap()),
                    "{other} does not hold the password of the batch {user} holds: {}",
                    last.describe(since)
                );
            }
        }
    }
    println!(
        "{busy} credsync busy exits; nothing lost across {} managed accounts; checks took {:.1} s",
        managed.len(),
        (Instant::now() - load_started - load_took).as_secs_f64()
    );
}

// ---------------------------------------------------------------------------
// The locks, one holder at a time.

/// Real shadow-utils holding both locks — `vipw -s` while its editor is
/// open, `.pwd.lock` and `shadow.lock` — makes credsync give up as busy after
/// its bound, naming vipw, and change nothing; once vipw is done, credsync
/// goes through.
#[test]
fn credsync_is_busy_while_vipw_holds_the_password_files() {
    let sandbox = Sandbox::new();
    sandbox.useradd("alice");
    sandbox.chpasswd("alice", "Old#Pass-2024");
    sandbox.write_config(&format!("{FAST_CONFIG}[locks]\ntimeout_secs = 1\n"));
    let before = sandbox.shadow();

    // The editor vipw starts waits on a FIFO until the test lets it go.
    let scratch = sandbox.scratch("vipw");
    let fifo = scratch.join("release");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let editor = scratch.join("editor");
    std::fs::write(
        &editor,
        format!("#!/bin/sh\ncat {} > /dev/null\n", fifo.display()),
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    std::thread::scope(|s| {
        let vipw =
            s.spawn(|| sandbox.root_sh(&format!("EDITOR={} exec vipw -s", editor.display()), ""));
        // Opening the FIFO without blocking succeeds once the editor reads it:
        // vipw holds its locks and waits for its editor.
        let release = wait_for(20, "vipw's editor", || {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
                .ok()
        });
        let holder = shadow_lock_holder(&sandbox).expect("vipw holds /etc/shadow.lock");
        assert_eq!(command_name(holder), "vipw");

        let started = Instant::now();
        let out = sandbox.credsync(&["recover", "alice", "--stdin"], "New#Pass-2025\n");
        let out = out.expect_code(exit::BUSY, "recover while vipw edits /etc/shadow");
        assert!(
            out.stderr.contains("locked") && out.stderr.contains(&format!("pid {holder}")),
            "the message doesn't say the files are locked by vipw (pid {holder}):\n{out}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the 1 s bound was not kept"
        );
        assert_eq!(
            sandbox.shadow(),
            before,
            "/etc/shadow changed while vipw held it"
        );
        assert_eq!(sandbox.state("alice"), None, "a record was created");

        drop(release); // the editor reads end of file and quits
        let vipw = vipw.join().unwrap().expect_ok("vipw -s");
        assert!(vipw.stdout.contains("unchanged"), "{vipw}");
    });

    assert_eq!(leftovers(&sandbox.etc("")), Vec::<String>::new());
    sandbox
        .credsync(&["recover", "alice", "--stdin"], "New#Pass-2025\n")
        .expect_ok("recover once vipw is done");
    sandbox.assert_only_accepts("alice", "New#Pass-2025", "Old#Pass-2024");
}

/// `passwd -l`, a synced lock, then `passwd -u`: the next service start must
/// follow the unlock, not take the hash it unlocked for a rollback and lock
/// the account again.
#[test]
fn an_unlock_after_a_synced_lock_is_adopted_not_undone() {
    const PASSWORD: &str = "Old#Pass-2024";
    let sandbox = Sandbox::new();
    sandbox.useradd("admin");
    sandbox.enrol("admin", PASSWORD);

    sandbox
        .root_tool("passwd", &["-l", "admin"], "")
        .expect_ok("passwd -l admin");
    sandbox
        .credsync(&["sync"], "")
        .expect_ok("sync after the lock");
    assert!(
        !sandbox.pamtester("admin", PASSWORD),
        "passwd -l did not lock"
    );
    assert_eq!(
        sandbox.verify("admin", PASSWORD),
        exit::DENIED,
        "the lock was not adopted"
    );

    assert_eq!(sandbox.state("admin").as_deref(), Some("locked"));

    sandbox
        .root_tool("passwd", &["-u", "admin"], "")
        .expect_ok("passwd -u admin");
    // The same password, unlocked: nothing to adopt.
    assert_eq!(sandbox.state("admin").as_deref(), Some("in-sync"));
    assert_eq!(
        sandbox.verify("admin", PASSWORD),
        exit::OK,
        "verify does not follow the unlock Linux made"
    );
    let out = sandbox
        .credsync(&["sync"], "")
        .expect_ok("sync after the unlock");
    assert!(
        !out.stdout.contains("restored"),
        "sync undid the unlock as if it were a rollback:\n{out}"
    );
    assert!(
        !sandbox.shadow_fields("admin")[1].starts_with('!'),
        "the account is locked again"
    );
    assert!(sandbox.pamtester("admin", PASSWORD));
    assert_eq!(sandbox.verify("admin", PASSWORD), exit::OK);
    assert_eq!(sandbox.state("admin").as_deref(), Some("in-sync"));
}

/// The reverse direction needs credsync stopped while it holds the locks:
/// `CREDSYNC_FAULT=locked:stop`, so the suite must be built with the
/// `fault-injection` feature (`scripts/test.sh` does); without it these fail.
mod held_by_credsync {
    use super::*;
    use crate::harness::Account;
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    /// Root, for a credsync run that must keep an environment variable: a run
    /// by uid 0 is not a setuid run, so credsync keeps its environment.
    const ROOT: Account = Account { uid: 0, gid: 0 };

    const OLD: &str = "Old#Pass-2024";
    const NEW: &str = "Fresh!Horse-Battery9";
    const LATER: &str = "Later$Chpasswd-31";

    /// Whether a process is stopped (state `T` in `/proc/PID/stat`).
    fn is_stopped(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let after_name = &stat[stat.rfind(')')? + 1..];
                after_name.split_whitespace().next().map(|s| s == "T")
            })
            .unwrap_or(false)
    }

    /// A credsync run stopped right after taking its locks. Dropping it
    /// without `resume` kills it, so a failing test never leaves it holding
    /// the sandbox's locks (or a thread waiting for it).
    struct Stopped {
        pid: i32,
        resumed: bool,
    }

    impl Stopped {
        /// Waits until the credsync run is stopped holding `shadow.lock`.
        fn wait(sandbox: &Sandbox) -> Stopped {
            let pid = wait_for(30, "credsync to stop holding the locks", || {
                shadow_lock_holder(sandbox)
                    .filter(|&pid| is_stopped(pid) && command_name(pid) == "credsync")
            });
            Stopped {
                pid,
                resumed: false,
            }
        }

        fn resume(mut self) {
            kill(Pid::from_raw(self.pid), Signal::SIGCONT).expect("SIGCONT credsync");
            self.resumed = true;
        }
    }

    impl Drop for Stopped {
        fn drop(&mut self) {
            if !self.resumed {
                let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
            }
        }
    }

    /// `credsync recover alice` with NEW, stopping once it holds the locks.
    fn stopping_recover(sandbox: &Sandbox) -> Outcome {
        sandbox
            .as_user(&ROOT)
            .with_env(&[
                ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                ("CREDSYNC_FAULT", "locked:stop"),
            ])
            .run(&["recover", "alice", "--stdin"], &format!("{NEW}\n"))
    }

    fn alice() -> Sandbox {
        let sandbox = Sandbox::new();
        sandbox.useradd("alice");
        sandbox.chpasswd("alice", OLD);
        sandbox
    }

    /// While credsync holds the password files, shadow-utils' `passwd -l`
    /// waits its own 15 s and gives up with "cannot lock" (exit 5), changing
    /// nothing; credsync then finishes, and `passwd -l` goes through and locks
    /// the password credsync set.
    #[test]
    fn passwd_gives_up_while_credsync_holds_the_locks() {
        let sandbox = alice();
        let before = sandbox.shadow();

        std::thread::scope(|s| {
            let credsync = s.spawn(|| stopping_recover(&sandbox));
            let stopped = Stopped::wait(&sandbox);

            let passwd = s.spawn(|| sandbox.root_tool("passwd", &["-l", "alice"], ""));
            wait_for(10, "passwd to wait for .pwd.lock", || {
                waiting_for_pwd_lock(&sandbox)
                    .into_iter()
                    .find(|&pid| command_name(pid) == "passwd")
            });
            let passwd = passwd.join().unwrap();
            let passwd = passwd.expect_code(exit::BUSY, "passwd -l while credsync holds the locks");
            assert!(passwd.stderr.contains("cannot lock"), "{passwd}");
            assert_eq!(sandbox.shadow(), before, "/etc/shadow changed meanwhile");

            stopped.resume();
            let out = credsync.join().unwrap().expect_ok("credsync after SIGCONT");
            assert!(
                out.stdout.contains("Password updated successfully"),
                "{out}"
            );
        });

        let set_by_credsync = sandbox.shadow_fields("alice")[1].clone();
        assert!(sandbox.pamtester("alice", NEW));
        sandbox
            .root_tool("passwd", &["-l", "alice"], "")
            .expect_ok("passwd -l once credsync is done");
        assert_eq!(
            sandbox.shadow_fields("alice")[1],
            format!("!{set_by_credsync}"),
            "passwd -l did not lock the hash credsync wrote"
        );
        assert_eq!(leftovers(&sandbox.etc("")), Vec::<String>::new());
    }

    /// `chpasswd` (pam_unix) started while credsync holds the password files
    /// waits for them rather than failing or writing; when credsync resumes,
    /// both finish in lock order: credsync's change first, then chpasswd's,
    /// which the next `sync` adopts. Neither is lost, nor half-applied.
    #[test]
    fn chpasswd_waits_for_credsync_and_then_goes_through() {
        let sandbox = alice();
        let before = sandbox.shadow();

        std::thread::scope(|s| {
            let credsync = s.spawn(|| stopping_recover(&sandbox));
            let stopped = Stopped::wait(&sandbox);

            let chpasswd =
                s.spawn(|| sandbox.root_tool("chpasswd", &[], &format!("alice:{LATER}\n")));
            wait_for(10, "chpasswd to wait for .pwd.lock", || {
                waiting_for_pwd_lock(&sandbox)
                    .into_iter()
                    .find(|&pid| command_name(pid) == "chpasswd")
            });
            assert!(!chpasswd.is_finished(), "chpasswd did not wait");
            assert_eq!(sandbox.shadow(), before, "/etc/shadow changed meanwhile");

            stopped.resume();
            credsync.join().unwrap().expect_ok("credsync after SIGCONT");
            chpasswd
                .join()
                .unwrap()
                .expect_ok("chpasswd once credsync let go");
        });

        // chpasswd came second: Linux holds its password, the record credsync's.
        assert!(sandbox.pamtester("alice", LATER));
        assert!(!sandbox.pamtester("alice", NEW));
        assert_eq!(sandbox.state("alice").as_deref(), Some("linux-newer"));
        let out = sandbox.credsync(&["sync"], "").expect_ok("sync");
        assert!(out.stdout.contains("adopted"), "{out}");
        sandbox.assert_only_accepts("alice", LATER, NEW);
        assert_eq!(leftovers(&sandbox.etc("")), Vec::<String>::new());
    }
}
