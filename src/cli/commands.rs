//! One function per command: ask what's needed, check who may do it, hand the
//! work to the core (`change`, `reconcile`, `verify`), and report.
#![forbid(unsafe_code)]

use super::Context;
use super::input::{self, Input, bad_line, parse_import};
use super::report::{self, say};
use credsync_core::account::UserName;
use credsync_core::audit::{self, Event};
use credsync_core::change::{self, NewPassword, Request};
use credsync_core::clock;
use credsync_core::error::Error;
use credsync_core::judge::{self, Candidate, Judge};
use credsync_core::lockout::{self, Lockout, Lockouts};
use credsync_core::reconcile;
use credsync_core::secret::Password;
use credsync_core::store::{Provenance, Source, Store, StoreError};
use credsync_core::stores::Stores;
use credsync_core::system::crypt::HashMethod;
use credsync_core::system::shadow::{LastChange, ShadowError};
use credsync_core::system::{faillock, method, pam, shadow};
use credsync_core::verify::{self, Outcome};
use std::collections::HashMap;
use std::time::Duration;

const LOGOUT_WARNING: &str = "Changing the current password will log this user out of all active application sessions. \
Subsequent logins will require the new password to authenticate.";

fn user_name(name: &str) -> Result<UserName, Error> {
    UserName::parse(name).map_err(|e| Error::Invalid(e.to_string()))
}

/// `user`'s lockout under the settings in force for this run.
fn lockout_of(ctx: &Context, user: &UserName) -> Result<Lockout, Error> {
    Ok(lockout::for_user(
        &ctx.paths,
        &ctx.config.policy.lockout,
        &ctx.config.pam.service,
        user,
    )?)
}

fn hash_method(ctx: &Context) -> Result<HashMethod, Error> {
    let configured = ctx.config.hash_method().map_err(Error::Invalid)?;
    Ok(method::detect(&ctx.paths, &ctx.config.pam.service, configured).0)
}

fn change(
    ctx: &Context,
    source: Source,
    changes: Vec<NewPassword>,
    must_change: bool,
) -> Result<(), Error> {
    let request = Request {
        changes,
        must_change,
        provenance: Provenance {
            at: ctx.now,
            by: ctx.caller.name.to_string(),
            source,
            auid: ctx.caller.login_uid,
        },
    };
    change::apply(
        &ctx.paths,
        &ctx.config,
        &hash_method(ctx)?,
        ctx.store_owner,
        request,
    )
}

pub fn passwd(
    ctx: &Context,
    user: Option<&str>,
    stdin: bool,
    expire: bool,
    force: bool,
) -> Result<(), Error> {
    let target = match user {
        Some(name) => user_name(name)?,
        None => ctx.caller.name.clone(),
    };
    if !ctx.caller.may_manage(&target) {
        return Err(ctx
            .caller
            .refuse(target.as_str(), "you may change only your own password"));
    }
    if (expire || force) && !ctx.caller.is_root() {
        return Err(ctx.caller.refuse(
            target.as_str(),
            "only root may force a password change or override the password policy",
        ));
    }
    let lockout = if ctx.caller.is_root() {
        None
    } else {
        let lockout = lockout_of(ctx, &target)?;
        lockout.refuse_if_locked(clock::Now::read(), ctx.caller.name.as_str())?;
        Some(lockout)
    };
    let mut input = Input::new(stdin);
    say(ctx, LOGOUT_WARNING);
    let current = match &lockout {
        None => None,
        Some(lockout) => {
            let current = input.password("Enter your current password: ")?;
            prove_current(ctx, lockout, &current)?;
            check_minimum_age(ctx, &target)?;
            Some(current)
        }
    };
    let password = choose_password(ctx, &mut input, &target, current.as_ref(), force)?;
    say(ctx, "✔ Modifying password...");
    change(
        ctx,
        Source::Passwd,
        vec![NewPassword {
            user: target.clone(),
            password,
        }],
        expire,
    )?;
    say(ctx, "Password updated successfully");
    report::changed(ctx, &[target]);
    Ok(())
}

/// The caller's current password, checked before a self-service change. A
/// wrong one counts towards the lockout exactly as a failed `verify` does,
/// and is counted before PAM's failure delay is slept, so neither Ctrl-C
/// during the delay nor parallel runs get a guess for free.
fn prove_current(ctx: &Context, lockout: &Lockout, current: &Password) -> Result<(), Error> {
    match ctx
        .caller
        .prove(&ctx.paths, &ctx.config.pam.service, current)
    {
        Ok(()) => Ok(lockout.record_success(clock::Now::read())?),
        Err(Error::AuthFailed) => {
            lockout.record_wrong_current_password(clock::Now::read())?;
            std::thread::sleep(pam::failure_delay());
            Err(Error::AuthFailed)
        }
        Err(other) => Err(other),
    }
}

/// How many new passwords an interactive caller may try, as `passwd` with
/// pam_pwquality's `retry=3`.
const TRIES: usize = 3;

/// Asks for a new password until one passes the policy: up to [`TRIES`] times
/// on a terminal, once with `--stdin`. Each broken rule is shown; root with
/// `--force` gets them as warnings and keeps the password.
fn choose_password(
    ctx: &Context,
    input: &mut Input<input::Stdin>,
    user: &UserName,
    current: Option<&Password>,
    force: bool,
) -> Result<Password, Error> {
    let judge = Judge::new(&ctx.paths, &ctx.config, ctx.store_owner)?;
    let tries = if input.is_interactive() { TRIES } else { 1 };
    for attempt in 1..=tries {
        let Some(password) = input.confirmed_password()? else {
            if attempt < tries {
                report::warn("Sorry, passwords do not match.");
                continue;
            }
            return Err(input::mismatch());
        };
        let problems = judge.problems(&Candidate {
            user,
            new: &password,
            old: current,
        })?;
        if problems.is_empty() {
            return Ok(password);
        }
        if force {
            for problem in &problems {
                report::warn(&format!("warning: {problem}; set anyway (--force)"));
            }
            return Ok(password);
        }
        if attempt < tries {
            for problem in &problems {
                report::warn(&format!("BAD PASSWORD: {problem}"));
            }
            continue;
        }
        return Err(refused(ctx, user, &problems));
    }
    unreachable!("at least one try")
}

fn refused(ctx: &Context, user: &UserName, problems: &[String]) -> Error {
    let mut refusal = judge::refusal(user, problems);
    if ctx.caller.is_root()
        && let Error::Policy(text) = &mut refusal
    {
        text.push_str(" (root may set it anyway with --force)");
    }
    refusal
}

/// A self-service change inside the minimum age (shadow field 4) is refused,
/// as pam_unix refuses it — unless the password has expired or a change is
/// forced, which the minimum age never blocks.
fn check_minimum_age(ctx: &Context, user: &UserName) -> Result<(), Error> {
    let shadow = shadow::read_unlocked(&ctx.paths)?;
    let (Some(entry), Some(aging)) = (shadow.entry(user), shadow.aging(user)) else {
        return Ok(());
    };
    let (Some(min), LastChange::Day(changed)) = (aging.min, entry.last_change) else {
        return Ok(());
    };
    let today = ctx.now.day;
    let expired = aging.max.is_some_and(|max| today - changed > max);
    let allowed_from = changed + min;
    if min == 0 || expired || today >= allowed_from {
        return Ok(());
    }
    Err(Error::Policy(format!(
        "the password was changed less than {min} day(s) ago; it can be changed again from {} (UTC)",
        &clock::utc_text(allowed_from * 86_400)[..10]
    )))
}

pub fn recover(
    ctx: &Context,
    user: &str,
    stdin: bool,
    expire: bool,
    force: bool,
) -> Result<(), Error> {
    let target = user_name(user)?;
    if !ctx.caller.is_root() {
        return Err(ctx
            .caller
            .refuse(target.as_str(), "only root may recover a password"));
    }
    let mut input = Input::new(stdin);
    say(
        ctx,
        &format!(
            "Recovering the password of '{target}' in the Linux account and the application record."
        ),
    );
    say(ctx, LOGOUT_WARNING);
    let password = choose_password(ctx, &mut input, &target, None, force)?;
    say(ctx, "✔ Modifying password...");
    change(
        ctx,
        Source::Recover,
        vec![NewPassword {
            user: target.clone(),
            password,
        }],
        expire,
    )?;
    faillock::reset(&ctx.paths, &target).map_err(|e| {
        Error::Failure(format!(
            "the password was recovered, but the failure tally could not be cleared: {e}"
        ))
    })?;
    say(ctx, "Password updated successfully");
    report::changed(ctx, &[target]);
    Ok(())
}

pub fn import(ctx: &Context, expire: bool, force: bool) -> Result<(), Error> {
    ctx.caller.require_root("import passwords")?;
    let batch = parse_import(&mut input::Stdin::new())?;
    judge_batch(ctx, &batch, force)?;
    let users: Vec<UserName> = batch.iter().map(|(_, c)| c.user.clone()).collect();
    let line_of: HashMap<UserName, usize> =
        batch.iter().map(|(n, c)| (c.user.clone(), *n)).collect();
    let changes = batch.into_iter().map(|(_, c)| c).collect();
    change(ctx, Source::Import, changes, expire).map_err(|e| match e {
        Error::UnknownUser(user) => {
            bad_line(line_of[&user], &format!("user '{user}' does not exist"))
        }
        other => other,
    })?;
    say(ctx, &format!("{} password(s) changed", users.len()));
    report::changed(ctx, &users);
    Ok(())
}

/// The quality rules for every line of an import, before anything is
/// hashed: refused (naming each line) unless `--force`. The history is not
/// checked for a batch — it would cost several key derivations per user; a
/// batch provisions passwords, which the users then change themselves.
fn judge_batch(ctx: &Context, batch: &[(usize, NewPassword)], force: bool) -> Result<(), Error> {
    let judge = Judge::new(&ctx.paths, &ctx.config, ctx.store_owner)?;
    let mut refusals = Vec::new();
    for (line, change) in batch {
        let problems = judge.quality_problems(&Candidate {
            user: &change.user,
            new: &change.password,
            old: None,
        })?;
        if problems.is_empty() {
            continue;
        }
        if force {
            for problem in &problems {
                report::warn(&format!(
                    "warning: line {line} ('{}'): {problem}; set anyway (--force)",
                    change.user
                ));
            }
        } else {
            refusals.push(format!(
                "line {line} ('{}'): {}",
                change.user,
                problems.join(", ")
            ));
        }
    }
    if refusals.is_empty() {
        return Ok(());
    }
    Err(Error::Policy(format!(
        "the batch breaks the password policy: {}; nothing was changed (root may set it anyway with --force)",
        refusals.join("; ")
    )))
}

pub fn sync(ctx: &Context, dry_run: bool) -> Result<(), Error> {
    ctx.caller.require_root("run sync")?;
    let findings = if dry_run {
        let store = Store::open_existing(&ctx.paths.store_dir(), ctx.store_owner)?;
        reconcile::survey(store.as_ref(), &shadow::read_unlocked(&ctx.paths)?, None)?
    } else {
        let mut stores = Stores::lock(&ctx.paths, &ctx.config, ctx.store_owner)?;
        reconcile::sync(&mut stores, ctx.now)?
    };
    report::sync(ctx, &findings, dry_run);
    Ok(())
}

pub fn status(ctx: &Context, user: Option<&str>) -> Result<(), Error> {
    let only = match user {
        Some(name) => Some(user_name(name)?),
        None if ctx.caller.is_root() => None,
        None => Some(ctx.caller.name.clone()),
    };
    if let Some(target) = &only
        && !ctx.caller.may_manage(target)
    {
        return Err(ctx
            .caller
            .refuse(target.as_str(), "you may see only your own status"));
    }
    let store = Store::open_existing(&ctx.paths.store_dir(), ctx.store_owner)?;
    let shadow = shadow::read_unlocked(&ctx.paths)?;
    let findings = reconcile::survey(store.as_ref(), &shadow, only.as_ref())?;
    if let Some(target) = &only
        && findings.is_empty()
        && shadow.entry(target).is_none()
    {
        return Err(Error::UnknownUser(target.clone()));
    }
    let lockouts = Lockouts::load(
        &ctx.paths,
        &ctx.config.policy.lockout,
        &ctx.config.pam.service,
    )?;
    let standings: Vec<report::Standing> = findings
        .iter()
        .map(|(record, _)| report::Standing {
            expiry: verify::expiry(&shadow, &record.user, ctx.now.day),
            tally: lockouts.user(&record.user).assess(ctx.now),
        })
        .collect();
    report::status(ctx, &findings, &standings, only.as_ref());
    Ok(())
}

pub fn verify(ctx: &Context, user: &str, stdin: bool) -> Result<(), Error> {
    let target = user_name(user)?;
    if !ctx.caller.may_verify(&target, &ctx.config.verify.groups) {
        return Err(ctx
            .caller
            .refuse(target.as_str(), "you may verify only your own password"));
    }
    let password = Input::new(stdin).password_or_empty("Password: ")?;
    let store = Store::open(&ctx.paths.store_dir(), ctx.store_owner)?;
    let (mut store, shadow) = if store.intents()?.iter().any(|i| i.user == target) {
        // Finish the interrupted change first, under the locks; keep what they
        // read. If it can't be finished now (a full disk), judge it as it
        // stands rather than lock the user out of the application.
        drop(store);
        match Stores::lock(&ctx.paths, &ctx.config, ctx.store_owner) {
            Ok(Stores { store, shadow, .. }) => (store, shadow),
            Err(
                busy @ (Error::Shadow(ShadowError::Busy { .. }) | Error::Store(StoreError::Busy)),
            ) => {
                return Err(busy);
            }
            Err(_) => (
                Store::open(&ctx.paths.store_dir(), ctx.store_owner)?,
                shadow::read_unlocked(&ctx.paths)?,
            ),
        }
    } else {
        (store, shadow::read_unlocked(&ctx.paths)?)
    };
    let lockout = lockout_of(ctx, &target)?;
    let delay = Duration::from_millis(ctx.config.verify.failure_delay_ms);
    // Failures are dated when they happen, not when a prompt began.
    let outcome = match &password {
        Some(password) => verify::attempt(
            &mut store,
            &shadow,
            &target,
            password,
            &ctx.config.argon2,
            &lockout,
            clock::Now::read(),
        )?,
        // An empty password matches no hash credsync accepts: refused as a
        // wrong one, uncounted.
        None => match verify::never_accepted(&store, &shadow, &target)? {
            Some(verify::Outcome::NoPassword) => verify::Outcome::NoPassword,
            _ => verify::Outcome::NeverAccepted,
        },
    };
    match outcome {
        Outcome::Accepted => Ok(()),
        Outcome::MustChange => Err(Error::MustChange),
        Outcome::Expired => Err(Error::Expired),
        Outcome::AccountExpired => Err(ctx.caller.refuse(
            target.as_str(),
            "the account has expired; an administrator must renew it",
        )),
        Outcome::Locked(locked) => {
            std::thread::sleep(delay);
            Err(locked.refusal(&target, ctx.caller.name.as_str()))
        }
        Outcome::Rejected | Outcome::NeverAccepted => {
            audit::log(Event::VerifyFailed {
                user: &target,
                by: ctx.caller.name.as_str(),
            });
            std::thread::sleep(delay);
            Err(Error::AuthFailed)
        }
        Outcome::NoPassword => {
            std::thread::sleep(delay);
            Err(ctx.caller.refuse(
                target.as_str(),
                "the account has no password (removed in Linux); credsync never accepts an empty password",
            ))
        }
    }
}
