//! What credsync tells syslog: every change, recovery, adoption, restoration
//! and refusal, in fixed English text. Only validated names go in (they can't
//! hold control characters); never a password or a hash.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::system::linux_audit::{self, RecordType};
use crate::system::syslog::{self, Priority};
use std::fmt;

pub enum Event<'a> {
    Changed {
        user: &'a UserName,
        by: &'a str,
        how: &'static str,
        /// The login uid behind `by` (the human behind `sudo`).
        auid: Option<u32>,
    },
    Adopted {
        user: &'a UserName,
    },
    /// `passwd -d` in Linux: the record follows, and `verify` refuses.
    AdoptedNoPassword {
        user: &'a UserName,
    },
    /// `passwd -l` in Linux on the record's password: sessions end.
    LockFollowed {
        user: &'a UserName,
    },
    UnlockFollowed {
        user: &'a UserName,
    },
    /// `passwd -e` (or its undoing) in Linux on the record's password.
    MustChangeFollowed {
        user: &'a UserName,
        must_change: bool,
    },
    Restored {
        user: &'a UserName,
    },
    /// An interrupted change, finished by a later command: `by` and `how`
    /// are the interrupted change's own.
    Finished {
        user: &'a UserName,
        by: &'a str,
        how: &'static str,
    },
    Refused {
        user: &'a str,
        by: &'a str,
        why: &'a str,
    },
    VerifyFailed {
        user: &'a UserName,
        by: &'a str,
    },
    /// A call to the service (`credsyncd`) that verifies or changes a
    /// password: who asked (the application's account, its uid and pid, and
    /// the login uid of the human behind it) and what came of it.
    ServiceCall {
        method: &'a str,
        user: &'a str,
        by: &'a str,
        uid: u32,
        pid: i32,
        auid: Option<u32>,
        outcome: &'a str,
        refused: bool,
    },
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Changed {
                user,
                by,
                how,
                auid,
            } => {
                write!(
                    f,
                    "password for '{user}' changed by '{}' ({how}",
                    by.escape_default()
                )?;
                match auid {
                    Some(auid) => write!(f, "; login uid {auid})"),
                    None => write!(f, ")"),
                }
            }
            Event::Adopted { user } => write!(
                f,
                "password for '{user}' was changed outside credsync; the record adopted it"
            ),
            Event::AdoptedNoPassword { user } => write!(
                f,
                "password for '{user}' was removed in Linux; the record adopted an account without a password, which verify refuses"
            ),
            Event::LockFollowed { user } => write!(
                f,
                "account '{user}' was locked in Linux; the record follows and its application sessions end"
            ),
            Event::UnlockFollowed { user } => {
                write!(
                    f,
                    "account '{user}' was unlocked in Linux; the record follows"
                )
            }
            Event::MustChangeFollowed { user, must_change } => {
                if *must_change {
                    write!(
                        f,
                        "a password change for '{user}' was forced in Linux; the record follows"
                    )
                } else {
                    write!(
                        f,
                        "the forced password change for '{user}' was lifted in Linux; the record follows"
                    )
                }
            }
            Event::Restored { user } => write!(
                f,
                "password for '{user}' in /etc/shadow was older than the record; restored it"
            ),
            Event::Finished { user, by, how } => write!(
                f,
                "finished an interrupted password change for '{user}' made by '{}' ({how})",
                by.escape_default()
            ),
            Event::Refused { user, by, why } => write!(
                f,
                "refused password operation on '{}' by '{}': {why}",
                user.escape_default(),
                by.escape_default()
            ),
            Event::VerifyFailed { user, by } => {
                write!(
                    f,
                    "verify failed for '{user}' (asked by '{}')",
                    by.escape_default()
                )
            }
            Event::ServiceCall {
                method,
                user,
                by,
                uid,
                pid,
                auid,
                outcome,
                refused: _,
            } => {
                write!(
                    f,
                    "{method} for '{}' by '{}' (uid {uid}, pid {pid}, login uid ",
                    user.escape_default(),
                    by.escape_default()
                )?;
                match auid {
                    Some(auid) => write!(f, "{auid}")?,
                    None => write!(f, "unset")?,
                }
                write!(f, "): {outcome}")
            }
        }
    }
}

/// Tells syslog, and the Linux audit trail for what changes an account's
/// password or lock (as `passwd` and pam_unix tell it: `op=`, `acct=`,
/// `res=`).
pub fn log(event: Event<'_>) {
    let priority = match event {
        Event::Refused { .. }
        | Event::VerifyFailed { .. }
        | Event::AdoptedNoPassword { .. }
        | Event::ServiceCall { refused: true, .. } => Priority::Warning,
        _ => Priority::Notice,
    };
    syslog::log(priority, &event.to_string());
    if let Some((kind, op, user)) = event.audit_record() {
        linux_audit::send(kind, op, user.as_str(), true);
    }
}

/// A change that failed once begun: the audit trail hears `res=failed`.
pub fn log_failed_change(user: &UserName, how: &'static str) {
    linux_audit::send(
        RecordType::ChangedAuthToken,
        op_of(how),
        user.as_str(),
        false,
    );
}

/// The audit operation of a change made `how` (a `Source`'s name).
fn op_of(how: &str) -> &'static str {
    match how {
        "recover" => "recovered-password",
        "import" => "imported-password",
        "adopted" => "adopted-password",
        _ => "changed-password",
    }
}

impl Event<'_> {
    /// The audit record for this event, if it changed an account.
    fn audit_record(&self) -> Option<(RecordType, &'static str, &UserName)> {
        use RecordType::{AccountLocked, AccountUnlocked, ChangedAuthToken};
        Some(match self {
            // libpam has sent its own record for a change made through PAM.
            Event::Changed { how: "pam", .. } => return None,
            Event::Changed { user, how, .. } | Event::Finished { user, how, .. } => {
                (ChangedAuthToken, op_of(how), user)
            }
            Event::Adopted { user } | Event::AdoptedNoPassword { user } => {
                (ChangedAuthToken, "adopted-password", user)
            }
            Event::Restored { user } => (ChangedAuthToken, "restored-password", user),
            Event::LockFollowed { user } => (AccountLocked, "locked-password", user),
            Event::UnlockFollowed { user } => (AccountUnlocked, "unlocked-password", user),
            Event::MustChangeFollowed { .. }
            | Event::Refused { .. }
            | Event::VerifyFailed { .. }
            | Event::ServiceCall { .. } => {
                return None;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_shadow_utils_wording_and_escape_raw_text() {
        let alice = UserName::parse("alice").unwrap();
        let changed = Event::Changed {
            user: &alice,
            by: "root",
            how: "passwd",
            auid: None,
        };
        assert_eq!(
            changed.to_string(),
            "password for 'alice' changed by 'root' (passwd)"
        );
        let through_sudo = Event::Changed {
            user: &alice,
            by: "root",
            how: "recover",
            auid: Some(1000),
        };
        assert_eq!(
            through_sudo.to_string(),
            "password for 'alice' changed by 'root' (recover; login uid 1000)"
        );
        let refused = Event::Refused {
            user: "bob\nforged line",
            by: "alice",
            why: "not root",
        };
        assert!(!refused.to_string().contains('\n'));
    }
}
