//! One function per command: ask what's needed, check who may do it, hand the
//! work to the core (`change`, `reconcile`, `store`), and report.
#![forbid(unsafe_code)]

use super::Context;
use super::input::{self, Input};
use super::report;
use crate::account::UserName;
use crate::audit::{self, Event};
use crate::change::{self, NewPassword, Request};
use crate::error::Error;
use crate::reconcile;
use crate::secret::Password;
use crate::store::app_hash;
use crate::store::{Provenance, Source, Store};
use crate::stores::Stores;
use crate::system::crypt::{self, HashMethod};
use crate::system::{faillock, method, pam, shadow};
use std::io::BufRead;
use std::time::Duration;

const LOGOUT_WARNING: &str = "Changing the current password will log this user out of all active sessions. \
Subsequent logins will require the new password to authenticate.";

fn user_name(name: &str) -> Result<UserName, Error> {
    UserName::parse(name).map_err(|e| Error::Invalid(e.to_string()))
}

fn hash_method(ctx: &Context) -> Result<HashMethod, Error> {
    let configured = ctx.config.hash_method().map_err(Error::Invalid)?;
    Ok(method::detect(&ctx.paths, &ctx.config.pam.service, configured).0)
}

fn provenance(ctx: &Context, source: Source) -> Provenance {
    Provenance {
        at: ctx.now,
        by: ctx.caller.name.to_string(),
        source,
    }
}

fn refuse(ctx: &Context, user: &str, why: &str) -> Error {
    audit::log(Event::Refused {
        user,
        by: ctx.caller.name.as_str(),
        why,
    });
    Error::Denied(why.to_owned())
}

fn say(ctx: &Context, text: &str) {
    if !ctx.json {
        println!("{text}");
    }
}

pub fn passwd(ctx: &Context, user: Option<&str>, stdin: bool, expire: bool) -> Result<(), Error> {
    let target = match user {
        Some(name) => user_name(name)?,
        None => ctx.caller.name.clone(),
    };
    if !ctx.caller.may_manage(&target) {
        return Err(refuse(
            ctx,
            target.as_str(),
            "you may change only your own password",
        ));
    }
    if expire && !ctx.caller.is_root() {
        return Err(refuse(
            ctx,
            target.as_str(),
            "only root may force a password change",
        ));
    }
    let mut input = Input::new(stdin);
    say(ctx, LOGOUT_WARNING);
    if !ctx.caller.is_root() {
        let current = input.password("Enter your current password: ")?;
        authenticate_current(ctx, &target, &current)?;
    }
    let password = input.new_password()?;
    say(ctx, "✔ Modifying password...");
    let request = Request {
        changes: vec![NewPassword {
            user: target.clone(),
            password,
        }],
        must_change: expire,
        provenance: provenance(ctx, Source::Passwd),
    };
    change::apply(
        &ctx.paths,
        &ctx.config,
        &hash_method(ctx)?,
        ctx.store_owner,
        request,
    )?;
    say(ctx, "Password updated successfully");
    report::changed(ctx, &[target]);
    Ok(())
}

/// The caller proves the current password: through PAM on the live system, or
/// with libcrypt against the shadow file under `--root` (PAM can't see it).
fn authenticate_current(ctx: &Context, user: &UserName, current: &Password) -> Result<(), Error> {
    let result = if ctx.paths.is_alternate_root() {
        let entry = shadow::read_unlocked(&ctx.paths)?.entry(user);
        match entry {
            Some(e) if crypt::verify(current, &e.hash) => Ok(()),
            _ => Err(Error::AuthFailed),
        }
    } else {
        // An expired password (MustChange) is let through: that is what it's for.
        pam::authenticate(&ctx.config.pam.service, user, &ctx.caller.name, current)
            .map(drop)
            .map_err(Error::from)
    };
    if let Err(e) = &result {
        audit::log(Event::Refused {
            user: user.as_str(),
            by: ctx.caller.name.as_str(),
            why: &e.to_string(),
        });
    }
    result
}

pub fn recover(ctx: &Context, user: &str, stdin: bool, expire: bool) -> Result<(), Error> {
    let target = user_name(user)?;
    if !ctx.caller.is_root() {
        return Err(refuse(
            ctx,
            target.as_str(),
            "only root may recover a password",
        ));
    }
    let mut input = Input::new(stdin);
    say(
        ctx,
        &format!(
            "Recovering the password of '{target}' in the Linux account and the application record."
        ),
    );
    say(ctx, LOGOUT_WARNING);
    let password = input.new_password()?;
    say(ctx, "✔ Modifying password...");
    let request = Request {
        changes: vec![NewPassword {
            user: target.clone(),
            password,
        }],
        must_change: expire,
        provenance: provenance(ctx, Source::Recover),
    };
    change::apply(
        &ctx.paths,
        &ctx.config,
        &hash_method(ctx)?,
        ctx.store_owner,
        request,
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

pub fn import(ctx: &Context, expire: bool) -> Result<(), Error> {
    ctx.caller.require_root("import passwords")?;
    let changes = parse_import(&mut std::io::stdin().lock())?;
    let users: Vec<UserName> = changes.iter().map(|c| c.user.clone()).collect();
    let request = Request {
        changes,
        must_change: expire,
        provenance: provenance(ctx, Source::Import),
    };
    change::apply(
        &ctx.paths,
        &ctx.config,
        &hash_method(ctx)?,
        ctx.store_owner,
        request,
    )?;
    say(ctx, &format!("{} password(s) changed", users.len()));
    report::changed(ctx, &users);
    Ok(())
}

/// chpasswd's format: `user:password` per line; the password may hold `:`.
/// Blank lines are skipped; any other bad line rejects the whole batch.
pub fn parse_import(reader: &mut impl BufRead) -> Result<Vec<NewPassword>, Error> {
    let mut changes = Vec::new();
    for number in 1.. {
        let line = match input::read_line(reader) {
            Ok(line) => line,
            Err(Error::Invalid(e)) if e.starts_with("standard input ended") => break,
            Err(Error::Invalid(_)) => return Err(bad_line(number, "the line is too long")),
            Err(e) => return Err(e),
        };
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(bad_line(number, "expected user:password"));
        };
        let user = std::str::from_utf8(&line[..colon])
            .ok()
            .and_then(|name| UserName::parse(name).ok())
            .ok_or_else(|| bad_line(number, "invalid user name"))?;
        let password = Password::new(line[colon + 1..].to_vec())
            .map_err(|e| bad_line(number, &e.to_string()))?;
        changes.push(NewPassword { user, password });
    }
    if changes.is_empty() {
        return Err(Error::Invalid(
            "no user:password lines on standard input; nothing was changed".into(),
        ));
    }
    Ok(changes)
}

fn bad_line(number: usize, why: &str) -> Error {
    Error::Invalid(format!("line {number}: {why}; nothing was changed"))
}

pub fn sync(ctx: &Context, dry_run: bool) -> Result<(), Error> {
    ctx.caller.require_root("run sync")?;
    let findings = if dry_run {
        let store = Store::open(&ctx.paths.store_dir(), ctx.store_owner)?;
        reconcile::survey(&store, &shadow::read_unlocked(&ctx.paths)?)?
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
        return Err(refuse(
            ctx,
            target.as_str(),
            "you may see only your own status",
        ));
    }
    let store = Store::open(&ctx.paths.store_dir(), ctx.store_owner)?;
    let shadow = shadow::read_unlocked(&ctx.paths)?;
    let mut findings = reconcile::survey(&store, &shadow)?;
    if let Some(target) = &only {
        findings.retain(|(r, _)| &r.user == target);
        if findings.is_empty() && shadow.entry(target).is_none() {
            return Err(Error::Invalid(format!("user '{target}' does not exist")));
        }
    }
    report::status(ctx, &findings, only.as_ref());
    Ok(())
}

pub fn verify(ctx: &Context, user: &str, stdin: bool) -> Result<(), Error> {
    let target = user_name(user)?;
    if !ctx.caller.may_verify(&target, &ctx.config.verify.groups) {
        return Err(refuse(
            ctx,
            target.as_str(),
            "you may verify only your own password",
        ));
    }
    let password = Input::new(stdin).password("Password: ")?;
    let mut store = Store::open(&ctx.paths.store_dir(), ctx.store_owner)?;
    if store.intents()?.iter().any(|i| i.user == target) {
        // Finish the interrupted change first, under the locks; keep its store.
        drop(store);
        Stores { store, .. } = Stores::lock(&ctx.paths, &ctx.config, ctx.store_owner)?;
    }
    let record = store.record(&target)?;
    let matches = match &record {
        None => false,
        Some(r) => match &r.app_hash {
            Some(phc) => app_hash::verify(&password, phc),
            // Adopted from Linux: check the crypt hash, and derive the Argon2id
            // hash now that the password is known.
            None if crypt::verify(&password, &r.linux_hash) => {
                let phc = ctx
                    .config
                    .argon2
                    .hash(&password)
                    .map_err(|e| Error::Failure(e.to_string()))?;
                store.rederive(&target, &r.linux_hash, &phc)?;
                true
            }
            None => false,
        },
    };
    if !matches {
        audit::log(Event::VerifyFailed {
            user: &target,
            by: ctx.caller.name.as_str(),
        });
        std::thread::sleep(Duration::from_millis(ctx.config.verify.failure_delay_ms));
        return Err(Error::AuthFailed);
    }
    if record.is_some_and(|r| r.must_change) {
        return Err(Error::MustChange);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &[u8]) -> Result<Vec<NewPassword>, Error> {
        parse_import(&mut &text[..])
    }

    #[test]
    fn import_lines_split_at_the_first_colon() {
        let changes = parse(b"alice:pa:ss\n\nbob:x\n").unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].user.as_str(), "alice");
        assert_eq!(changes[0].password.as_bytes(), b"pa:ss");
    }

    #[test]
    fn one_bad_line_rejects_the_batch_with_its_number() {
        for (text, line) in [
            (&b"alice:x\nbob\n"[..], "line 2"),
            (b"alice:x\nbob:\n", "line 2"),
            (b"a lice:x\n", "line 1"),
            (b"alice:x\ncarol:ok\n:x\n", "line 3"),
        ] {
            let err = parse(text).err().unwrap().to_string();
            assert!(err.starts_with(line), "{err}");
        }
        assert!(parse(b"").is_err());
    }
}
