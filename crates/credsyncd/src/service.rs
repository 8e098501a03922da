//! The methods of `io.credsync.Credentials`. Each takes its parameters, finds
//! who is asking (`peer::Role`), and hands the work to the core's `requests`
//! on a blocking thread: verifies in parallel, as many at once as the
//! machine has cores for Argon2id (sized as `import`'s hashing threads),
//! changes one at a time, each under the same locks as every other writer.
//! The failure delay holds only the one reply it belongs to.
#![forbid(unsafe_code)]

use crate::interface::Refusal;
use crate::monitor::Monitor;
use crate::peer::{Peer, Role};
use crate::wire::{Params, Secret};
use credsync_core::account::UserName;
use credsync_core::audit::{self, Event};
use credsync_core::change;
use credsync_core::clock::{self, Now};
use credsync_core::config::Config;
use credsync_core::error::Error;
use credsync_core::requests::{self, Site, TooSoon};
use credsync_core::secret::Password;
use credsync_core::status;
use credsync_core::store::{Source, Store};
use credsync_core::system::{Paths, pam, shadow};
use credsync_core::verify::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What a method answers, and how long to hold the answer back (the
/// failure delay).
pub struct Answer {
    pub result: Result<Value, Refusal>,
    pub delay: Duration,
}

impl Answer {
    fn now(result: Result<Value, Refusal>) -> Answer {
        Answer {
            result,
            delay: Duration::ZERO,
        }
    }
}

pub struct Service {
    pub paths: Paths,
    pub config: Config,
    /// Owner required of the store: the effective user (root, or the
    /// `--root` caller).
    pub store_owner: u32,
    pub monitor: Monitor,
    verifying: Semaphore,
    changing: Semaphore,
}

impl Service {
    pub fn new(paths: Paths, config: Config, store_owner: u32, monitor: Monitor) -> Service {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let verifiers = change::hashing_threads(cores, cores, &config.argon2);
        Service {
            paths,
            config,
            store_owner,
            monitor,
            verifying: Semaphore::new(verifiers),
            changing: Semaphore::new(1),
        }
    }

    fn site(&self) -> Site<'_> {
        Site {
            paths: &self.paths,
            config: &self.config,
            store_owner: self.store_owner,
        }
    }

    pub fn role(&self, peer: &Peer) -> Result<Role, Refusal> {
        Role::of(peer, &self.paths, &self.config)
    }

    fn is_managed(&self, user: &UserName) -> Result<bool, Refusal> {
        let store =
            Store::open_existing(&self.paths.store_dir(), self.store_owner).map_err(Error::from)?;
        Ok(match store {
            Some(store) => store.record(user).map_err(Error::from)?.is_some(),
            None => false,
        })
    }

    fn exists(&self, user: &UserName) -> Result<bool, Refusal> {
        Ok(shadow::read_unlocked(&self.paths)
            .map_err(Error::from)?
            .entry(user)
            .is_some())
    }

    /// Logs a call that verifies or changes a password, as the command line
    /// logs its own.
    fn log(
        &self,
        peer: &Peer,
        role: &Role,
        method: &str,
        user: &str,
        result: &Result<Value, Refusal>,
    ) {
        let outcome = match result {
            Ok(_) => "ok".to_owned(),
            Err(refusal) => refusal.name.rsplit('.').next().unwrap_or("").to_owned(),
        };
        audit::log(Event::ServiceCall {
            method,
            user,
            by: role.name(),
            uid: peer.uid,
            pid: peer.pid,
            auid: peer.login_uid,
            outcome: &outcome,
            refused: result.is_err(),
        });
    }

    pub async fn verify(self: &Arc<Self>, peer: Peer, params: &Params<'_>) -> Answer {
        let taken = (|| {
            params.only(&["user", "password"])?;
            let user = user_param(params, "user")?;
            let password: Secret = params.required("password")?;
            Ok::<_, Refusal>((user, password))
        })();
        let (user, password) = match taken {
            Ok(taken) => taken,
            Err(refusal) => return Answer::now(Err(refusal)),
        };
        let Ok(_slot) = self.verifying.acquire().await else {
            return Answer::now(Err(Refusal::busy("the service is stopping")));
        };
        let service = Arc::clone(self);
        blocking(move || service.verify_now(peer, &user, password)).await
    }

    fn verify_now(&self, peer: Peer, user: &UserName, password: Secret) -> Answer {
        let role = match self.role(&peer) {
            Ok(role) => role,
            Err(refusal) => return Answer::now(Err(refusal)),
        };
        let delay = Duration::from_millis(self.config.verify.failure_delay_ms);
        let answer = (|| {
            // Only an ordinary user is refused here (another's account). An
            // application asking for an account credsync doesn't manage is
            // told what `verify` tells it, never accepted: so no store is
            // opened just to ask whether the account is managed.
            if let Role::User(_) = role {
                role.may_act_for(user, false)?;
            }
            let password = password_or_empty(password)?;
            let outcome = self.site().verify(user, password.as_ref(), role.name())?;
            Ok(match outcome {
                Outcome::Accepted => Answer::now(Ok(json!({ "result": "ok" }))),
                Outcome::MustChange => Answer::now(Ok(json!({ "result": "must-change" }))),
                Outcome::Expired => Answer::now(Ok(json!({ "result": "expired" }))),
                Outcome::AccountExpired => Answer::now(Err(Refusal::account_expired())),
                Outcome::Locked(locked) => Answer {
                    result: Err(Refusal::locked(credsync_core::lockout::until_text(
                        locked.lock,
                    ))),
                    delay,
                },
                Outcome::Rejected | Outcome::NeverAccepted => Answer {
                    result: Err(Refusal::authentication_failed()),
                    delay,
                },
                Outcome::NoPassword => Answer {
                    result: Err(Refusal::no_password()),
                    delay,
                },
            })
        })()
        .unwrap_or_else(|refusal: Refusal| Answer::now(Err(refusal)));
        self.log(&peer, &role, "Verify", user.as_str(), &answer.result);
        answer
    }

    pub async fn change_password(self: &Arc<Self>, peer: Peer, params: &Params<'_>) -> Answer {
        let taken = (|| {
            params.only(&["user", "current_password", "new_password"])?;
            let user = user_param(params, "user")?;
            let current: Secret = params.required("current_password")?;
            let new: Secret = params.required("new_password")?;
            Ok::<_, Refusal>((user, current, new))
        })();
        let (user, current, new) = match taken {
            Ok(taken) => taken,
            Err(refusal) => return Answer::now(Err(refusal)),
        };
        let Ok(_slot) = self.changing.acquire().await else {
            return Answer::now(Err(Refusal::busy("the service is stopping")));
        };
        let service = Arc::clone(self);
        blocking(move || service.change_now(peer, &user, current, new)).await
    }

    fn change_now(&self, peer: Peer, user: &UserName, current: Secret, new: Secret) -> Answer {
        let role = match self.role(&peer) {
            Ok(role) => role,
            Err(refusal) => return Answer::now(Err(refusal)),
        };
        let mut delay = Duration::ZERO;
        let result = (|| {
            let managed = self.is_managed(user)?;
            role.may_act_for(user, managed)?;
            if !self.exists(user)? {
                return Err(Refusal::no_such_user(user.as_str()));
            }
            let current = password(current, "current_password")?;
            let new = password(new, "new_password")?;
            let site = self.site();
            let lockout = site.lockout(user)?;
            if let Some(locked) = lockout.locked(Now::read()).map_err(Error::from)? {
                return Err(Refusal::locked(credsync_core::lockout::until_text(
                    locked.lock,
                )));
            }
            if let Err(e) = site.prove_current(user, role.name(), &lockout, &current) {
                if matches!(e, Error::AuthFailed) {
                    delay = pam::failure_delay()
                        .max(Duration::from_millis(self.config.verify.failure_delay_ms));
                }
                return Err(e.into());
            }
            if let Some(too_soon) = TooSoon::check(&self.paths, user, clock::Now::read().day)? {
                return Err(Refusal::too_soon(
                    &too_soon.allowed_from_text(),
                    too_soon.allowed_from_unix(),
                ));
            }
            let problems = site.problems(user, &new, Some(&current))?;
            if !problems.is_empty() {
                return Err(Refusal::policy_refused(&problems));
            }
            let epoch = site.change(
                user,
                new,
                false,
                requests::provenance(role.name(), Source::Api, peer.login_uid),
            )?;
            Ok(json!({ "session_epoch": epoch }))
        })();
        self.log(&peer, &role, "ChangePassword", user.as_str(), &result);
        Answer { result, delay }
    }

    pub async fn set_password(self: &Arc<Self>, peer: Peer, params: &Params<'_>) -> Answer {
        let taken = (|| {
            params.only(&["user", "password", "expire", "force"])?;
            let user = user_param(params, "user")?;
            let new: Secret = params.required("password")?;
            let expire: bool = params.optional("expire")?.unwrap_or(false);
            let force: bool = params.optional("force")?.unwrap_or(false);
            Ok::<_, Refusal>((user, new, expire, force))
        })();
        let (user, new, expire, force) = match taken {
            Ok(taken) => taken,
            Err(refusal) => return Answer::now(Err(refusal)),
        };
        let Ok(_slot) = self.changing.acquire().await else {
            return Answer::now(Err(Refusal::busy("the service is stopping")));
        };
        let service = Arc::clone(self);
        blocking(move || service.set_now(peer, &user, new, expire, force)).await
    }

    fn set_now(
        &self,
        peer: Peer,
        user: &UserName,
        new: Secret,
        expire: bool,
        force: bool,
    ) -> Answer {
        let role = match self.role(&peer) {
            Ok(role) => role,
            Err(refusal) => return Answer::now(Err(refusal)),
        };
        let result = (|| {
            if role != Role::Root {
                return Err(Refusal::permission_denied(
                    "only root may set a password without the current one",
                ));
            }
            if !self.exists(user)? {
                return Err(Refusal::no_such_user(user.as_str()));
            }
            let new = password(new, "password")?;
            let site = self.site();
            if !force {
                let problems = site.problems(user, &new, None)?;
                if !problems.is_empty() {
                    return Err(Refusal::policy_refused(&problems));
                }
            }
            let epoch = site.change(
                user,
                new,
                expire,
                requests::provenance(role.name(), Source::Recover, peer.login_uid),
            )?;
            site.clear_tally(user)?;
            Ok(json!({ "session_epoch": epoch }))
        })();
        self.log(&peer, &role, "SetPassword", user.as_str(), &result);
        Answer::now(result)
    }

    pub async fn get_status(self: &Arc<Self>, peer: Peer, params: &Params<'_>) -> Answer {
        let taken = (|| {
            params.only(&["user"])?;
            match params.optional::<String>("user")? {
                Some(name) => Ok::<_, Refusal>(Some(user_name(&name)?)),
                None => Ok(None),
            }
        })();
        let user = match taken {
            Ok(user) => user,
            Err(refusal) => return Answer::now(Err(refusal)),
        };
        let service = Arc::clone(self);
        blocking(move || Answer::now(service.status_now(peer, user))).await
    }

    fn status_now(&self, peer: Peer, user: Option<UserName>) -> Result<Value, Refusal> {
        let role = self.role(&peer)?;
        let only = match (user, &role) {
            (Some(user), _) => {
                role.may_act_for(&user, self.is_managed(&user)?)?;
                Some(user)
            }
            (None, Role::User(me)) => Some(me.clone()),
            (None, _) => None,
        };
        let entries = status::survey(
            &self.paths,
            &self.config,
            self.store_owner,
            only.as_ref(),
            Now::read(),
        )?;
        let accounts: Vec<&status::Line> = entries.iter().map(|e| &e.line).collect();
        Ok(json!({ "accounts": accounts }))
    }

    /// Who a `Monitor` call may hear about: everyone, or only the caller.
    pub async fn monitor_scope(
        self: &Arc<Self>,
        peer: Peer,
        params: &Params<'_>,
    ) -> Result<(Option<String>, bool), Refusal> {
        params.only(&["initial"])?;
        let initial: bool = params.optional("initial")?.unwrap_or(false);
        let service = Arc::clone(self);
        let role = tokio::task::spawn_blocking(move || service.role(&peer))
            .await
            .map_err(|_| Refusal::failed("internal error"))??;
        Ok(match role {
            Role::User(me) => (Some(me.to_string()), initial),
            _ => (None, initial),
        })
    }
}

/// Runs `work` on a blocking thread; a panic there is a `Failed` reply, not
/// a lost connection.
async fn blocking(work: impl FnOnce() -> Answer + Send + 'static) -> Answer {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|_| Answer::now(Err(Refusal::failed("internal error"))))
}

fn user_name(name: &str) -> Result<UserName, Refusal> {
    UserName::parse(name).map_err(|e| Refusal::invalid_argument(&e.to_string()))
}

fn user_param(params: &Params<'_>, name: &str) -> Result<UserName, Refusal> {
    user_name(&params.required::<String>(name)?)
}

/// A password parameter as the core takes it; an unusable one (empty, too
/// long, with a NUL or a line break) is an invalid argument, named.
fn password(secret: Secret, name: &str) -> Result<Password, Refusal> {
    let Secret(text) = secret;
    Password::new(text.as_bytes().to_vec())
        .map_err(|e| Refusal::invalid_argument(&format!("{name}: {e}")))
}

/// `Verify`'s password: empty is `None`, refused as `verify` refuses it.
fn password_or_empty(secret: Secret) -> Result<Option<Password>, Refusal> {
    if secret.0.is_empty() {
        return Ok(None);
    }
    password(secret, "password").map(Some)
}
