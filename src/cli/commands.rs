//! One function per command: ask what's needed, check who may do it, hand the
//! work to the core (`change`, `reconcile`, `verify`), and report.
#![forbid(unsafe_code)]

use super::Context;
use super::input::{self, Input, bad_line, parse_hashed_import, parse_import};
use super::report::{self, say};
use credsync_core::account::UserName;
use credsync_core::change::{self, HashedRequest, NewPassword, Request};
use credsync_core::clock;
use credsync_core::error::Error;
use credsync_core::judge::{self, Candidate, Judge};
use credsync_core::lockout::Lockout;
use credsync_core::reconcile;
use credsync_core::requests::{Site, TooSoon};
use credsync_core::secret::Password;
use credsync_core::status;
use credsync_core::store::{Provenance, Source, Store};
use credsync_core::stores::Stores;
use credsync_core::system::{pam, shadow};
use credsync_core::verify::Outcome;
use std::collections::HashMap;
use std::time::Duration;

const LOGOUT_WARNING: &str = "Changing the current password will log this user out of all active application sessions. \
Subsequent logins will require the new password to authenticate.";

fn user_name(name: &str) -> Result<UserName, Error> {
    UserName::parse(name).map_err(|e| Error::Invalid(e.to_string()))
}

fn site(ctx: &Context) -> Site<'_> {
    Site {
        paths: &ctx.paths,
        config: &ctx.config,
        store_owner: ctx.store_owner,
    }
}

fn provenance(ctx: &Context, source: Source) -> Provenance {
    Provenance {
        at: ctx.now,
        by: ctx.caller.name.to_string(),
        source,
        auid: ctx.caller.login_uid,
    }
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
        provenance: provenance(ctx, source),
    };
    change::apply(
        &ctx.paths,
        &ctx.config,
        &site(ctx).hash_method()?,
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
        let lockout = site(ctx).lockout(&target)?;
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
            if let Some(too_soon) = TooSoon::check(&ctx.paths, &target, ctx.now.day)? {
                return Err(too_soon.refusal());
            }
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

/// The caller's current password, checked before a self-service change; a
/// wrong one is counted (`Site::prove_current`), then the failure delay is
/// slept.
fn prove_current(ctx: &Context, lockout: &Lockout, current: &Password) -> Result<(), Error> {
    let name = &ctx.caller.name;
    match site(ctx).prove_current(name, name.as_str(), lockout, current) {
        Err(Error::AuthFailed) => {
            std::thread::sleep(pam::failure_delay());
            Err(Error::AuthFailed)
        }
        other => other,
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
    site(ctx).clear_tally(&target)?;
    say(ctx, "Password updated successfully");
    report::changed(ctx, &[target]);
    Ok(())
}

pub fn import(ctx: &Context, expire: bool, force: bool, hashed: bool) -> Result<(), Error> {
    ctx.caller.require_root("import passwords")?;
    if hashed {
        return import_hashed(ctx, expire);
    }
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

/// `import --hashed`: the hashes go in as given, through the same change
/// path. There are no passwords, so no policy to judge.
fn import_hashed(ctx: &Context, expire: bool) -> Result<(), Error> {
    let batch = parse_hashed_import(&mut input::Stdin::new())?;
    let users: Vec<UserName> = batch.iter().map(|(_, c)| c.user.clone()).collect();
    let line_of: HashMap<UserName, usize> =
        batch.iter().map(|(n, c)| (c.user.clone(), *n)).collect();
    let request = HashedRequest {
        changes: batch.into_iter().map(|(_, c)| c).collect(),
        must_change: expire,
        provenance: provenance(ctx, Source::Import),
        aging: None,
    };
    change::apply_hashed(&ctx.paths, &ctx.config, ctx.store_owner, request).map_err(
        |e| match e {
            Error::UnknownUser(user) => {
                bad_line(line_of[&user], &format!("user '{user}' does not exist"))
            }
            other => other,
        },
    )?;
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
    let entries = status::survey(
        &ctx.paths,
        &ctx.config,
        ctx.store_owner,
        only.as_ref(),
        ctx.now,
    )?;
    report::status(ctx, &entries, only.as_ref());
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
    let delay = Duration::from_millis(ctx.config.verify.failure_delay_ms);
    let outcome = site(ctx).verify(&target, password.as_ref(), ctx.caller.name.as_str())?;
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
