//! Sessions, held here only: the browser's cookie carries a random id of 256
//! bits, never a name or a token the browser could forge. Every session has
//! its own CSRF token, the one every form must send back. There is no
//! session before login: the login form's token is a cookie of its own
//! (`pages`), so that no number of visitors can push anyone's form out.
//!
//! A session ends when its user's password changes, whoever changed it.
//! It remembers the session epoch its user had when the login began, before
//! the password was checked; `Revocations` (fed by credsyncd's `Monitor`
//! stream) knows each user's current epoch, and when a change of
//! /etc/shadow behind credsync's back was last heard of.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sessions held at most; the least recently used is dropped for a new one.
pub const MAX_SESSIONS: usize = 16384;

/// A random id or token, as lowercase hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the kernel's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `text` has the shape of `random_token`'s output.
pub fn is_token(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Compares without stopping at the first difference.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Where a login began: taken before the password is checked, so that a
/// change landing during the check revokes the session it opens.
#[derive(Debug, Clone, Copy)]
pub struct LoginStart {
    pub epoch: i64,
    pub at: Instant,
}

#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub start: LoginStart,
    /// Verify said the password must be changed (or has expired): the change
    /// form is the only page.
    pub must_change: bool,
}

#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub login: Login,
    last_seen: Instant,
    created: Instant,
}

/// What is known of each user's changes.
#[derive(Default)]
pub struct Revocations {
    users: Mutex<HashMap<String, Revoked>>,
}

#[derive(Clone, Copy)]
struct Revoked {
    /// The user's current epoch: a session opened under another one ends
    /// (an older one after a change; a newer one after the store was restored).
    epoch: i64,
    /// When a change of /etc/shadow made without credsync was heard of (its
    /// epoch moves only once `credsync sync` adopts it): sessions whose login
    /// began before it end. Monotonic, so no clock step can move it.
    linux_change: Option<Instant>,
}

impl Revocations {
    /// The stream's word (or the service's answer): `user`'s epoch now.
    /// `source` "linux" is a change of shadow behind credsync's back.
    pub fn heard(&self, user: &str, epoch: i64, source: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let entry = users.entry(user.to_owned()).or_insert(Revoked {
            epoch,
            linux_change: None,
        });
        entry.epoch = epoch;
        if source == "linux" {
            entry.linux_change = Some(Instant::now());
        }
    }

    /// A change made through this page: its epoch, at least, is current
    /// (the stream may not have said so yet).
    pub fn changed(&self, user: &str, epoch: i64) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let entry = users.entry(user.to_owned()).or_insert(Revoked {
            epoch,
            linux_change: None,
        });
        entry.epoch = entry.epoch.max(epoch);
    }

    /// Whether `login` still stands, by what has been heard.
    pub fn stands(&self, login: &Login) -> bool {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        match users.get(&login.user) {
            None => true,
            Some(revoked) => {
                login.start.epoch == revoked.epoch
                    && revoked
                        .linux_change
                        .is_none_or(|heard| login.start.at > heard)
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

    fn expired(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_seen) > self.idle
            || now.duration_since(session.created) > self.max
    }

    /// The session behind a cookie's id, if it has not timed out; touching it.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        let now = Instant::now();
        let session = map.get_mut(id)?;
        if self.expired(session, now) {
            map.remove(id);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// A new session for `login`, under a new id: its id and CSRF token.
    pub fn log_in(&self, login: Login) -> (String, String) {
        let mut map = self.lock();
        let now = Instant::now();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| !self.expired(s, now));
        }
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(id, _)| id.clone())
        {
            map.remove(&oldest);
        }
        let (id, csrf) = (random_token(), random_token());
        map.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                login,
                last_seen: now,
                created: now,
            },
        );
        (id, csrf)
    }

    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }

    /// How many sessions are held.
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

    fn login(user: &str, epoch: i64) -> Login {
        Login {
            user: user.to_owned(),
            start: LoginStart {
                epoch,
                at: Instant::now(),
            },
            must_change: false,
        }
    }

    #[test]
    fn ids_and_tokens_are_256_random_bits() {
        let a = random_token();
        assert!(is_token(&a));
        assert_ne!(a, random_token());
        assert!(!is_token("ABC"));
        assert!(!is_token(&"g".repeat(64)));
    }

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert!(!same_token("", "a"));
    }

    #[test]
    fn every_login_gets_a_new_id_and_token() {
        let sessions = sessions();
        let (a, token_a) = sessions.log_in(login("alice", 1));
        let (b, token_b) = sessions.log_in(login("alice", 1));
        assert_ne!(a, b);
        assert_ne!(token_a, token_b);
        assert_eq!(sessions.get(&a).unwrap().csrf, token_a);
    }

    #[test]
    fn another_epoch_revokes_a_login_in_either_direction() {
        let revocations = Revocations::default();
        let alice = login("alice", 3);
        assert!(revocations.stands(&alice), "nothing heard yet");
        revocations.heard("alice", 3, "api");
        revocations.heard("bob", 9, "api");
        assert!(revocations.stands(&alice));
        revocations.heard("alice", 4, "passwd");
        assert!(!revocations.stands(&alice));
        // A store restored from a backup: the epoch goes back, and a login
        // under it stands again, rather than failing for ever.
        revocations.heard("alice", 1, "recover");
        assert!(revocations.stands(&login("alice", 1)));
    }

    #[test]
    fn a_change_during_a_login_revokes_it() {
        let revocations = Revocations::default();
        revocations.heard("alice", 3, "api");
        // The login began under epoch 3; the change landed before it ended.
        let during = login("alice", 3);
        revocations.changed("alice", 4);
        assert!(!revocations.stands(&during));
        // The page's own change never lowers what the stream said.
        revocations.heard("alice", 6, "api");
        revocations.changed("alice", 5);
        assert!(revocations.stands(&login("alice", 6)));
    }

    #[test]
    fn a_linux_change_revokes_logins_begun_before_it_was_heard() {
        let revocations = Revocations::default();
        let before = login("alice", 2);
        std::thread::sleep(Duration::from_millis(2));
        revocations.heard("alice", 2, "linux");
        assert!(!revocations.stands(&before));
        std::thread::sleep(Duration::from_millis(2));
        assert!(revocations.stands(&login("alice", 2)), "a login after it");
    }

    #[test]
    fn idle_sessions_end() {
        let sessions = Sessions::new(Duration::from_millis(1), Duration::from_secs(60));
        let (id, _) = sessions.log_in(login("alice", 1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn sessions_are_capped_dropping_the_least_recently_used() {
        let sessions = sessions();
        let (first, _) = sessions.log_in(login("alice", 1));
        let (second, _) = sessions.log_in(login("bob", 1));
        sessions.get(&first);
        for _ in 0..MAX_SESSIONS - 1 {
            sessions.log_in(login("mallory", 1));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(
            sessions.get(&second).is_none(),
            "the least recently used stayed"
        );
    }
}
