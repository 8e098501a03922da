//! What credsync tells syslog: every change, recovery, adoption, restoration
//! and refusal, in fixed English text. Only validated names go in (they can't
//! hold control characters); never a password or a hash.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::system::syslog::{self, Priority};
use std::fmt;

pub enum Event<'a> {
    Changed {
        user: &'a UserName,
        by: &'a str,
        how: &'static str,
    },
    Adopted {
        user: &'a UserName,
    },
    Restored {
        user: &'a UserName,
    },
    Finished {
        user: &'a UserName,
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
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Changed { user, by, how } => {
                write!(
                    f,
                    "password for '{user}' changed by '{}' ({how})",
                    by.escape_default()
                )
            }
            Event::Adopted { user } => write!(
                f,
                "password for '{user}' was changed outside credsync; the record adopted it"
            ),
            Event::Restored { user } => write!(
                f,
                "password for '{user}' in /etc/shadow was older than the record; restored it"
            ),
            Event::Finished { user } => {
                write!(f, "finished an interrupted password change for '{user}'")
            }
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
        }
    }
}

pub fn log(event: Event<'_>) {
    let priority = match event {
        Event::Refused { .. } | Event::VerifyFailed { .. } => Priority::Warning,
        _ => Priority::Notice,
    };
    syslog::log(priority, &event.to_string());
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
        };
        assert_eq!(
            changed.to_string(),
            "password for 'alice' changed by 'root' (passwd)"
        );
        let refused = Event::Refused {
            user: "bob\nforged line",
            by: "alice",
            why: "not root",
        };
        assert!(!refused.to_string().contains('\n'));
    }
}
