//! `kill -9` at random moments. A loop of changes (`recover` of one user,
//! `import` of a batch) is killed at a random point of each run; after every
//! kill, `sync` must leave each user it touched with the old or the new
//! password in both stores, every other line of `/etc/shadow` untouched, and
//! no lock or temporary behind. The moments are drawn across the measured
//! length of a run, so they land before, during and after the writes.
//!
//! Bounded: at most `ITERATIONS` runs or `TIME_BOUND`, whichever comes
//! first; the seed is printed on failure.

use super::fixture::{Fixture, Root};
use credsync_core::secret::Password;
use credsync_core::system::crypt::{self, LinuxHash};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const USERS: usize = 12;
const BATCH: usize = 4;
const ITERATIONS: u32 = 300;
const TIME_BOUND: Duration = Duration::from_secs(40);
/// Runs left whole at the start, to measure how long one takes.
const CALIBRATION: u32 = 5;

/// xorshift64*: enough randomness for picking moments, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn user(i: usize) -> String {
    format!("user{i:02}")
}

/// Does the shadow line of `user` hold a hash of `password`?
fn shadow_accepts(root: &Root, user: &str, password: &str) -> bool {
    let hash = LinuxHash::from_field(&root.shadow_field(user, 2)).expect("a crypt hash");
    crypt::verify(&Password::new(password.as_bytes().to_vec()).unwrap(), &hash)
}

/// Starts credsync on `root` with `stdin`, kills it with SIGKILL after
/// `after` unless it is done by then; was it killed?
fn run_and_kill(root: &Root, args: &[&str], stdin: &str, after: Duration) -> (bool, Duration) {
    let started = Instant::now();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("credsync"))
        .arg("--root")
        .arg(root.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start credsync");
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let deadline = started + after;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "credsync {args:?} failed: {status}");
            return (false, started.elapsed());
        }
        if Instant::now() >= deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return (true, started.elapsed());
        }
        std::thread::yield_now();
    }
}

/// Lines of `/etc/shadow` for users outside `touched`.
fn untouched_lines(shadow: &str, touched: &[String]) -> Vec<String> {
    shadow
        .split_inclusive('\n')
        .filter(|line| !touched.iter().any(|u| line.starts_with(&format!("{u}:"))))
        .map(str::to_owned)
        .collect()
}

#[test]
fn kill_9_at_random_moments_never_splits_a_password() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let mut fixture = Fixture::new();
    for i in 0..USERS {
        fixture = fixture.user(&user(i), "Start#Pass-0");
    }
    let root = fixture.build();
    // Every user managed from the start, so each change has both stores to keep.
    let enrol: String = (0..USERS)
        .map(|i| format!("{}:Start#Pass-0\n", user(i)))
        .collect();
    root.run(&["import"], &enrol).success();
    let mut current: BTreeMap<String, String> = (0..USERS)
        .map(|i| (user(i), "Start#Pass-0".to_owned()))
        .collect();

    // The moment to kill is drawn from [0, 1.2 × the longest whole run seen];
    // the first runs are left whole to measure it.
    let mut longest = Duration::ZERO;
    let (mut runs, mut kills) = (0u32, 0u32);
    // Killed runs that left the old password, and the new one: both must
    // happen, or the moments never straddled the rename of shadow.
    let (mut kept_old, mut took_new) = (0u32, 0u32);
    let started = Instant::now();
    while runs < ITERATIONS && started.elapsed() < TIME_BOUND {
        runs += 1;
        let batch = rng.below(3) == 0;
        let touched: Vec<String> = if batch {
            let first = rng.below(USERS as u64) as usize;
            (0..BATCH).map(|k| user((first + k) % USERS)).collect()
        } else {
            vec![user(rng.below(USERS as u64) as usize)]
        };
        let new_password = format!("Run{runs}#Pass-{seed:x}");
        let before = root.shadow();

        let after = if runs <= CALIBRATION {
            Duration::from_secs(60)
        } else {
            Duration::from_micros(rng.below(longest.as_micros() as u64 * 6 / 5))
        };
        let (killed, took) = if batch {
            let lines: String = touched
                .iter()
                .map(|u| format!("{u}:{new_password}\n"))
                .collect();
            run_and_kill(&root, &["import"], &lines, after)
        } else {
            let args = ["recover", touched[0].as_str(), "--stdin"];
            run_and_kill(&root, &args, &format!("{new_password}\n"), after)
        };
        if killed {
            kills += 1;
        } else {
            longest = longest.max(took);
        }

        root.run(&["sync"], "").success();
        let context = format!("seed {seed:#x}, run {runs} (killed: {killed}, at {after:?})");
        for u in &touched {
            let old = &current[u];
            let now_old = shadow_accepts(&root, u, old);
            let now_new = shadow_accepts(&root, u, &new_password);
            assert!(
                now_old != now_new,
                "{context}: {u}'s shadow holds neither or both passwords"
            );
            assert!(
                killed || now_new,
                "{context}: a run that finished left {u} without its new password"
            );
            if now_new {
                current.insert(u.clone(), new_password.clone());
            }
            if killed {
                if now_new {
                    took_new += 1;
                } else {
                    kept_old += 1;
                }
            }
        }
        assert_eq!(
            untouched_lines(&root.shadow(), &touched),
            untouched_lines(&before, &touched),
            "{context}: a line of another user changed"
        );
        // One status call shows every record against shadow.
        for row in root.status_json().as_array().unwrap() {
            assert_eq!(row["state"], "in-sync", "{context}: {row}");
        }
    }

    // The record's own hash (Argon2id) agrees with shadow for everyone.
    for (u, password) in &current {
        assert_eq!(root.verify(u, password), 0, "seed {seed:#x}: {u}");
    }
    let leftovers: Vec<String> = std::fs::read_dir(root.file("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("shadow") && n != "shadow" && n != "shadow-")
        .collect();
    assert!(leftovers.is_empty(), "seed {seed:#x}: left {leftovers:?}");
    println!(
        "{runs} runs, {kills} killed ({kept_old} users kept the old password, {took_new} had the new), seed {seed:#x}"
    );
    assert!(
        kept_old > 0 && took_new > 0,
        "seed {seed:#x}: the kills never straddled the write ({kept_old} old, {took_new} new)"
    );
}
