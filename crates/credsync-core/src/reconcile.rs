//! The drift rules: what `sync` does at every service start so that no
//! deliberate change, made on either side, is lost. For each managed user the
//! record's Linux hash is compared with the password in `/etc/shadow` (its
//! hash with any lock mark taken off):
//!
//! - equal: in sync. What Linux changed around the same password is followed,
//!   never treated as a new password: a lock or an unlock (`passwd -l`/`-u`,
//!   `usermod -L`/`-U`) sets the record's `locked` column (locking ends the
//!   user's application sessions), and a forced change (`passwd -e`,
//!   `chage -d 0`: field 3 = 0) set or lifted there sets `must_change`;
//!   history, `changed_at`, `source` and the Argon2id hash stay;
//! - different, and shadow holds a hash the record has already replaced (its
//!   history, which starts with the hash a user had before enrolment): Linux was
//!   rolled back or re-imaged, whatever the day says; **restore** the record's
//!   (with its lock state and forced change);
//! - different, and shadow's last-change day is before the record's: a rollback
//!   too; **restore**;
//! - otherwise — shadow's day is on or after the record's, or carries no day at
//!   all (empty, or `0` after `passwd -e`): Linux was changed outside credsync;
//!   the record **adopts** the shadow hash, its lock and its forced change (an
//!   empty password, `passwd -d`, is adopted with a warning: `verify` refuses
//!   it);
//! - no shadow entry: reported, nothing changed;
//! - an intent still pending: finished first (`Stores::lock`).
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::audit::{self, Event};
use crate::clock::Now;
use crate::error::Error;
use crate::store::{FlagChange, Intent, Record, Source, Store};
use crate::stores::Stores;
use crate::system::crypt::LinuxHash;
use crate::system::shadow::{LastChange, ShadowEntry, ShadowFile};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drift {
    InSync,
    LinuxNewer,
    RecordNewer,
    NoAccount,
    /// A change was interrupted and is not finished yet (seen only by readers).
    Pending,
}

impl Drift {
    pub fn as_str(self) -> &'static str {
        match self {
            Drift::InSync => "in-sync",
            Drift::LinuxNewer => "linux-newer",
            Drift::RecordNewer => "record-newer",
            Drift::NoAccount => "no-account",
            Drift::Pending => "pending",
        }
    }
}

/// The drift between a record and the user's shadow entry. `replaced` says
/// whether shadow's hash is one the record has replaced (`Store::has_replaced`);
/// it is only asked when the hashes differ.
pub fn classify(
    record: &Record,
    entry: Option<&ShadowEntry>,
    replaced: impl FnOnce(&LinuxHash) -> Result<bool, Error>,
) -> Result<Drift, Error> {
    let Some(entry) = entry else {
        return Ok(Drift::NoAccount);
    };
    let password = entry.hash.unlocked();
    if password == record.linux_hash {
        return Ok(Drift::InSync);
    }
    let older_day = matches!(entry.last_change, LastChange::Day(day) if day < record.changed_day);
    Ok(if older_day || replaced(&password)? {
        Drift::RecordNewer
    } else {
        Drift::LinuxNewer
    })
}

/// What an in-sync record says once it follows Linux's lock and forced
/// change: `None` when it says that already.
fn followed(record: &Record, entry: &ShadowEntry) -> Option<Record> {
    let locked = entry.hash.is_locked();
    let must_change = entry.last_change == LastChange::MustChange;
    (record.locked != locked || record.must_change != must_change).then(|| Record {
        locked,
        must_change,
        ..record.clone()
    })
}

/// `classify` against the store's history.
pub fn drift(store: &Store, record: &Record, entry: Option<&ShadowEntry>) -> Result<Drift, Error> {
    classify(record, entry, |hash| {
        Ok(store.has_replaced(&record.user, hash)?)
    })
}

/// Every record (or only `only`'s) with its state, as a reader sees it: no
/// lock, no write. A user whose change was interrupted is `Pending` (shown with
/// the record it will become) until a writer finishes it. No store yet means
/// nothing is managed.
pub fn survey(
    store: Option<&Store>,
    shadow: &ShadowFile,
    only: Option<&UserName>,
) -> Result<Vec<(Record, Drift)>, Error> {
    let Some(store) = store else {
        return Ok(Vec::new());
    };
    let mut in_flight: BTreeMap<UserName, Intent> = store
        .intents()?
        .into_iter()
        .filter(|i| only.is_none_or(|user| *user == i.user))
        .map(|i| (i.user.clone(), i))
        .collect();
    let records = match only {
        Some(user) => store.record(user)?.into_iter().collect(),
        None => store.records()?,
    };
    let mut findings = Vec::with_capacity(records.len() + in_flight.len());
    for record in records {
        let entry = shadow.entry(&record.user);
        let state = if in_flight.remove(&record.user).is_some() {
            Drift::Pending
        } else {
            drift(store, &record, entry.as_ref())?
        };
        // In sync, the lock and the forced change are Linux's, as the next
        // `sync` will write them: the record is never shown contradicting
        // shadow.
        let record = match (&state, &entry) {
            (Drift::InSync, Some(entry)) => followed(&record, entry).unwrap_or(record),
            _ => record,
        };
        findings.push((record, state));
    }
    // A first change still in flight has no record yet: show the one it makes.
    if !in_flight.is_empty() {
        findings.extend(
            in_flight
                .into_values()
                .map(|i| (i.as_record(), Drift::Pending)),
        );
        findings.sort_by(|(a, _), (b, _)| a.user.cmp(&b.user));
    }
    Ok(findings)
}

/// Reconciles every managed user and returns what it found, record by record
/// as it was before (in sync, with Linux's lock and forced change).
/// Restorations are written to shadow in one replacement; adoptions and
/// followed locks and forced changes to the record in one transaction each;
/// with no drift, nothing is copied or written.
pub fn sync(stores: &mut Stores, now: Now) -> Result<Vec<(Record, Drift)>, Error> {
    let flags: Vec<FlagChange> = stores
        .store
        .records()?
        .iter()
        .filter_map(|record| {
            let entry = stores.shadow.entry(&record.user)?;
            let in_sync = entry.hash.unlocked() == record.linux_hash;
            let now_says = followed(record, &entry).filter(|_| in_sync)?;
            Some(FlagChange {
                user: record.user.clone(),
                locked: now_says.locked,
                must_change: now_says.must_change,
                lock_changed: now_says.locked != record.locked,
            })
        })
        .collect();
    let findings = survey(Some(&stores.store), &stores.shadow, None)?;
    let with = |wanted: Drift| {
        findings
            .iter()
            .filter(move |(_, d)| *d == wanted)
            .map(|(r, _)| r)
    };

    let restorations: Vec<&Record> = with(Drift::RecordNewer).collect();
    if !restorations.is_empty() {
        let mut restored = stores.shadow.clone();
        for record in &restorations {
            let last_change = LastChange::after_change(record.changed_day, record.must_change);
            restored.set_password(&record.user, &record.shadow_hash(), last_change);
        }
        stores.lock.write(&mut restored)?;
        stores.shadow = restored;
        for record in restorations {
            audit::log(Event::Restored { user: &record.user });
        }
    }

    if !flags.is_empty() {
        stores.store.follow_flags(&flags)?;
        for change in &flags {
            audit::log(if !change.lock_changed {
                Event::MustChangeFollowed {
                    user: &change.user,
                    must_change: change.must_change,
                }
            } else if change.locked {
                Event::LockFollowed { user: &change.user }
            } else {
                Event::UnlockFollowed { user: &change.user }
            });
        }
    }

    let adoptions: Vec<Record> = with(Drift::LinuxNewer)
        .map(|record| {
            let entry = stores
                .shadow
                .entry(&record.user)
                .expect("classified against an entry");
            adopted(record, &entry, now)
        })
        .collect();
    if !adoptions.is_empty() {
        stores.store.adopt(&adoptions, now)?;
        for record in &adoptions {
            audit::log(if record.linux_hash.is_empty() {
                Event::AdoptedNoPassword { user: &record.user }
            } else {
                Event::Adopted { user: &record.user }
            });
        }
    }
    Ok(findings)
}

/// The record after taking over a Linux change, with its lock. The Argon2id
/// hash can't be derived without the password, so it is left empty until
/// `verify` sees it.
fn adopted(record: &Record, entry: &ShadowEntry, now: Now) -> Record {
    Record {
        user: record.user.clone(),
        app_hash: None,
        linux_hash: entry.hash.unlocked(),
        changed_day: match entry.last_change {
            LastChange::Day(day) => day,
            LastChange::Unset | LastChange::MustChange => now.day,
        },
        changed_at: now.unix_secs,
        changed_by: "linux".to_owned(),
        source: Source::Adopted,
        session_epoch: record.session_epoch,
        must_change: entry.last_change == LastChange::MustChange,
        locked: entry.hash.is_locked(),
        changed_by_auid: None,
        pam_service: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(hash: &str, day: i64) -> Record {
        Record {
            user: UserName::parse("alice").unwrap(),
            app_hash: Some("$argon2id$x".into()),
            linux_hash: LinuxHash::from_field(hash).unwrap(),
            changed_day: day,
            changed_at: day * 86_400,
            changed_by: "root".into(),
            source: Source::Passwd,
            session_epoch: 1,
            must_change: false,
            locked: false,
            changed_by_auid: None,
            pam_service: None,
        }
    }

    fn entry(hash: &str, last_change: LastChange) -> ShadowEntry {
        ShadowEntry {
            name: "alice".into(),
            hash: LinuxHash::from_field(hash).unwrap(),
            last_change,
        }
    }

    /// The drift when shadow's hash is not in the record's history.
    fn state(record: &Record, entry: Option<&ShadowEntry>) -> Drift {
        classify(record, entry, |_| Ok(false)).unwrap()
    }

    #[test]
    fn a_hash_the_record_replaced_is_a_rollback_whatever_the_day() {
        let r = record("$y$a", 100);
        for day in [
            LastChange::Day(100),
            LastChange::Day(200),
            LastChange::Unset,
        ] {
            let replaced = classify(&r, Some(&entry("$y$old", day)), |h| {
                Ok(h.as_str() == "$y$old")
            });
            assert_eq!(replaced.unwrap(), Drift::RecordNewer, "{day:?}");
        }
    }

    #[test]
    fn a_lock_or_an_unlock_in_linux_is_followed_not_adopted() {
        let replaced = |h: &LinuxHash| Ok(h.as_str() == "$y$old");
        // passwd -l, even with an older day: the same password, locked.
        let r = record("$y$a", 100);
        let locked = entry("!$y$a", LastChange::Day(50));
        assert_eq!(
            classify(&r, Some(&locked), replaced).unwrap(),
            Drift::InSync
        );
        let follows = followed(&r, &locked).expect("the lock is followed");
        assert!(follows.locked);
        assert_eq!(
            (
                follows.linux_hash.as_str(),
                follows.source,
                &follows.app_hash
            ),
            ("$y$a", Source::Passwd, &r.app_hash),
            "the password, its provenance and its Argon2id hash stay"
        );
        // passwd -u brings it back.
        let unlocked = entry("$y$a", LastChange::Day(100));
        assert!(!followed(&follows, &unlocked).unwrap().locked);
        assert_eq!(followed(&r, &unlocked), None, "nothing to follow");
        // A different replaced hash behind the lock is still a rollback.
        let drift = classify(
            &follows,
            Some(&entry("!$y$old", LastChange::Day(100))),
            replaced,
        );
        assert_eq!(drift.unwrap(), Drift::RecordNewer);
    }

    #[test]
    fn a_forced_change_in_linux_is_followed_both_ways() {
        let r = record("$y$a", 100);
        let forced = followed(&r, &entry("$y$a", LastChange::MustChange)).unwrap();
        assert!(forced.must_change && !forced.locked);
        assert!(
            !followed(&forced, &entry("$y$a", LastChange::Day(120)))
                .unwrap()
                .must_change
        );
    }

    #[test]
    fn an_adopted_lock_keeps_the_password_apart_from_the_lock() {
        let a = adopted(
            &record("$y$a", 100),
            &entry("!$y$b", LastChange::Day(120)),
            Now::at(130 * 86_400),
        );
        assert_eq!((a.linux_hash.as_str(), a.locked), ("$y$b", true));
        assert_eq!(a.shadow_hash().as_str(), "!$y$b");
    }

    #[test]
    fn equal_hashes_are_in_sync_whatever_the_days() {
        let r = record("$y$a", 100);
        assert_eq!(
            state(&r, Some(&entry("$y$a", LastChange::Day(5)))),
            Drift::InSync
        );
    }

    #[test]
    fn a_newer_or_same_day_linux_change_is_adopted() {
        let r = record("$y$a", 100);
        assert_eq!(
            state(&r, Some(&entry("$y$b", LastChange::Day(100)))),
            Drift::LinuxNewer
        );
        assert_eq!(
            state(&r, Some(&entry("$y$b", LastChange::Day(101)))),
            Drift::LinuxNewer
        );
    }

    #[test]
    fn an_older_shadow_is_a_rollback_to_restore() {
        let r = record("$y$a", 100);
        assert_eq!(
            state(&r, Some(&entry("$y$old", LastChange::Day(99)))),
            Drift::RecordNewer
        );
    }

    #[test]
    fn a_dateless_change_counts_as_deliberate() {
        let r = record("$y$a", 100);
        assert_eq!(
            state(&r, Some(&entry("$y$b", LastChange::MustChange))),
            Drift::LinuxNewer
        );
        assert_eq!(
            state(&r, Some(&entry("$y$b", LastChange::Unset))),
            Drift::LinuxNewer
        );
    }

    #[test]
    fn a_missing_account_is_reported() {
        assert_eq!(state(&record("$y$a", 100), None), Drift::NoAccount);
    }

    #[test]
    fn adoption_keeps_the_shadow_day_and_forgets_the_app_hash() {
        let r = record("$y$a", 100);
        let a = adopted(
            &r,
            &entry("$y$b", LastChange::Day(120)),
            Now::at(130 * 86_400),
        );
        assert_eq!(
            (a.linux_hash.as_str(), a.changed_day, a.app_hash),
            ("$y$b", 120, None)
        );
        assert_eq!(a.source, Source::Adopted);
        let expired = adopted(
            &r,
            &entry("$y$b", LastChange::MustChange),
            Now::at(130 * 86_400),
        );
        assert!(expired.must_change);
        assert_eq!(expired.changed_day, 130);
    }
}
