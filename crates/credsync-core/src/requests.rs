//! What a caller asks of credsync, without the asking: verify a password,
//! prove a current one, check the minimum age, change or recover a password.
//! The command line reads its passwords from a terminal or stdin, the
//! service from a varlink call; both hand them here, so a rule holds the
//! same whichever door it came through. Sleeping out the failure delay is
//! the caller's: the command line sleeps, the service holds one reply.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::audit::{self, Event};
use crate::change::{self, NewPassword, Request};
use crate::clock::{self, Now};
use crate::config::Config;
use crate::error::Error;
use crate::judge::{Candidate, Judge};
use crate::lockout::{self, Lockout};
use crate::secret::Password;
use crate::store::{Provenance, Source, Store, StoreError};
use crate::stores::Stores;
use crate::system::crypt::HashMethod;
use crate::system::shadow::{self, LastChange, ShadowError};
use crate::system::{Paths, crypt, faillock, method, pam};
use crate::verify::{self, Outcome};

/// Where and under which settings a request is served.
pub struct Site<'a> {
    pub paths: &'a Paths,
    pub config: &'a Config,
    /// Owner required of the store: the effective user.
    pub store_owner: u32,
}

impl Site<'_> {
    /// `user`'s lockout under the settings in force.
    pub fn lockout(&self, user: &UserName) -> Result<Lockout, Error> {
        Ok(lockout::for_user(
            self.paths,
            &self.config.policy.lockout,
            &self.config.pam.service,
            user,
        )?)
    }

    /// The Linux hash method: the configured one, else the PAM stack's,
    /// else login.defs'.
    pub fn hash_method(&self) -> Result<HashMethod, Error> {
        let configured = self.config.hash_method().map_err(Error::Invalid)?;
        Ok(method::detect(self.paths, &self.config.pam.service, configured).0)
    }

    /// One `verify` of `password` for `user`, asked by `by`. An interrupted
    /// change of `user` is finished first, under the locks; if it can't be
    /// finished now (a full disk), the password is judged as things stand
    /// rather than lock the user out of the application. `None` (an empty
    /// password) matches no hash credsync accepts: refused as a wrong one,
    /// uncounted. A refused password is logged.
    pub fn verify(
        &self,
        user: &UserName,
        password: Option<&Password>,
        by: &str,
    ) -> Result<Outcome, Error> {
        let store = Store::open(&self.paths.store_dir(), self.store_owner)?;
        let (mut store, shadow) = if store.intents()?.iter().any(|i| &i.user == user) {
            drop(store);
            match Stores::lock(self.paths, self.config, self.store_owner) {
                Ok(Stores { store, shadow, .. }) => (store, shadow),
                Err(
                    busy @ (Error::Shadow(ShadowError::Busy { .. })
                    | Error::Store(StoreError::Busy)),
                ) => return Err(busy),
                Err(_) => (
                    Store::open(&self.paths.store_dir(), self.store_owner)?,
                    shadow::read_unlocked(self.paths)?,
                ),
            }
        } else {
            (store, shadow::read_unlocked(self.paths)?)
        };
        let lockout = self.lockout(user)?;
        // Failures are dated when they happen, not when a prompt began.
        let outcome = match password {
            Some(password) => verify::attempt(
                &mut store,
                &shadow,
                user,
                password,
                &self.config.argon2,
                &lockout,
                clock::Now::read(),
            )?,
            None => match verify::never_accepted(&store, &shadow, user)? {
                Some(Outcome::NoPassword) => Outcome::NoPassword,
                _ => Outcome::NeverAccepted,
            },
        };
        if matches!(outcome, Outcome::Rejected | Outcome::NeverAccepted) {
            audit::log(Event::VerifyFailed { user, by });
        }
        Ok(outcome)
    }

    /// Checks `user`'s current password before a self-service change, asked
    /// by `by`: through the PAM service on the live system (an expired
    /// password passes: that is what changing it is for), or with libcrypt
    /// against the shadow file under `--root`, which PAM can't see. A wrong
    /// one counts towards the lockout exactly as a failed `verify` does,
    /// before the caller sleeps the failure delay, so that neither an
    /// interrupted delay nor parallel requests get a guess for free.
    pub fn prove_current(
        &self,
        user: &UserName,
        by: &str,
        lockout: &Lockout,
        current: &Password,
    ) -> Result<(), Error> {
        let result = if self.paths.is_alternate_root() {
            match shadow::read_unlocked(self.paths)?.entry(user) {
                Some(e) if crypt::verify(current, &e.hash) => Ok(()),
                _ => Err(Error::AuthFailed),
            }
        } else {
            pam::authenticate(&self.config.pam.service, user, user, current)
                .map(drop)
                .map_err(Error::from)
        };
        match result {
            Ok(()) => Ok(lockout.record_success(clock::Now::read())?),
            Err(e) => {
                audit::log(Event::Refused {
                    user: user.as_str(),
                    by,
                    why: &e.to_string(),
                });
                if matches!(e, Error::AuthFailed) {
                    lockout.record_wrong_current_password(clock::Now::read())?;
                }
                Err(e)
            }
        }
    }

    /// Every rule `new` breaks for `user` (with the current password for the
    /// changed-characters rule in a self-service change); empty when it may be set.
    pub fn problems(
        &self,
        user: &UserName,
        new: &Password,
        old: Option<&Password>,
    ) -> Result<Vec<String>, Error> {
        Judge::new(self.paths, self.config, self.store_owner)?.problems(&Candidate {
            user,
            new,
            old,
        })
    }

    /// Changes `user`'s password in both stores and returns the record's new
    /// session epoch.
    pub fn change(
        &self,
        user: &UserName,
        password: Password,
        must_change: bool,
        provenance: Provenance,
    ) -> Result<i64, Error> {
        change::apply(
            self.paths,
            self.config,
            &self.hash_method()?,
            self.store_owner,
            Request {
                changes: vec![NewPassword {
                    user: user.clone(),
                    password,
                }],
                must_change,
                provenance,
            },
        )?;
        self.session_epoch(user)
    }

    /// A recovery's last step: the failure tally is cleared.
    pub fn clear_tally(&self, user: &UserName) -> Result<(), Error> {
        faillock::reset(self.paths, user).map_err(|e| {
            Error::Failure(format!(
                "the password was recovered, but the failure tally could not be cleared: {e}"
            ))
        })
    }

    /// The record's session epoch; 0 for a user credsync doesn't manage.
    pub fn session_epoch(&self, user: &UserName) -> Result<i64, Error> {
        let store = Store::open_existing(&self.paths.store_dir(), self.store_owner)?;
        Ok(match store {
            Some(store) => store.record(user)?.map_or(0, |r| r.session_epoch),
            None => 0,
        })
    }
}

/// The provenance of a change made now by `by`.
pub fn provenance(by: &str, source: Source, auid: Option<u32>) -> Provenance {
    Provenance {
        at: Now::read(),
        by: by.to_owned(),
        source,
        auid,
    }
}

/// A self-service change inside the minimum age (shadow field 4), as pam_unix
/// refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSoon {
    pub min_days: i64,
    /// The first UTC day a change is allowed.
    pub allowed_from: i64,
}

impl TooSoon {
    /// `user`'s minimum age on `today`, if it forbids a change: never when
    /// the password has expired or a change is forced, which the minimum age
    /// doesn't block.
    pub fn check(paths: &Paths, user: &UserName, today: i64) -> Result<Option<TooSoon>, Error> {
        let shadow = shadow::read_unlocked(paths)?;
        let (Some(entry), Some(aging)) = (shadow.entry(user), shadow.aging(user)) else {
            return Ok(None);
        };
        let (Some(min), LastChange::Day(changed)) = (aging.min, entry.last_change) else {
            return Ok(None);
        };
        let expired = aging.max.is_some_and(|max| today - changed > max);
        let allowed_from = changed + min;
        if min == 0 || expired || today >= allowed_from {
            return Ok(None);
        }
        Ok(Some(TooSoon {
            min_days: min,
            allowed_from,
        }))
    }

    pub fn allowed_from_unix(&self) -> i64 {
        self.allowed_from * 86_400
    }

    /// The first allowed day, `YYYY-MM-DD` (UTC).
    pub fn allowed_from_text(&self) -> String {
        clock::utc_text(self.allowed_from_unix())[..10].to_owned()
    }

    pub fn refusal(&self) -> Error {
        Error::Policy(format!(
            "the password was changed less than {} day(s) ago; it can be changed again from {} (UTC)",
            self.min_days,
            self.allowed_from_text()
        ))
    }
}
