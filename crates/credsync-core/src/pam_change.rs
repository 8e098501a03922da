//! A password changed through PAM — `passwd`, `chpasswd`, sshd's or `su`'s
//! forced change — taken into the record in the same operation. This is what
//! `pam_credsync.so` runs in the `password` stack once pam_unix has written
//! `/etc/shadow`; the module itself only translates PAM's items.
//!
//! Order and locking: the same locks every credsync writer takes, in the
//! same order (`Stores::lock`, which also finishes an interrupted change);
//! pam_unix has released `.pwd.lock` by the time the stack reaches the
//! module. The Argon2id hash, and the crypt check of what shadow holds, are
//! made before the locks, side by side on a second thread that is joined
//! before anything else happens. Under the locks the
//! new hash is read from `/etc/shadow` itself, so `linux_hash` is exactly
//! what Linux holds, and only if it is a hash of the password PAM handed over
//! is the record written — in one transaction, the replaced hashes to
//! history, the session epoch bumped, `must_change` cleared. A crash before
//! that transaction leaves shadow newer than the record, which `sync` adopts
//! as it adopts any change made in Linux: there is never a split.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::audit::{self, Event};
use crate::clock::Now;
use crate::config::Config;
use crate::error::Error;
use crate::secret::Password;
use crate::store::{Record, Source, Store};
use crate::stores::Stores;
use crate::system::Paths;
use crate::system::crypt;
use crate::system::shadow::{self, LastChange};

/// One change PAM made.
pub struct PamChange<'a> {
    pub user: &'a UserName,
    /// The new password, as PAM holds it (`PAM_AUTHTOK`).
    pub password: &'a Password,
    /// The PAM service that made it (`passwd`, `chpasswd`, `sshd`).
    pub service: &'a str,
    /// Who asked: the user themself, or root.
    pub by: &'a str,
    pub auid: Option<u32>,
}

/// What became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// The record holds the new password; its new session epoch.
    Recorded { session_epoch: i64 },
    /// credsync doesn't manage the user (and `[pam] enrol_on_change` is off).
    NotManaged,
    /// `/etc/shadow` doesn't hold a hash of this password (another module
    /// refused it, or another tool changed it since): nothing was written.
    ShadowDisagrees,
}

/// Takes `change` into the record (see the module's comment).
pub fn follow(
    paths: &Paths,
    config: &Config,
    change: &PamChange<'_>,
    now: Now,
) -> Result<Followed, Error> {
    let store_owner = 0;
    let managed = match Store::open_existing(&paths.store_dir(), store_owner)? {
        Some(store) => store.record(change.user)?.is_some(),
        None => false,
    };
    if !managed && !config.pam.enrol_on_change {
        return Ok(Followed::NotManaged);
    }
    // Both hashes' work before the locks, side by side: the Argon2id hash
    // the record will hold, and the check that what shadow holds now is a
    // hash of this password (one crypt, as costly as pam_unix's own). The
    // thread is joined before anything else happens.
    let seen = shadow::read_unlocked(paths)?
        .entry(change.user)
        .map(|e| e.hash);
    let (app_hash, seen_matches) = std::thread::scope(|scope| {
        let argon2 = scope.spawn(|| config.argon2.cost.hash(change.password));
        let matches = seen
            .as_ref()
            .is_some_and(|hash| crypt::verify(change.password, hash));
        (argon2.join(), matches)
    });
    let app_hash = app_hash.map_err(|_| Error::Failure("the Argon2id hashing failed".into()))??;

    let mut stores = Stores::lock(paths, config, store_owner)?;
    let Some(entry) = stores.shadow.entry(change.user) else {
        return Ok(Followed::ShadowDisagrees);
    };
    // Checked again only if shadow changed between the look and the lock.
    let matches = if seen.as_ref() == Some(&entry.hash) {
        seen_matches
    } else {
        crypt::verify(change.password, &entry.hash)
    };
    if !matches {
        return Ok(Followed::ShadowDisagrees);
    }
    let record = Record {
        user: change.user.clone(),
        app_hash: Some(app_hash),
        linux_hash: entry.hash.unlocked(),
        changed_day: match entry.last_change {
            LastChange::Day(day) => day,
            LastChange::Unset | LastChange::MustChange => now.day,
        },
        changed_at: now.unix_secs,
        changed_by: change.by.to_owned(),
        source: Source::Pam,
        session_epoch: 0,
        must_change: entry.last_change == LastChange::MustChange,
        locked: entry.hash.is_locked(),
        changed_by_auid: change.auid,
        pam_service: Some(change.service.to_owned()),
    };
    crate::fault::reached("pam-record-unwritten");
    stores.store.record_change(&record, now)?;
    let session_epoch = stores
        .store
        .record(change.user)?
        .map_or(0, |r| r.session_epoch);
    drop(stores);
    audit::log(Event::Changed {
        user: change.user,
        by: change.by,
        how: "pam",
        auid: change.auid,
    });
    Ok(Followed::Recorded { session_epoch })
}
