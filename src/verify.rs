//! Checking a password for the application. The record is the reference, but
//! Linux has the last word on an account it changed or removed since the last
//! `sync`: the drift rules pick the hash to check, so `verify` never accepts a
//! password that Linux has locked, replaced or deleted, and accepts a password
//! set in Linux at once, before any `sync` has adopted it.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::error::Error;
use crate::reconcile::{self, Drift};
use crate::secret::Password;
use crate::store::Store;
use crate::store::app_hash::{self, Argon2Cost};
use crate::system::crypt;
use crate::system::shadow::{LastChange, ShadowFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Right password, but it must be changed before it is used.
    MustChange,
    Rejected,
}

/// Checks `password` for `user`. An adopted record (no Argon2id hash yet) is
/// checked with its crypt hash, and on success gets its Argon2id hash derived.
pub fn check(
    store: &mut Store,
    shadow: &ShadowFile,
    user: &UserName,
    password: &Password,
    cost: &Argon2Cost,
) -> Result<Verdict, Error> {
    let Some(record) = store.record(user)? else {
        return Ok(Verdict::Rejected);
    };
    let entry = shadow.entry(user);
    let (matches, must_change) = match reconcile::drift(store, &record, entry.as_ref())? {
        Drift::NoAccount => (false, false),
        // Only when the interrupted change could not be finished (the caller
        // tries first): once shadow holds the intent's hash the change is
        // made, and the intent's own Argon2id hash is the password's.
        Drift::Pending => match store.intents()?.into_iter().find(|i| &i.user == user) {
            Some(intent) if entry.as_ref().is_some_and(|e| e.hash == intent.new_linux) => (
                app_hash::verify(password, &intent.app_hash),
                intent.must_change,
            ),
            _ => (false, false),
        },
        Drift::LinuxNewer => {
            let entry = entry.expect("drift is judged against an entry");
            (
                crypt::verify(password, &entry.hash),
                entry.last_change == LastChange::MustChange,
            )
        }
        Drift::InSync | Drift::RecordNewer => match &record.app_hash {
            Some(phc) => (app_hash::verify(password, phc), record.must_change),
            None if crypt::verify(password, &record.linux_hash) => {
                let phc = cost.hash(password)?;
                store.rederive(user, &record.linux_hash, &phc)?;
                (true, record.must_change)
            }
            None => (false, record.must_change),
        },
    };
    Ok(match (matches, must_change) {
        (false, _) => Verdict::Rejected,
        (true, true) => Verdict::MustChange,
        (true, false) => Verdict::Accepted,
    })
}
