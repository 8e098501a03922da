//! `Monitor`: one event per change to a managed account, whoever made it —
//! this service, the command line, pam_credsync, `sync` at boot, or Linux
//! alone (`passwd` without the module).
//!
//! One thread watches, with inotify, the store's directory (the database and
//! its WAL) and `/etc` (shadow is replaced by a rename). After a burst of
//! writes has been quiet for [`QUIET`] (at most [`SETTLE`]), it reads every record and shadow and
//! compares them with what it saw last:
//! - a record whose session epoch moved (or a new record) is an event with the
//!   record's own source;
//! - a shadow entry that changed while its record did not, and that the record
//!   doesn't hold (drift `linux-newer`), is an event with source `linux` once
//!   it has stood for [`LINUX_GRACE`] — [`LINUX_GRACE_WITH_MODULE`] where a
//!   PAM stack holds pam_credsync.so, which writes the record a moment after
//!   pam_unix writes shadow: its change must not read as Linux's.
//!
//! Changes made through this service are seen the same way, so every event
//! comes from one place. The watcher keeps one read connection to the store:
//! reopening it per scan would make SQLite create and delete its WAL, which
//! inotify would report as a change.
#![forbid(unsafe_code)]

use credsync_core::account::UserName;
use credsync_core::clock::Now;
use credsync_core::reconcile::{self, Drift};
use credsync_core::store::Store;
use credsync_core::system::crypt::LinuxHash;
use credsync_core::system::{Paths, shadow};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// How long a burst of writes must be quiet before the stores are read.
pub const QUIET: Duration = Duration::from_millis(5);
/// The longest a burst of writes is waited out before the stores are read.
pub const SETTLE: Duration = Duration::from_millis(50);
/// How long a Linux-only change must stand before it is announced as one
/// when no PAM stack holds pam_credsync.so.
pub const LINUX_GRACE: Duration = Duration::from_millis(250);
/// The same when a stack holds it: the module writes the record after its
/// Argon2id hash, a moment after pam_unix wrote shadow; only a change it
/// didn't follow (`usermod -p`, `chpasswd -e`, a module that failed) is
/// announced as Linux's, this long after.
pub const LINUX_GRACE_WITH_MODULE: Duration = Duration::from_secs(3);
/// The longest a scan waits for a change in flight (an intent in the store)
/// to complete before it reads the stores all the same.
const DEFER: Duration = Duration::from_secs(2);
/// How often the stores are read with no notification at all: a safety net
/// for a store directory that didn't exist yet, or a missed notification.
const SWEEP: Duration = Duration::from_secs(2);

/// One change, as `Monitor` streams it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub user: String,
    pub session_epoch: i64,
    pub source: String,
    /// Unix seconds.
    pub changed_at: i64,
}

/// What the service's connections use: the stream of events, and every
/// account's latest one for `Monitor(initial: true)`.
#[derive(Clone)]
pub struct Monitor {
    events: broadcast::Sender<Event>,
    latest: Arc<Mutex<HashMap<String, Event>>>,
}

impl Monitor {
    /// Starts watching; the first scan is done before this returns, so that
    /// the first `Monitor` call already sees every account.
    pub fn start(paths: Paths, store_owner: u32) -> std::io::Result<Monitor> {
        let (events, _) = broadcast::channel(4096);
        let monitor = Monitor {
            events,
            latest: Arc::new(Mutex::new(HashMap::new())),
        };
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
        let mut watcher = Watcher {
            paths,
            store_owner,
            inotify,
            store_watch: None,
            store: None,
            seen: HashMap::new(),
            pending_linux: HashMap::new(),
            grace: LINUX_GRACE,
            scanned: false,
            deferred_since: None,
            monitor: monitor.clone(),
        };
        watcher.arm()?;
        watcher.scan();
        std::thread::Builder::new()
            .name("monitor".into())
            .spawn(move || watcher.run())?;
        Ok(monitor)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Every managed account's latest event (its current epoch).
    pub fn latest(&self) -> Vec<Event> {
        let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<Event> = latest.values().cloned().collect();
        all.sort_by(|a, b| a.user.cmp(&b.user));
        all
    }
}

/// What the watcher saw of one account at its last scan.
struct Seen {
    session_epoch: i64,
    shadow: Option<LinuxHash>,
}

struct Watcher {
    paths: Paths,
    store_owner: u32,
    inotify: Inotify,
    store_watch: Option<WatchDescriptor>,
    /// The read connection, and the database file's (device, inode) it is on.
    store: Option<(Store, (u64, u64))>,
    seen: HashMap<UserName, Seen>,
    /// Linux-only changes waiting out the grace.
    pending_linux: HashMap<UserName, Instant>,
    /// [`LINUX_GRACE`], or [`LINUX_GRACE_WITH_MODULE`]: looked up again when
    /// a Linux-only change is first seen.
    grace: Duration,
    /// The first scan only learns what is there: accounts already managed at
    /// start-up are no news.
    scanned: bool,
    /// Since when a scan has waited for a change in flight to complete.
    deferred_since: Option<Instant>,
    monitor: Monitor,
}

impl Watcher {
    /// Watches `/etc` and the store's directory, once it exists.
    fn arm(&mut self) -> std::io::Result<()> {
        let changes =
            AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CREATE;
        if self.store_watch.is_none() {
            self.inotify.add_watch(&self.paths.etc(), changes)?;
            if let Ok(wd) = self
                .inotify
                .add_watch(&self.paths.store_dir(), changes | AddWatchFlags::IN_DELETE)
            {
                self.store_watch = Some(wd);
            }
        }
        Ok(())
    }

    fn run(mut self) {
        loop {
            let timeout = self
                .pending_linux
                .values()
                .map(|since| (*since + self.grace).saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(SWEEP)
                .min(if self.deferred_since.is_some() {
                    DEFER
                } else {
                    SWEEP
                });
            if self.wait(timeout) {
                // Let the burst finish (a change writes the store, shadow,
                // and the store again), but never for longer than SETTLE:
                // a steady stream of changes must not hold the events back.
                let settle = Instant::now() + SETTLE;
                while Instant::now() < settle && self.wait(QUIET) {}
            }
            if self.store_watch.is_none() {
                let _ = self.arm();
            }
            self.scan();
        }
    }

    /// Waits up to `timeout` for a notification about the store or shadow
    /// (others, for the rest of `/etc`, are drained and ignored); true if
    /// one came.
    fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(n) if n > 0 => {
                    if self.drain() {
                        return true;
                    }
                }
                Ok(_) => return false,
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => {
                    std::thread::sleep(left);
                    return false;
                }
            }
            if left.is_zero() {
                return false;
            }
        }
    }

    /// Reads every pending notification; true if any concerns the store or
    /// shadow (not the other files of `/etc`).
    fn drain(&self) -> bool {
        let mut relevant = false;
        while let Ok(events) = self.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            relevant |= events.iter().any(|e| {
                Some(e.wd) == self.store_watch || e.name.as_deref().is_some_and(|n| n == "shadow")
            });
        }
        relevant
    }

    /// Reads both stores and announces what changed since the last scan.
    fn scan(&mut self) {
        let Some(findings) = self.read() else {
            return;
        };
        let now = Instant::now();
        let mut announced = Vec::new();
        // Sets: a scan of 10,000 accounts must not compare every pair.
        let mut present = HashSet::new();
        for (record, drift, shadow) in findings {
            present.insert(record.user.to_string());
            let event = Event {
                user: record.user.to_string(),
                session_epoch: record.session_epoch,
                source: record.source.as_str().to_owned(),
                changed_at: record.changed_at,
            };
            let before = self.seen.get(&record.user);
            let moved = before.is_none_or(|b| b.session_epoch != record.session_epoch);
            let linux_changed = drift == Drift::LinuxNewer
                && before.is_some_and(|b| b.shadow.as_ref() != shadow.as_ref());
            if moved {
                self.pending_linux.remove(&record.user);
                if self.scanned {
                    announced.push(event.clone());
                }
            } else if linux_changed {
                if self.pending_linux.is_empty() {
                    self.grace = linux_grace(&self.paths);
                }
                self.pending_linux.entry(record.user.clone()).or_insert(now);
            }
            if drift != Drift::LinuxNewer {
                self.pending_linux.remove(&record.user);
            }
            if let Some(since) = self.pending_linux.get(&record.user)
                && now.duration_since(*since) >= self.grace
            {
                self.pending_linux.remove(&record.user);
                announced.push(Event {
                    source: "linux".to_owned(),
                    changed_at: Now::read().unix_secs,
                    ..event.clone()
                });
            }
            // A pending Linux change keeps the old shadow hash as "seen" until
            // it is announced, so that it is compared again at the next scan.
            let keep_old = self.pending_linux.contains_key(&record.user);
            let shadow = if keep_old {
                before.and_then(|b| b.shadow.clone())
            } else {
                shadow
            };
            self.seen.insert(
                record.user.clone(),
                Seen {
                    session_epoch: record.session_epoch,
                    shadow,
                },
            );
            self.monitor
                .latest
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(event.user.clone(), event);
        }
        self.seen.retain(|user, _| present.contains(user.as_str()));
        self.monitor
            .latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|user, _| present.contains(user));
        self.scanned = true;
        for event in announced {
            // No subscriber is not an error: nobody is listening yet.
            let _ = self.monitor.events.send(event);
        }
    }

    /// Every record with its drift and shadow hash; `None` when the stores
    /// can't be read now (the next notification or sweep tries again).
    #[allow(clippy::type_complexity)]
    fn read(&mut self) -> Option<Vec<(credsync_core::store::Record, Drift, Option<LinuxHash>)>> {
        let db = std::fs::metadata(self.paths.store_dir().join("credsync.db"))
            .ok()
            .map(|m| (m.dev(), m.ino()));
        let reopen = match (&self.store, db) {
            (Some((_, id)), Some(now)) => *id != now,
            (None, Some(_)) => true,
            (_, None) => {
                self.store = None;
                return Some(Vec::new());
            }
        };
        if reopen {
            let store = Store::open_existing(&self.paths.store_dir(), self.store_owner).ok()??;
            self.store = Some((store, db?));
        }
        let (store, _) = self.store.as_ref()?;
        // A credsync change in flight (its intent recorded, not yet
        // completed) writes the store again when it completes: the scan
        // waits for that write rather than read everything twice. An intent
        // left by a crash is waited out for DEFER at most.
        let in_flight = self.scanned && store.intents().map(|i| !i.is_empty()).unwrap_or(false);
        match (in_flight, self.deferred_since) {
            (true, None) => {
                self.deferred_since = Some(Instant::now());
                return None;
            }
            (true, Some(since)) if since.elapsed() < DEFER => return None,
            _ => self.deferred_since = None,
        }
        let shadow = shadow::read_unlocked(&self.paths).ok()?;
        let findings = reconcile::survey(Some(store), &shadow, None).ok()?;
        Some(
            findings
                .into_iter()
                .map(|(record, drift)| {
                    let hash = shadow.entry(&record.user).map(|e| e.hash);
                    (record, drift, hash)
                })
                .collect(),
        )
    }
}

/// How long a Linux-only change waits: longer if any PAM service's stack
/// names pam_credsync.so on a line that isn't a comment.
fn linux_grace(paths: &Paths) -> Duration {
    let with_module = std::fs::read_dir(paths.pam_d())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .any(|text| {
            text.lines()
                .any(|l| !l.trim_start().starts_with('#') && l.contains("pam_credsync.so"))
        });
    if with_module {
        LINUX_GRACE_WITH_MODULE
    } else {
        LINUX_GRACE
    }
}
