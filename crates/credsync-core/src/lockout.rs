//! Lockout after repeated failures, shared with pam_faillock: `verify` counts
//! its failures in pam_faillock's own tally (`system::faillock`), so the
//! application's failures and every other login's add up to one lockout, and a
//! locked user is refused by `verify` and by a self-service `passwd` until the
//! lock runs out or `recover` clears the tally.
//!
//! What it owns:
//! - Which settings count ([`Lockouts::load`]): one set of numbers for the
//!   application's logins and the system's.
//!   - When the site runs pam_faillock (an `auth ... pam_faillock.so` line in
//!     the stack of credsync's PAM service, which includes `common-auth` or
//!     `system-auth`), its numbers win, exactly as pam_faillock computes them:
//!     its built-in defaults (3 failures, 900 s, 600 s), then `faillock.conf`
//!     (or the file its `conf=` names), then the line's own arguments. The
//!     two sides then lock at the same count, for the same time, out of the
//!     box. `[policy.lockout]` is not applied: pam_faillock can't be made to
//!     honour a stricter rule of credsync's, and two rules are what let
//!     `verify` clear a tally ssh had locked.
//!   - Without pam_faillock in the stack, `[policy.lockout]` gives `deny`,
//!     `fail_interval` and `unlock_time`, and each of them that
//!     `/etc/security/faillock.conf` sets wins (pam_faillock elsewhere, in
//!     sshd's own stack say, reads that file).
//!   - `dir`, `root_unlock_time`, `even_deny_root`, `admin_group` and
//!     `no_log_info` come from pam_faillock's settings alone.
//! - Whose tally it is ([`Lockout`]): the account of that name in `/etc/passwd`
//!   under the root. A name without an account is not counted, as
//!   pam_faillock ignores unknown users.
//! - The order of a check, pam_faillock's `preauth`, `authfail`, `authsucc`:
//!   [`Lockout::locked`] before the password is looked at,
//!   [`Lockout::record_failure`] after a wrong one ([`Lockout::log_lock`]
//!   then logs "Consecutive login failures for user X account temporarily
//!   locked" if it locked), [`Lockout::record_success`] after a right one.
//!
//! Guarantees: with the lockout off (`deny` 0 after faillock.conf) nothing
//! reads or writes a tally; a tally locked under the settings in force or
//! under `[policy.lockout]` is never cleared by a right password (only
//! `recover` or `faillock --reset` clears it); root and `admin_group` members are counted but
//! never locked unless faillock.conf says `even_deny_root`; a failure while the
//! user is locked is not recorded (pam_faillock records none either); a tally
//! or faillock.conf that can't be read is an error, never "not locked".
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::audit::{self, Event};
use crate::clock::{self, Now};
use crate::error::Error;
use crate::policy::LockoutConfig;
use crate::system::Paths;
use crate::system::faillock::{
    self, Assessment, CREDSYNC_SOURCE, FaillockConf, FailureOutcome, Lock,
};
use crate::system::method::pam_stack;
use crate::system::passwd::{GroupEntry, PasswdEntry, read_group, read_passwd};
use crate::system::syslog::{self, Priority};
use std::fmt;
use std::io::ErrorKind;
use std::path::PathBuf;

/// What can go wrong reading the lockout state: the same as for recovery's
/// reset (a bad faillock.conf, an unreadable tally or passwd file).
pub use crate::system::faillock::FaillockError as LockoutError;

impl From<LockoutError> for Error {
    fn from(e: LockoutError) -> Self {
        Error::Failure(e.to_string())
    }
}

/// The lockout settings in force, and the accounts they apply to.
#[derive(Debug, Clone)]
pub struct Lockouts {
    conf: FaillockConf,
    /// `[policy.lockout]` over faillock.conf: a tally locked under this too
    /// is never cleared by a success.
    policy_conf: FaillockConf,
    /// The site's pam_faillock line decided the settings.
    from_stack: bool,
    /// The tally directory, under the root.
    dir: PathBuf,
    accounts: Vec<PasswdEntry>,
    groups: Vec<GroupEntry>,
}

impl Lockouts {
    /// The settings in force (see the module's comment) for the PAM
    /// service `pam_service`, and the accounts of `/etc/passwd` (and
    /// `/etc/group` when an `admin_group` is named) under `paths`.
    pub fn load(
        paths: &Paths,
        policy: &LockoutConfig,
        pam_service: &str,
    ) -> Result<Self, LockoutError> {
        let policy_conf = settings(policy).load_over(&paths.faillock_conf())?;
        let site = pam_stack::find_pam_faillock_auth(&paths.pam_d(), pam_service);
        let from_stack = site.is_some();
        let conf = match site {
            Some(line) => {
                let args = || line.args.iter().map(String::as_str);
                let file = FaillockConf::module_conf_file(args())
                    .map_or_else(|| paths.faillock_conf(), |file| paths.under_root(file));
                let mut conf = FaillockConf::default().load_over(&file)?;
                conf.apply_module_args(args());
                conf
            }
            None => policy_conf.clone(),
        };
        let dir = paths.under_root(&conf.dir.to_string_lossy());
        if conf.deny == 0 {
            return Ok(Lockouts {
                conf,
                policy_conf,
                from_stack,
                dir,
                accounts: Vec::new(),
                groups: Vec::new(),
            });
        }
        let passwd = paths.passwd();
        let accounts = read_passwd(&passwd).map_err(|source| LockoutError::Accounts {
            path: passwd.clone(),
            source,
        })?;
        let groups = if conf.admin_group.is_empty() {
            Vec::new()
        } else {
            match read_group(&paths.group()) {
                Ok(groups) => groups,
                Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
                Err(source) => {
                    return Err(LockoutError::Accounts {
                        path: paths.group(),
                        source,
                    });
                }
            }
        };
        Ok(Lockouts {
            conf,
            policy_conf,
            from_stack,
            dir,
            accounts,
            groups,
        })
    }

    /// Whether the site's pam_faillock counts failures in credsync's PAM
    /// stack: then a current password PAM refused is already in the tally.
    pub fn counted_by_pam(&self) -> bool {
        self.from_stack
    }

    /// The settings in force.
    pub fn settings(&self) -> &FaillockConf {
        &self.conf
    }

    /// Whether failures lock anyone out at all.
    pub fn is_on(&self) -> bool {
        self.conf.deny != 0
    }

    /// `user`'s lockout.
    pub fn user(&self, user: &UserName) -> Lockout {
        // Off, there are no accounts to find.
        let tally = self
            .accounts
            .iter()
            .find(|a| a.name == user.as_str())
            .map(|account| Tally {
                path: self.dir.join(user.as_str()),
                owner: account.uid,
                is_admin: self
                    .conf
                    .is_admin(account.uid, &self.accounts, &self.groups),
            });
        Lockout {
            user: user.clone(),
            conf: self.conf.clone(),
            policy_conf: self.policy_conf.clone(),
            counted_by_pam: self.from_stack,
            tally,
        }
    }
}

/// The policy's values as pam_faillock settings, before faillock.conf.
fn settings(policy: &LockoutConfig) -> FaillockConf {
    FaillockConf {
        deny: u16::try_from(policy.failures).unwrap_or(u16::MAX),
        fail_interval: u32::try_from(policy.window_secs).unwrap_or(u32::MAX),
        unlock_time: u32::try_from(policy.lock_secs).unwrap_or(u32::MAX),
        ..FaillockConf::default()
    }
}

/// One user's lockout. Every method does nothing (and finds the user
/// unlocked) when the lockout is off or the user has no account.
#[derive(Debug, Clone)]
pub struct Lockout {
    user: UserName,
    conf: FaillockConf,
    policy_conf: FaillockConf,
    counted_by_pam: bool,
    tally: Option<Tally>,
}

#[derive(Debug, Clone)]
struct Tally {
    path: PathBuf,
    /// The account's uid: the tally file belongs to it.
    owner: u32,
    is_admin: bool,
}

impl Lockout {
    /// The tally as it stands (pam_faillock's `check_tally`); `None` when the
    /// user's failures are not counted.
    pub fn assess(&self, now: Now) -> Result<Option<Assessment>, LockoutError> {
        let Some(tally) = &self.tally else {
            return Ok(None);
        };
        Ok(Some(faillock::check(
            &tally.path,
            tally.owner,
            now,
            &self.conf,
            tally.is_admin,
        )?))
    }

    /// The lock in force, if any (pam_faillock's `preauth`).
    pub fn locked(&self, now: Now) -> Result<Option<Locked>, LockoutError> {
        Ok(self.assess(now)?.and_then(|a| {
            a.lock.map(|lock| Locked {
                failures: a.failures,
                lock,
                now,
            })
        }))
    }

    /// [`locked`](Self::locked) as the refusal commands give, asked by
    /// `by`: logged, exit 13 with the time left.
    pub fn refuse_if_locked(&self, now: Now, by: &str) -> Result<(), Error> {
        match self.locked(now)? {
            Some(locked) => Err(locked.refusal(&self.user, by)),
            None => Ok(()),
        }
    }

    /// A wrong password (pam_faillock's `authfail`), recorded with source
    /// `credsync`. Returns whether this failure locked the user out (then
    /// [`log_lock`](Self::log_lock) tells syslog, as pam_faillock does).
    pub fn record_failure(&self, now: Now) -> Result<bool, LockoutError> {
        let Some(tally) = &self.tally else {
            return Ok(false);
        };
        // pam_faillock creates one level of directory; under an alternate
        // root (an image, a test) the levels above may be missing too.
        if let Some(parent) = tally.path.parent().and_then(|dir| dir.parent()) {
            let _ = std::fs::create_dir_all(parent);
        }
        let outcome = faillock::record_failure(
            &tally.path,
            tally.owner,
            now,
            &self.conf,
            tally.is_admin,
            CREDSYNC_SOURCE,
        )?;
        Ok(matches!(
            outcome,
            FailureOutcome::Recorded {
                reached_deny: true,
                ..
            }
        ))
    }

    /// Tells syslog that the user is now locked out, in pam_faillock's words
    /// (unless faillock.conf says `no_log_info`).
    pub fn log_lock(&self) {
        if !self.conf.no_log_info {
            syslog::log(
                Priority::Notice,
                &format!(
                    "Consecutive login failures for user {} account temporarily locked",
                    self.user
                ),
            );
        }
    }

    /// A right password (pam_faillock's `authsucc`): the failures so far stop
    /// counting, unless the user is locked out under the settings in force
    /// or under `[policy.lockout]`. A user without a tally file gets none
    /// (pam_faillock would create an empty one).
    pub fn record_success(&self, now: Now) -> Result<(), LockoutError> {
        let Some(tally) = &self.tally else {
            return Ok(());
        };
        if std::fs::symlink_metadata(&tally.path).is_err_and(|e| e.kind() == ErrorKind::NotFound) {
            return Ok(());
        }
        let locked_by_policy = faillock::check(
            &tally.path,
            tally.owner,
            now,
            &self.policy_conf,
            tally.is_admin,
        )?
        .lock
        .is_some();
        if !locked_by_policy {
            faillock::record_success(&tally.path, tally.owner, now, &self.conf, tally.is_admin)?;
        }
        Ok(())
    }

    /// A wrong current password at a self-service change, counted like a
    /// failed `verify` unless the site's pam_faillock in credsync's PAM stack
    /// counted it already. Logged as a lock when it locked.
    pub fn record_wrong_current_password(&self, now: Now) -> Result<(), LockoutError> {
        if self.counted_by_pam {
            return Ok(());
        }
        if self.record_failure(now)? {
            self.log_lock();
        }
        Ok(())
    }
}

/// `user`'s lockout under `paths`: [`Lockouts::load`] for one user.
pub fn for_user(
    paths: &Paths,
    policy: &LockoutConfig,
    pam_service: &str,
    user: &UserName,
) -> Result<Lockout, LockoutError> {
    Ok(Lockouts::load(paths, policy, pam_service)?.user(user))
}

/// A lock in force, as the user is told about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// The failures that count (pam_faillock's "locked due to N failed logins").
    pub failures: u32,
    pub lock: Lock,
    now: Now,
}

impl Locked {
    /// Whole minutes left, rounded up as pam_faillock rounds them; `None`
    /// for a lock that lasts until an administrator clears it.
    pub fn minutes_left(&self) -> Option<u64> {
        match self.lock {
            // A lock ending within this second still has a moment to run.
            Lock::Until(_) => Some(self.lock.minutes_left(self.now).unwrap_or(1)),
            Lock::UntilReset => None,
        }
    }
}

impl Locked {
    /// Refuses `user` what `by` asked for because of this lock: logged as
    /// every refusal is, exit 13, the message with the time left.
    pub fn refusal(&self, user: &UserName, by: &str) -> Error {
        let why = self.to_string();
        audit::log(Event::Refused {
            user: user.as_str(),
            by,
            why: &why,
        });
        Error::Locked(why)
    }
}

impl fmt::Display for Locked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let logins = plural(u64::from(self.failures), "failed login");
        match self.minutes_left() {
            Some(minutes) => write!(
                f,
                "the account is locked after {logins}; try again in {}",
                plural(minutes, "minute")
            ),
            None => write!(
                f,
                "the account is locked after {logins} until an administrator recovers it"
            ),
        }
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// When a timed lock ends, for `status`: the last second it holds.
pub fn until_text(lock: Lock) -> Option<(String, i64)> {
    match lock {
        Lock::Until(until) => {
            let until = i64::try_from(until).unwrap_or(i64::MAX);
            Some((clock::utc_text(until), until))
        }
        Lock::UntilReset => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::faillock::TallyRecord;
    use std::fs;

    const T0: i64 = 1_795_651_200; // 2026-11-26T00:00:00Z

    fn at(secs: i64) -> Now {
        Now::at(secs)
    }

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    /// A root with `/etc/passwd` (root, alice 1000, bob 1001 in group wheel)
    /// and, if given, `/etc/security/faillock.conf`.
    struct Root {
        dir: tempfile::TempDir,
    }

    impl Root {
        fn new(faillock_conf: Option<&str>) -> Root {
            let dir = tempfile::tempdir().unwrap();
            let etc = dir.path().join("etc");
            fs::create_dir_all(etc.join("security")).unwrap();
            fs::write(
                etc.join("passwd"),
                "root:x:0:0:root:/root:/bin/sh\n\
                 alice:x:1000:1000::/home/alice:/bin/sh\n\
                 bob:x:1001:1001::/home/bob:/bin/sh\n",
            )
            .unwrap();
            fs::write(
                etc.join("group"),
                "root:x:0:\nalice:x:1000:\nbob:x:1001:\nwheel:x:10:bob\n",
            )
            .unwrap();
            if let Some(text) = faillock_conf {
                fs::write(etc.join("security/faillock.conf"), text).unwrap();
            }
            Root { dir }
        }

        fn paths(&self) -> Paths {
            Paths::under(self.dir.path())
        }

        fn lockouts(&self, policy: &LockoutConfig) -> Lockouts {
            Lockouts::load(&self.paths(), policy, "credsync").unwrap()
        }

        fn tally(&self, name: &str) -> PathBuf {
            self.dir.path().join("var/run/faillock").join(name)
        }

        fn records(&self, name: &str) -> Vec<TallyRecord> {
            let bytes = fs::read(self.tally(name)).unwrap_or_default();
            bytes
                .chunks_exact(TallyRecord::SIZE)
                .map(|c| TallyRecord::from_bytes(c.try_into().unwrap()))
                .collect()
        }
    }

    fn policy(failures: u32, window_secs: u64, lock_secs: u64) -> LockoutConfig {
        LockoutConfig {
            failures,
            window_secs,
            lock_secs,
        }
    }

    #[test]
    fn the_policy_gives_the_defaults_and_faillock_conf_keys_win() {
        let appliance = LockoutConfig::default();
        let conf = Root::new(None).lockouts(&appliance).settings().clone();
        assert_eq!(
            (conf.deny, conf.fail_interval, conf.unlock_time),
            (6, 900, 1800)
        );
        assert_eq!(conf.dir, PathBuf::from("/var/run/faillock"));

        // Debian's file is all comments: nothing set, the policy stands.
        let commented = "# deny = 3\n# unlock_time = 600\n";
        let conf = Root::new(Some(commented))
            .lockouts(&appliance)
            .settings()
            .clone();
        assert_eq!(
            (conf.deny, conf.fail_interval, conf.unlock_time),
            (6, 900, 1800)
        );

        // A key set to pam_faillock's own default still wins.
        let conf = Root::new(Some("deny = 3\ndir /var/lib/fl\n"))
            .lockouts(&appliance)
            .settings()
            .clone();
        assert_eq!(
            (conf.deny, conf.fail_interval, conf.unlock_time),
            (3, 900, 1800)
        );
        assert_eq!(conf.dir, PathBuf::from("/var/lib/fl"));

        let conf = Root::new(Some("fail_interval=60\nunlock_time never\n"))
            .lockouts(&appliance)
            .settings()
            .clone();
        assert_eq!(
            (conf.deny, conf.fail_interval, conf.unlock_time),
            (6, 60, 0)
        );

        // A value pam_faillock refuses leaves the policy's.
        let conf = Root::new(Some("deny = many\n"))
            .lockouts(&appliance)
            .settings()
            .clone();
        assert_eq!(conf.deny, 6);
    }

    #[test]
    fn a_faillock_conf_pam_faillock_refuses_is_an_error() {
        let long = format!("# {}\n", "x".repeat(2000));
        let root = Root::new(Some(&long));
        let error =
            Lockouts::load(&root.paths(), &LockoutConfig::default(), "credsync").unwrap_err();
        assert!(matches!(error, LockoutError::Conf(_)), "{error:?}");
        assert!(error.to_string().contains("faillock.conf"), "{error}");
    }

    #[test]
    fn locks_after_the_configured_count_and_says_for_how_long() {
        let root = Root::new(None);
        let lockout = root.lockouts(&policy(3, 900, 1800)).user(&user("alice"));
        assert!(!lockout.record_failure(at(T0)).unwrap());
        assert!(!lockout.record_failure(at(T0 + 10)).unwrap());
        assert_eq!(lockout.locked(at(T0 + 20)).unwrap(), None);
        assert!(
            lockout.record_failure(at(T0 + 20)).unwrap(),
            "the third locks"
        );

        let locked = lockout.locked(at(T0 + 30)).unwrap().unwrap();
        assert_eq!(locked.failures, 3);
        assert_eq!(locked.lock, Lock::Until((T0 + 20 + 1800) as u64));
        assert_eq!(
            locked.to_string(),
            "the account is locked after 3 failed logins; try again in 30 minutes"
        );

        // The last minute, rounded up; and free again once the time is up.
        let locked = lockout.locked(at(T0 + 20 + 1800 - 59)).unwrap().unwrap();
        assert!(locked.to_string().ends_with("try again in 1 minute"));
        let locked = lockout.locked(at(T0 + 20 + 1800)).unwrap().unwrap();
        assert!(locked.to_string().ends_with("try again in 1 minute"));
        assert_eq!(lockout.locked(at(T0 + 20 + 1801)).unwrap(), None);
    }

    #[test]
    fn a_lock_without_end_waits_for_an_administrator() {
        let root = Root::new(Some("unlock_time = never\n"));
        let lockout = root.lockouts(&policy(2, 900, 1800)).user(&user("alice"));
        lockout.record_failure(at(T0)).unwrap();
        lockout.record_failure(at(T0 + 1)).unwrap();
        let locked = lockout.locked(at(T0 + 100_000)).unwrap().unwrap();
        assert_eq!(
            locked.to_string(),
            "the account is locked after 2 failed logins until an administrator recovers it"
        );
    }

    #[test]
    fn failures_while_locked_are_not_recorded() {
        let root = Root::new(None);
        let lockout = root.lockouts(&policy(2, 900, 1800)).user(&user("alice"));
        lockout.record_failure(at(T0)).unwrap();
        lockout.record_failure(at(T0 + 1)).unwrap();
        assert!(!lockout.record_failure(at(T0 + 2)).unwrap());
        assert_eq!(root.records("alice").len(), 2);
        let record = root.records("alice")[0];
        assert_eq!(record.source(), b"credsync");
        assert!(record.is_valid());
        assert_eq!(record.time(), T0 as u64);
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let root = Root::new(None);
        let lockout = root.lockouts(&policy(2, 60, 1800)).user(&user("alice"));
        lockout.record_failure(at(T0)).unwrap();
        assert!(!lockout.record_failure(at(T0 + 61)).unwrap());
        assert_eq!(lockout.locked(at(T0 + 62)).unwrap(), None);
        assert!(lockout.record_failure(at(T0 + 100)).unwrap());
    }

    #[test]
    fn success_clears_the_failures_but_not_a_lock() {
        let root = Root::new(None);
        let lockout = root.lockouts(&policy(3, 900, 1800)).user(&user("alice"));
        lockout.record_failure(at(T0)).unwrap();
        lockout.record_failure(at(T0 + 1)).unwrap();
        lockout.record_success(at(T0 + 2)).unwrap();
        assert_eq!(root.records("alice"), []);
        assert!(root.tally("alice").exists());
        for t in 3..6 {
            lockout.record_failure(at(T0 + t)).unwrap();
        }
        lockout.record_success(at(T0 + 6)).unwrap();
        assert_eq!(
            root.records("alice").len(),
            3,
            "a lock is cleared only by recover"
        );

        // No tally, none made.
        let bob = root.lockouts(&policy(3, 900, 1800)).user(&user("bob"));
        bob.record_success(at(T0)).unwrap();
        assert!(!root.tally("bob").exists());
    }

    #[test]
    fn root_is_counted_but_not_locked_unless_faillock_conf_says_so() {
        let root = Root::new(None);
        let lockout = root.lockouts(&policy(2, 900, 1800)).user(&user("root"));
        for t in 0..3 {
            lockout.record_failure(at(T0 + t)).unwrap();
        }
        assert_eq!(root.records("root").len(), 3);
        assert_eq!(lockout.locked(at(T0 + 3)).unwrap(), None);
        assert_eq!(lockout.assess(at(T0 + 3)).unwrap().unwrap().failures, 3);

        let strict = Root::new(Some("even_deny_root\nroot_unlock_time = 60\n"));
        let lockout = strict.lockouts(&policy(2, 900, 1800)).user(&user("root"));
        lockout.record_failure(at(T0)).unwrap();
        lockout.record_failure(at(T0 + 1)).unwrap();
        let locked = lockout.locked(at(T0 + 2)).unwrap().unwrap();
        assert_eq!(locked.lock, Lock::Until((T0 + 61) as u64));
    }

    #[test]
    fn admin_group_members_are_treated_like_root() {
        let root = Root::new(Some("admin_group = wheel\n"));
        let lockouts = root.lockouts(&policy(1, 900, 1800));
        let bob = lockouts.user(&user("bob"));
        bob.record_failure(at(T0)).unwrap();
        assert_eq!(bob.locked(at(T0 + 1)).unwrap(), None);
        let alice = lockouts.user(&user("alice"));
        alice.record_failure(at(T0)).unwrap();
        assert!(alice.locked(at(T0 + 1)).unwrap().is_some());
    }

    #[test]
    fn off_or_without_an_account_nothing_is_read_or_written() {
        let root = Root::new(None);
        let off = root.lockouts(&policy(0, 900, 1800));
        assert!(!off.is_on());
        let alice = off.user(&user("alice"));
        alice.record_failure(at(T0)).unwrap();
        alice.record_success(at(T0)).unwrap();
        assert_eq!(alice.assess(at(T0)).unwrap(), None);
        assert!(!root.dir.path().join("var").exists());

        // A tally that would be an error is never opened.
        fs::create_dir_all(root.tally("alice")).unwrap();
        assert_eq!(alice.locked(at(T0)).unwrap(), None);

        let on = root.lockouts(&policy(1, 900, 1800));
        let ghost = on.user(&user("ghost"));
        ghost.record_failure(at(T0)).unwrap();
        assert_eq!(ghost.locked(at(T0 + 1)).unwrap(), None);
        assert!(!root.tally("ghost").exists());
        // But faillock.conf turns it on even when the policy is off.
        let conf_on = Root::new(Some("deny=1\n"));
        let alice = conf_on.lockouts(&policy(0, 900, 1800)).user(&user("alice"));
        alice.record_failure(at(T0)).unwrap();
        assert!(alice.locked(at(T0 + 1)).unwrap().is_some());
    }

    #[test]
    fn an_unreadable_tally_is_an_error_not_an_open_door() {
        let root = Root::new(None);
        let alice = root.lockouts(&policy(3, 900, 1800)).user(&user("alice"));
        fs::create_dir_all(root.tally("alice")).unwrap();
        let error = alice.locked(at(T0)).unwrap_err();
        assert!(error.to_string().contains("failure tally"), "{error}");
        assert_eq!(Error::from(error).exit_code(), 3);
    }

    #[test]
    fn the_tally_directory_comes_from_faillock_conf_under_the_root() {
        let root = Root::new(Some("dir = /var/lib/faillock\n"));
        let alice = root.lockouts(&policy(3, 900, 1800)).user(&user("alice"));
        alice.record_failure(at(T0)).unwrap();
        let tally = root.dir.path().join("var/lib/faillock/alice");
        assert_eq!(fs::metadata(tally).unwrap().len(), 64);
    }

    #[test]
    fn a_timed_lock_shows_its_last_second() {
        assert_eq!(
            until_text(Lock::Until(T0 as u64 + 3661)),
            Some(("2026-11-26T01:01:01Z".to_owned(), T0 + 3661))
        );
        assert_eq!(until_text(Lock::UntilReset), None);
    }
}
