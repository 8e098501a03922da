//! One change, two stores, no split. Every password change — `passwd`,
//! `recover`, `import` — goes through `apply`, which writes in one fixed order:
//!
//! 1. hash every new password (crypt for Linux, Argon2id for the application),
//!    in parallel and before any lock is taken;
//! 2. take the locks (`Stores::lock`), re-check every user;
//! 3. record the intents durably in the database;
//! 4. replace `/etc/shadow` once, for the whole batch;
//! 5. in one transaction, turn the intents into records (history kept, session
//!    epoch bumped) and clear them.
//!
//! A failure in 4 abandons the intents, so both stores stay as they were; a
//! crash anywhere is finished by the next command (see `stores`).
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::audit::{self, Event};
use crate::config::Config;
use crate::error::Error;
use crate::fault;
use crate::secret::Password;
use crate::store::app_hash::Argon2Cost;
use crate::store::{Intent, Provenance};
use crate::stores::Stores;
use crate::system::crypt::{self, HashMethod, LinuxHash};
use crate::system::shadow::{self, LastChange};
use crate::system::{Paths, opasswd, passwd, signals};
use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::path::Path;
use std::thread;

/// A user's new password.
pub struct NewPassword {
    pub user: UserName,
    pub password: Password,
}

pub struct Request {
    pub changes: Vec<NewPassword>,
    /// Force a change at next login (shadow field 3 = 0, record flag set).
    pub must_change: bool,
    pub provenance: Provenance,
}

struct Hashed {
    linux: LinuxHash,
    app: String,
}

pub fn apply(
    paths: &Paths,
    config: &Config,
    method: &HashMethod,
    store_owner: u32,
    request: Request,
) -> Result<(), Error> {
    // Fail before the slow hashing when a user is unknown; re-checked under the lock.
    check_users_exist(&shadow::read_unlocked(paths)?, &request.changes)?;
    let hashed = hash_all(&request.changes, method, &config.argon2)?;

    let mut stores = Stores::lock(paths, config, store_owner)?;
    check_users_exist(&stores.shadow, &request.changes)?;
    let intents: Vec<Intent> = request
        .changes
        .iter()
        .zip(hashed)
        .map(|(change, hashed)| Intent {
            user: change.user.clone(),
            old_linux: stores
                .shadow
                .entry(&change.user)
                .map(|e| e.hash)
                .expect("checked above"),
            new_linux: hashed.linux,
            app_hash: hashed.app,
            provenance: request.provenance.clone(),
            must_change: request.must_change,
        })
        .collect();

    // From the first write to the last, signals wait; the locks go before
    // the hold ends, and a signal that came meanwhile is dropped: the change
    // is finished and reported either way (an interrupted one would be
    // finished by the next command, but a whole one is better).
    let held = signals::Blocked::new();
    let written = write_both(paths, config, &mut stores, &intents, &request);
    drop(stores);
    held.discard_pending();
    written?;
    for intent in &intents {
        audit::log(Event::Changed {
            user: &intent.user,
            by: &intent.provenance.by,
            how: intent.provenance.source.as_str(),
        });
    }
    Ok(())
}

/// Steps 3 to 5: the intents, `/etc/shadow`, the records.
fn write_both(
    paths: &Paths,
    config: &Config,
    stores: &mut Stores,
    intents: &[Intent],
    request: &Request,
) -> Result<(), Error> {
    fault::reached("locked");
    stores.store.record_intents(intents)?;
    fault::reached("intent-recorded");

    let last_change = LastChange::after_change(request.provenance.at.day, request.must_change);
    let aging = config.policy.aging();
    let mut updated = stores.shadow.clone();
    for intent in intents {
        updated.set_password(&intent.user, &intent.new_linux, last_change);
        updated.set_aging(&intent.user, aging);
    }
    // pam_pwhistory's order: the history first, then shadow. A crash between
    // leaves the current password in the history, which is harmless.
    let written =
        keep_history(paths, config, intents).and_then(|()| Ok(stores.lock.write(&mut updated)?));
    if let Err(e) = written {
        // Report the cause. An intent that can't be dropped now is dropped
        // by the next command that takes the locks: shadow lacks its hash.
        let _ = stores.store.abandon_intents(intents);
        return Err(e);
    }
    stores.shadow = updated;

    stores.store.complete_intents(intents).map_err(|e| {
        Error::Failure(format!(
            "/etc/shadow was changed but the record could not be updated ({e}); run 'credsync sync' to finish"
        ))
    })?;
    fault::reached("intent-cleared");
    Ok(())
}

/// Adds each replaced hash to pam_pwhistory's `/etc/security/opasswd`, as
/// pam_pwhistory does before `passwd` writes, so both tools share one
/// history. Skipped when the policy keeps no history, or when the root has no
/// `/etc/security` (an image or fixture without PAM's configuration).
fn keep_history(paths: &Paths, config: &Config, intents: &[Intent]) -> Result<(), Error> {
    let file = paths.opasswd();
    let remember = config.policy.history;
    if remember == 0 || !file.parent().is_some_and(Path::is_dir) {
        return Ok(());
    }
    let accounts = passwd::read_passwd(&paths.passwd())
        .map_err(|e| Error::Failure(format!("cannot read {}: {e}", paths.passwd().display())))?;
    for intent in intents {
        let Some(uid) = accounts
            .iter()
            .find(|a| a.name == intent.user.as_str())
            .map(|a| a.uid)
        else {
            continue;
        };
        let remember = u32::try_from(remember).unwrap_or(u32::MAX);
        opasswd::record_replaced_hash(&file, &intent.user, uid, &intent.old_linux, remember)
            .map_err(|e| Error::Failure(e.to_string()))?;
    }
    Ok(())
}

fn check_users_exist(shadow: &shadow::ShadowFile, changes: &[NewPassword]) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for change in changes {
        if shadow.entry(&change.user).is_none() {
            return Err(Error::UnknownUser(change.user.clone()));
        }
        if !seen.insert(&change.user) {
            return Err(Error::Invalid(format!(
                "user '{}' appears more than once",
                change.user
            )));
        }
    }
    Ok(())
}

/// Both hashes of every password, spread over the machine's cores.
fn hash_all(
    changes: &[NewPassword],
    method: &HashMethod,
    cost: &Argon2Cost,
) -> Result<Vec<Hashed>, Error> {
    let workers = thread::available_parallelism()
        .map_or(1, NonZeroUsize::get)
        .min(changes.len())
        .max(1);
    let per_worker = changes.len().div_ceil(workers).max(1);
    thread::scope(|scope| {
        let handles: Vec<_> = changes
            .chunks(per_worker)
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|c| hash_one(&c.password, method, cost))
                        .collect::<Result<Vec<_>, Error>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(changes.len());
        for handle in handles {
            let chunk = handle
                .join()
                .map_err(|_| Error::Failure("a hashing thread failed".into()))??;
            all.extend(chunk);
        }
        Ok(all)
    })
}

fn hash_one(password: &Password, method: &HashMethod, cost: &Argon2Cost) -> Result<Hashed, Error> {
    let linux = crypt::hash_password(password, method)?;
    let app = cost.hash(password)?;
    Ok(Hashed { linux, app })
}
