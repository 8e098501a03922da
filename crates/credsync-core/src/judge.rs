//! Judging a new password against the whole policy, before anything is
//! hashed: credsync's own rules (`policy`), the site's
//! `/etc/security/pwquality.conf` through libpwquality when that file exists,
//! and the history — the password's current hash in shadow, the record's
//! earlier Argon2id hashes and pam_pwhistory's `/etc/security/opasswd`, so
//! that `passwd` and credsync keep one history.
//!
//! Every broken rule is reported, each as one sentence in the user's terms.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::config::Config;
use crate::error::Error;
use crate::policy;
use crate::secret::Password;
use crate::store::{Store, app_hash};
use crate::system::Paths;
use crate::system::crypt;
use crate::system::opasswd::OpasswdFile;
use crate::system::pwquality::{CheckError, PwQuality};
use crate::system::shadow::ShadowFile;

/// What a new password is judged against.
pub struct Judge<'a> {
    config: &'a Config,
    pwquality: Option<PwQuality>,
    shadow: ShadowFile,
    store: Option<Store>,
    opasswd: OpasswdFile,
}

/// One user's proposed change.
pub struct Candidate<'a> {
    pub user: &'a UserName,
    pub new: &'a Password,
    /// Known in a self-service change only.
    pub old: Option<&'a Password>,
}

impl<'a> Judge<'a> {
    pub fn new(paths: &Paths, config: &'a Config, store_owner: u32) -> Result<Self, Error> {
        let pwquality_conf = paths.pwquality_conf();
        let pwquality = if config.policy.site_rules && pwquality_conf.exists() {
            let rules = PwQuality::load(Some(&pwquality_conf), &[])
                .map_err(|e| Error::Failure(format!("the site's password rules: {e}")))?;
            // `enforcing = 0`: pam_pwquality only warns, so credsync doesn't refuse.
            rules.enforcing().then_some(rules)
        } else {
            None
        };
        let history = config.policy.history > 0;
        let store = if history {
            Store::open_existing(&paths.store_dir(), store_owner)?
        } else {
            None
        };
        let opasswd = if history {
            OpasswdFile::read(&paths.opasswd()).map_err(|e| Error::Failure(e.to_string()))?
        } else {
            OpasswdFile::default()
        };
        Ok(Judge {
            config,
            pwquality,
            shadow: crate::system::shadow::read_unlocked(paths)?,
            store,
            opasswd,
        })
    }

    /// Every rule `candidate` breaks, as sentences; empty when it may be set.
    pub fn problems(&self, candidate: &Candidate) -> Result<Vec<String>, Error> {
        let mut found = self.quality_problems(candidate)?;
        let policy = &self.config.policy;
        if policy.history > 0 && self.was_used(candidate)? {
            found.push(format!(
                "the new password must not be one of the last {} used for this account",
                policy.history
            ));
        }
        Ok(found)
    }

    /// The quality rules only: credsync's own and the site's, no history.
    pub fn quality_problems(&self, candidate: &Candidate) -> Result<Vec<String>, Error> {
        let policy = &self.config.policy;
        let mut found: Vec<String> =
            policy::problems(policy, candidate.user, candidate.new, candidate.old)
                .iter()
                .map(ToString::to_string)
                .collect();
        if let Some(pwquality) = &self.pwquality {
            match pwquality.check(candidate.new, candidate.old, candidate.user) {
                Ok(()) => {}
                Err(CheckError::Rejected(rejection)) => {
                    found.push(format!("the site's rules: {}", rejection.message()));
                }
                Err(CheckError::Failed(e)) => {
                    return Err(Error::Failure(format!("the site's password rules: {e}")));
                }
            }
        }
        Ok(found)
    }

    /// The current password (its hash in shadow), or one of the `history - 1`
    /// before it, in the record or in pam_pwhistory's file.
    fn was_used(&self, candidate: &Candidate) -> Result<bool, Error> {
        let (user, new) = (candidate.user, candidate.new);
        if let Some(entry) = self.shadow.entry(user)
            && crypt::verify(new, &entry.hash)
        {
            return Ok(true);
        }
        if let Some(store) = &self.store {
            let earlier = self.config.policy.history.saturating_sub(1);
            let record = store.record(user)?;
            let current = record.as_ref().and_then(|r| r.app_hash.clone());
            if current.iter().any(|phc| app_hash::verify(new, phc)) {
                return Ok(true);
            }
            let previous = store.history_entries(user)?;
            if previous.iter().take(earlier).any(|(app, linux)| match app {
                Some(phc) => app_hash::verify(new, phc),
                None => crypt::LinuxHash::from_field(linux)
                    .is_some_and(|hash| crypt::verify(new, &hash)),
            }) {
                return Ok(true);
            }
        }
        // pam_pwhistory keeps `remember` hashes and counts the current one
        // among them: only the newest `history - 1` of opasswd are earlier
        // generations still inside the history.
        let earlier = self.config.policy.history.saturating_sub(1);
        let stored = self.opasswd.hashes(user);
        Ok(stored
            .iter()
            .rev()
            .take(earlier)
            .any(|hash| hash.matches(new)))
    }
}

/// The refusal for `problems`, listing them all.
pub fn refusal(user: &UserName, problems: &[String]) -> Error {
    Error::Policy(format!(
        "the new password for '{user}' breaks the password policy: {}; nothing was changed",
        problems.join("; ")
    ))
}
