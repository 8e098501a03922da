//! The node agent (`credsync-fleet agent`, `credsync-fleet.service`).
//!
//! 1. Connect to etcd (retrying, never blocking boot: `credsync sync` has run).
//! 2. Read the users prefix at one revision: the latest entry of each user,
//!    so a node that was away catches up without replaying what it missed.
//! 3. Judge each entry ([`Node::offer`]) and apply the good ones through the
//!    core's crash-safe change path, with the version and revision recorded
//!    in the record's transaction.
//! 4. Watch from the next revision; when the watch breaks, resume from the
//!    last revision handled; after a compaction, read the prefix again.
//! 5. Report: the applied version, refusals and drift of every user, under a
//!    lease renewed every third of its time to live.
#![forbid(unsafe_code)]

use crate::config::{Conflict, FleetConfig};
use crate::entry::{Entry, Refusal};
use crate::report::{Failure, Report, UserReport};
use crate::transport::{Change, Etcd, Kv, Transport, Watch, Watched};
use credsync_core::account::UserName;
use credsync_core::change::{self, HashedChange, HashedRequest};
use credsync_core::clock::Now;
use credsync_core::config::Config;
use credsync_core::error::Error;
use credsync_core::store::{FleetApplied, FleetStamp, Provenance, Source, Store};
use credsync_core::stores::Stores;
use credsync_core::system::Paths;
use credsync_core::system::shadow::{self, ShadowFile};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One node: its root, its settings, and what it refused since it started.
pub struct Node {
    pub paths: Paths,
    pub config: Config,
    pub fleet: FleetConfig,
    pub store_owner: u32,
    failures: BTreeMap<String, Failure>,
    /// What the store's `fleet_applied` holds, read again after every write
    /// this agent makes (only the agent, and a reconcile on the node, write
    /// it; the latter is caught at the next catch-up).
    applied: HashMap<String, FleetApplied>,
    /// The revision the store's `fleet_progress` holds, as far as known.
    progress: i64,
}

impl Node {
    pub fn new(paths: Paths, config: Config, fleet: FleetConfig, store_owner: u32) -> Node {
        Node {
            paths,
            config,
            fleet,
            store_owner,
            failures: BTreeMap::new(),
            applied: HashMap::new(),
            progress: 0,
        }
    }

    /// Reads `fleet_applied` and `fleet_progress` from the store.
    fn reread(&mut self) -> Result<(), Error> {
        let Some(store) = Store::open_existing(&self.paths.store_dir(), self.store_owner)? else {
            self.applied.clear();
            return Ok(());
        };
        self.applied = store
            .fleet_applied()?
            .into_iter()
            .filter(|a| a.fleet == self.fleet.fleet)
            .map(|a| (a.user.as_str().to_owned(), a))
            .collect();
        self.progress = store.fleet_revision(&self.fleet.fleet)?.unwrap_or(0);
        Ok(())
    }

    /// Takes one user's entry as found at `kv`. `force` (a reconcile run on
    /// the node) applies it over local drift whatever the conflict policy.
    /// A refusal is kept for the report, never an error: the next entry may
    /// be good.
    pub fn offer(&mut self, kv: &Kv, force: bool) -> Result<(), Error> {
        let Some(user) = kv.key.strip_prefix(&self.fleet.users_prefix()) else {
            return Ok(());
        };
        let user = user.to_owned();
        let outcome = self.judge_and_apply(&user, kv, force);
        match outcome {
            Ok(()) => {
                self.failures.remove(&user);
            }
            Err(failure) => {
                eprintln!(
                    "credsync-fleet: {user}: refused the entry at revision {}: {}",
                    kv.mod_revision, failure.error
                );
                self.failures.insert(user, failure);
            }
        }
        Ok(())
    }

    fn judge_and_apply(&mut self, user: &str, kv: &Kv, force: bool) -> Result<(), Failure> {
        let refused = |version, e: String| Failure { version, error: e };
        let entry = Entry::open(&kv.value, &self.fleet.public_keys, &self.fleet.fleet, user)
            .map_err(|r| refused(None, r.to_string()))?;
        let version = Some(entry.version);
        if let Some(held) = self.applied.get(user) {
            if entry.version < held.version {
                let replay = Refusal::Replayed {
                    offered: entry.version,
                    applied: held.version,
                };
                return Err(refused(version, replay.to_string()));
            }
            if entry.version == held.version && !force {
                return Ok(());
            }
            if self.fleet.conflict == Conflict::ReportOnly
                && !force
                && shadow::read_unlocked(&self.paths)
                    .map_err(Error::from)
                    .and_then(|shadow| self.drift_of(&shadow, held))
                    .map_err(|e| refused(version, e.to_string()))?
                    .is_some()
            {
                // Reported as drift; the fleet's version waits for a reconcile here.
                return Ok(());
            }
        }
        let request = HashedRequest {
            changes: vec![HashedChange {
                user: entry.user.clone(),
                linux: entry.crypt.clone(),
                app: Some(entry.argon2id.clone()),
                fleet: Some(FleetStamp {
                    fleet: self.fleet.fleet.clone(),
                    version: entry.version,
                    revision: kv.mod_revision,
                }),
            }],
            must_change: entry.must_change,
            provenance: Provenance {
                at: Now::read(),
                by: entry.set_by.clone(),
                source: Source::Fleet,
                auid: None,
            },
            aging: Some(entry.aging),
        };
        let at = request.provenance.at.unix_secs;
        blocking(|| change::apply_hashed(&self.paths, &self.config, self.store_owner, request))
            .map_err(|e| refused(version, e.to_string()))?;
        // What the change's last transaction wrote to `fleet_applied` and
        // `fleet_progress`, without reading it back.
        self.progress = self.progress.max(kv.mod_revision);
        self.applied.insert(
            user.to_owned(),
            FleetApplied {
                user: entry.user.clone(),
                fleet: self.fleet.fleet.clone(),
                version: entry.version,
                revision: kv.mod_revision,
                set_by: entry.set_by.clone(),
                linux_hash: entry.crypt.clone(),
                applied_at: at,
            },
        );
        eprintln!(
            "credsync-fleet: {user}: applied version {} set by {}",
            entry.version, entry.set_by
        );
        Ok(())
    }

    /// A local change since the fleet's version was applied: shadow holds
    /// another password than the one the entry set.
    fn drift_of(
        &self,
        shadow: &ShadowFile,
        applied: &FleetApplied,
    ) -> Result<Option<String>, Error> {
        let Some(entry) = shadow.entry(&applied.user) else {
            return Ok(Some("the account no longer exists on this node".into()));
        };
        if entry.hash.unlocked() == applied.linux_hash {
            return Ok(None);
        }
        let how = Store::open_existing(&self.paths.store_dir(), self.store_owner)?
            .and_then(|store| store.record(&applied.user).ok().flatten())
            .filter(|record| record.linux_hash == entry.hash.unlocked())
            .map(|record| format!(" ({} by {})", record.source.as_str(), record.changed_by))
            .unwrap_or_default();
        Ok(Some(format!(
            "changed on this node{how} since version {} was applied",
            applied.version
        )))
    }

    /// The report of every fleet-managed user: what the store holds, what
    /// was refused, and drift.
    pub fn report(&self, revision: i64) -> Result<Report, Error> {
        let shadow = shadow::read_unlocked(&self.paths)?;
        let mut users = BTreeMap::new();
        for (name, held) in &self.applied {
            users.insert(
                name.clone(),
                UserReport {
                    applied: held.version,
                    failed: None,
                    drift: self.drift_of(&shadow, held)?,
                },
            );
        }
        for (name, failure) in &self.failures {
            users
                .entry(name.clone())
                .or_insert(UserReport {
                    applied: 0,
                    failed: None,
                    drift: None,
                })
                .failed = Some(failure.clone());
        }
        Ok(Report {
            node: self.fleet.node.clone(),
            at: Now::read().unix_secs,
            revision,
            users,
        })
    }

    /// Records that every entry up to `revision` was handled, unless an
    /// apply's own transaction recorded it already.
    fn record_revision(&mut self, revision: i64) -> Result<(), Error> {
        if revision <= self.progress {
            return Ok(());
        }
        let mut store = Store::open(&self.paths.store_dir(), self.store_owner)?;
        store.set_fleet_revision(&self.fleet.fleet, revision)?;
        self.progress = revision;
        Ok(())
    }

    /// Publishes the report; with `seen`, its unleased copy too (on the
    /// report's own tick, not after every change: "silent since" needs no
    /// finer grain, and each change then costs etcd one put).
    async fn publish(
        &self,
        etcd: &mut impl Transport,
        revision: i64,
        seen: bool,
    ) -> Result<(), String> {
        let report = blocking(|| self.report(revision)).map_err(|e| e.to_string())?;
        let text = serde_json::to_string(&report).expect("a report serialises");
        let seen_key = self.fleet.seen_key(&self.fleet.node);
        etcd.report(
            (&self.fleet.report_key(&self.fleet.node), text.clone()),
            seen.then_some((seen_key.as_str(), text)),
            self.fleet.report_ttl,
        )
        .await
        .map_err(|e| e.to_string())
    }

    /// Reads the whole prefix and offers every entry; returns its revision.
    async fn catch_up(&mut self, etcd: &mut impl Transport, force: bool) -> Result<i64, String> {
        // Taking the locks finishes a change a crash interrupted (and
        // migrates an older store), so the view below is what both stores
        // hold, never a half-applied entry mistaken for a local change.
        blocking(|| {
            Stores::lock(&self.paths, &self.config, self.store_owner)?;
            self.reread()
        })
        .map_err(|e| e.to_string())?;
        let snapshot = etcd
            .read_prefix(&self.fleet.users_prefix())
            .await
            .map_err(|e| e.to_string())?;
        for kv in &snapshot.kvs {
            self.offer(kv, force).map_err(|e| e.to_string())?;
        }
        blocking(|| self.record_revision(snapshot.revision)).map_err(|e| e.to_string())?;
        Ok(snapshot.revision)
    }

    /// Runs until `stop` turns true: connects, catches up, watches, reports.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(200);
        let mut said = String::new();
        while !*stop.borrow() {
            let connected = Instant::now();
            let watching = stop.clone();
            let failed = tokio::select! {
                failed = async {
                    let mut etcd = Etcd::connect(&self.fleet).await.map_err(|e| e.to_string())?;
                    self.follow(&mut etcd, &mut stop).await
                } => failed,
                // A stop while connecting or catching up: nothing is cut
                // short, the store work inside is synchronous.
                () = stopped(watching) => Ok(()),
            };
            // Back off afresh only after a connection that held: one that
            // fails as soon as it is made keeps the delay growing.
            if connected.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(200);
            }
            if let Err(e) = failed {
                if e != said {
                    eprintln!("credsync-fleet: {e}; retrying");
                    said = e;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }

    /// One connection's life: returns `Ok` when asked to stop, `Err` when
    /// the connection is lost.
    async fn follow(
        &mut self,
        etcd: &mut Etcd,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let mut revision = self.catch_up(etcd, false).await?;
        self.publish(etcd, revision, true).await?;
        let prefix = self.fleet.users_prefix();
        let mut stream = etcd
            .watch_prefix(&prefix, revision + 1)
            .await
            .map_err(|e| e.to_string())?;
        let mut report_tick = tokio::time::interval(self.fleet.report_ttl / 3);
        let mut drift_tick = tokio::time::interval(self.fleet.drift_check);
        loop {
            tokio::select! {
                watched = stream.next() => match watched.map_err(|e| e.to_string())? {
                    Some(Watched::Changes { revision: at, changes }) => {
                        // The last event's revision: a batch need not reach
                        // the revision its header names.
                        for change in changes {
                            if let Change::Put(kv) = change {
                                self.offer(&kv, false).map_err(|e| e.to_string())?;
                            }
                        }
                        revision = at;
                        blocking(|| self.record_revision(revision))
                            .map_err(|e| e.to_string())?;
                        self.publish(etcd, revision, false).await?;
                    }
                    Some(Watched::Compacted) => {
                        revision = self.catch_up(etcd, false).await?;
                        self.publish(etcd, revision, false).await?;
                        stream = etcd.watch_prefix(&prefix, revision + 1).await.map_err(|e| e.to_string())?;
                    }
                    None => {
                        // The stream ended: resume from the last revision handled.
                        stream = etcd.watch_prefix(&prefix, revision + 1).await.map_err(|e| e.to_string())?;
                    }
                },
                _ = report_tick.tick() => self.publish(etcd, revision, true).await?,
                _ = drift_tick.tick() => {
                    if self.failures.is_empty() {
                        // What a reconcile run on this node wrote meanwhile.
                        blocking(|| self.reread()).map_err(|e| e.to_string())?;
                    } else {
                        // Try the refused entries again: a lock held by a
                        // local passwd, or a user created since, passes now;
                        // a bad signature is refused again.
                        revision = revision.max(self.catch_up(etcd, false).await?);
                    }
                    self.publish(etcd, revision, false).await?;
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    /// `fleet reconcile` on a node: applies the fleet's current entry to
    /// `only` (or every drifted user), whatever the conflict policy, and
    /// reports. Returns the users applied.
    pub async fn reconcile_here(&mut self, only: &[UserName]) -> Result<Vec<String>, String> {
        let mut etcd = Etcd::connect(&self.fleet)
            .await
            .map_err(|e| e.to_string())?;
        let snapshot = etcd
            .read_prefix(&self.fleet.users_prefix())
            .await
            .map_err(|e| e.to_string())?;
        blocking(|| self.reread()).map_err(|e| e.to_string())?;
        let applied = self.applied.clone();
        let shadow = shadow::read_unlocked(&self.paths).map_err(|e| e.to_string())?;
        let mut done = Vec::new();
        for kv in &snapshot.kvs {
            let Some(user) = kv.key.strip_prefix(&self.fleet.users_prefix()) else {
                continue;
            };
            let wanted = if only.is_empty() {
                match applied.get(user) {
                    Some(held) => self
                        .drift_of(&shadow, held)
                        .map_err(|e| e.to_string())?
                        .is_some(),
                    None => true,
                }
            } else {
                only.iter().any(|u| u.as_str() == user)
            };
            if wanted {
                self.offer(kv, true).map_err(|e| e.to_string())?;
                match self.failures.get(user) {
                    Some(failure) => return Err(format!("{user}: {}", failure.error)),
                    None => done.push(user.to_owned()),
                }
            }
        }
        self.publish(&mut etcd, snapshot.revision, true).await?;
        Ok(done)
    }
}

/// Resolves once `stop` is true (at once if it is already).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Store and file work (an apply, a report's drift check): a few
/// milliseconds, run in place on the runtime's worker. The runtime has a
/// second worker for the etcd connection meanwhile; handing the work to
/// another thread (`block_in_place`) cost more than the work itself with
/// many simulated nodes per process (a third of the agent's time in the
/// scale benchmark).
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    work()
}
