//! Sessions, held here only: the browser's cookie carries a random id of 256
//! bits, never a name or a token the browser could forge. Every session has
//! its own CSRF token, the one every form must send back.
//!
//! A session before login (the login form's, for its CSRF token) is
//! anonymous; logging in replaces it with a new id. A logged-in session ends
//! when its user's password changes, whoever changed it: it remembers the
//! session epoch it was opened under, and `Revocations` (fed by credsyncd's
//! `Monitor` stream) knows each user's newest epoch and the last time their
//! password was changed in /etc/shadow behind credsync's back.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Anonymous sessions kept at most; the oldest is dropped for a new one.
const MAX_ANONYMOUS: usize = 4096;
/// An anonymous session (a login form left open) lasts this long.
const ANONYMOUS_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// A random id or token, as lowercase hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the kernel's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without stopping at the first difference.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    /// The epoch the session was opened under.
    pub epoch: i64,
    /// Verify said the password must be changed (or has expired): the change
    /// form is the only page.
    pub must_change: bool,
    pub at_unix: i64,
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub login: Option<Login>,
    last_seen: Instant,
    created: Instant,
}

/// What is known of each user's changes, from the service's events.
#[derive(Default)]
pub struct Revocations {
    users: Mutex<HashMap<String, Revoked>>,
}

#[derive(Default, Clone, Copy)]
struct Revoked {
    epoch: i64,
    /// The last change made in /etc/shadow without credsync (its epoch moves
    /// only when `credsync sync` adopts it): sessions opened at or before it end.
    linux_change_unix: i64,
}

impl Revocations {
    /// One event: `source` "linux" is a change of shadow behind credsync.
    pub fn heard(&self, user: &str, epoch: i64, source: &str, changed_at: i64) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let entry = users.entry(user.to_owned()).or_default();
        entry.epoch = entry.epoch.max(epoch);
        if source == "linux" {
            entry.linux_change_unix = entry.linux_change_unix.max(changed_at);
        }
    }

    /// Whether `login` still stands, by what has been heard.
    pub fn stands(&self, login: &Login) -> bool {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        match users.get(&login.user) {
            None => true,
            Some(revoked) => {
                login.epoch >= revoked.epoch && login.at_unix > revoked.linux_change_unix
            }
        }
    }
}

pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
    max: Duration,
}

impl Sessions {
    pub fn new(idle: Duration, max: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            idle,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session behind a cookie's id, if it has not timed out; touching it.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        let now = Instant::now();
        let session = map.get_mut(id)?;
        let lifetime = if session.login.is_some() {
            self.max
        } else {
            ANONYMOUS_LIFETIME
        };
        if now.duration_since(session.last_seen) > self.idle
            || now.duration_since(session.created) > lifetime
        {
            map.remove(id);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// A new anonymous session (for the login form); its id.
    pub fn anonymous(&self) -> (String, Session) {
        let mut map = self.lock();
        let anonymous = map.values().filter(|s| s.login.is_none()).count();
        if anonymous >= MAX_ANONYMOUS {
            self.sweep(&mut map);
            if let Some(oldest) = map
                .iter()
                .filter(|(_, s)| s.login.is_none())
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(id, _)| id.clone())
            {
                map.remove(&oldest);
            }
        }
        let now = Instant::now();
        let session = Session {
            csrf: random_token(),
            login: None,
            last_seen: now,
            created: now,
        };
        let id = random_token();
        map.insert(id.clone(), session.clone());
        (id, session)
    }

    /// Logs in: the old id is dropped and a new one made (no fixation).
    pub fn log_in(&self, old_id: &str, user: &str, epoch: i64, must_change: bool) -> String {
        let mut map = self.lock();
        map.remove(old_id);
        self.sweep(&mut map);
        let now = Instant::now();
        let id = random_token();
        map.insert(
            id.clone(),
            Session {
                csrf: random_token(),
                login: Some(Login {
                    user: user.to_owned(),
                    epoch,
                    must_change,
                    at_unix: unix_now(),
                    at: now,
                }),
                last_seen: now,
                created: now,
            },
        );
        id
    }

    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Drops the sessions that have timed out.
    fn sweep(&self, map: &mut HashMap<String, Session>) {
        let now = Instant::now();
        map.retain(|_, s| {
            let lifetime = if s.login.is_some() {
                self.max
            } else {
                ANONYMOUS_LIFETIME
            };
            now.duration_since(s.last_seen) <= self.idle
                && now.duration_since(s.created) <= lifetime
        });
    }

    /// How many sessions are held (for the tests of the caps).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::new(Duration::from_secs(900), Duration::from_secs(8 * 3600))
    }

    #[test]
    fn ids_and_tokens_are_256_random_bits() {
        let a = random_token();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_token());
    }

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert!(!same_token("", "a"));
    }

    #[test]
    fn logging_in_renews_the_id_and_the_token() {
        let sessions = sessions();
        let (before, anonymous) = sessions.anonymous();
        let after = sessions.log_in(&before, "alice", 3, false);
        assert_ne!(before, after);
        assert!(
            sessions.get(&before).is_none(),
            "the pre-login id still works"
        );
        let session = sessions.get(&after).unwrap();
        assert_ne!(session.csrf, anonymous.csrf);
        assert_eq!(session.login.unwrap().user, "alice");
    }

    #[test]
    fn a_newer_epoch_or_a_later_linux_change_revokes_a_login() {
        let sessions = sessions();
        let id = sessions.log_in("", "alice", 3, false);
        let login = sessions.get(&id).unwrap().login.unwrap();
        let revocations = Revocations::default();
        revocations.heard("alice", 3, "api", 0);
        revocations.heard("bob", 9, "api", 0);
        assert!(revocations.stands(&login));
        revocations.heard("alice", 4, "passwd", 0);
        assert!(!revocations.stands(&login));

        let id = sessions.log_in("", "alice", 4, false);
        let login = sessions.get(&id).unwrap().login.unwrap();
        assert!(revocations.stands(&login));
        revocations.heard("alice", 4, "linux", login.at_unix);
        assert!(
            !revocations.stands(&login),
            "a Linux change in the login's second revokes it"
        );
    }

    #[test]
    fn idle_sessions_end() {
        let sessions = Sessions::new(Duration::from_millis(1), Duration::from_secs(60));
        let id = sessions.log_in("", "alice", 1, false);
        std::thread::sleep(Duration::from_millis(5));
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn anonymous_sessions_are_capped() {
        let sessions = sessions();
        let kept = sessions.log_in("", "alice", 1, false);
        for _ in 0..MAX_ANONYMOUS + 10 {
            sessions.anonymous();
        }
        assert_eq!(sessions.len(), MAX_ANONYMOUS + 1);
        assert!(
            sessions.get(&kept).is_some(),
            "a logged-in session was dropped for anonymous ones"
        );
    }
}
