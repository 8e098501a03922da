//! Who is on the other end of a connection, as the kernel vouches for it
//! (`SO_PEERCRED` at `connect()`), and what that peer may ask.
//!
//! The peer's groups come from the group database under the root, read at
//! each call — not from `SO_PEERGROUPS`: the `[api] groups` rule then means
//! exactly what the command line's `[verify] groups` means, it works under
//! `--root` where the fixture's groups are not the host's, and taking an
//! account out of the group takes effect at its next call rather than when
//! the application reconnects.
#![forbid(unsafe_code)]

use crate::interface::Refusal;
use credsync_core::access::Caller;
use credsync_core::account::UserName;
use credsync_core::config::Config;
use credsync_core::system::Paths;
use tokio::net::UnixStream;

/// The process that connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub pid: i32,
    /// `/proc/PID/loginuid` when it connected: the human behind the
    /// application's request, for the logs and the record.
    pub login_uid: Option<u32>,
}

impl Peer {
    pub fn of(stream: &UnixStream) -> std::io::Result<Peer> {
        let cred = stream.peer_cred()?;
        let pid = cred.pid().unwrap_or(0);
        Ok(Peer {
            uid: cred.uid(),
            pid,
            login_uid: login_uid(pid),
        })
    }
}

fn login_uid(pid: i32) -> Option<u32> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/loginuid")).ok()?;
    match text.trim().parse::<u32>() {
        Ok(u32::MAX) | Err(_) => None,
        Ok(uid) => Some(uid),
    }
}

/// What the peer may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// uid 0: every method, for any account.
    Root,
    /// A member of `[api] groups`: `Verify`, `ChangePassword`, `GetStatus`
    /// and `Monitor` for any managed account.
    Application(UserName),
    /// Anyone else: their own account only.
    User(UserName),
}

impl Role {
    /// The peer's role under the files and settings in force.
    pub fn of(peer: &Peer, paths: &Paths, config: &Config) -> Result<Role, Refusal> {
        if peer.uid == 0 {
            return Ok(Role::Root);
        }
        let caller = Caller::identify(paths, peer.uid).map_err(|e| {
            Refusal::permission_denied(&format!("who is calling can't be established: {e}"))
        })?;
        if caller.groups.iter().any(|g| config.api.groups.contains(g)) {
            Ok(Role::Application(caller.name))
        } else {
            Ok(Role::User(caller.name))
        }
    }

    /// The name the logs and the record give the caller.
    pub fn name(&self) -> &str {
        match self {
            Role::Root => "root",
            Role::Application(name) | Role::User(name) => name.as_str(),
        }
    }

    /// May the caller see and act on `user`, who is (or isn't) `managed`?
    /// `SetPassword` is checked apart: root's alone.
    pub fn may_act_for(&self, user: &UserName, managed: bool) -> Result<(), Refusal> {
        match self {
            Role::Root => Ok(()),
            Role::User(me) if me == user => Ok(()),
            Role::User(_) => Err(Refusal::permission_denied(
                "you may act only for your own account",
            )),
            Role::Application(_) if managed => Ok(()),
            Role::Application(_) => Err(Refusal::permission_denied(&format!(
                "'{user}' is not managed by credsync; an application may act only for managed accounts"
            ))),
        }
    }

    /// Does the caller see every managed account (`GetStatus`, `Monitor`)?
    pub fn sees_everyone(&self) -> bool {
        matches!(self, Role::Root | Role::Application(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> UserName {
        UserName::parse(n).unwrap()
    }

    #[test]
    fn each_role_acts_for_whom_it_may() {
        let (alice, bob) = (name("alice"), name("bob"));
        assert!(Role::Root.may_act_for(&bob, false).is_ok());
        let user = Role::User(alice.clone());
        assert!(user.may_act_for(&alice, true).is_ok());
        assert!(user.may_act_for(&bob, true).is_err());
        assert!(!user.sees_everyone());
        let app = Role::Application(name("appsvc"));
        assert!(app.may_act_for(&bob, true).is_ok());
        let refusal = app.may_act_for(&bob, false).unwrap_err();
        assert_eq!(refusal.name, "io.credsync.Credentials.PermissionDenied");
        assert!(app.sees_everyone());
    }

    #[test]
    fn roles_come_from_the_files_under_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "appsvc:x:998:998::/:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("etc/group"),
            "appsvc:x:998:\nalice:x:1000:\n",
        )
        .unwrap();
        let paths = Paths::under(tmp.path());
        let mut config = Config::default();
        config.api.groups = vec!["appsvc".into()];
        let peer = |uid| Peer {
            uid,
            pid: 1,
            login_uid: None,
        };
        assert_eq!(Role::of(&peer(0), &paths, &config).unwrap(), Role::Root);
        assert_eq!(
            Role::of(&peer(998), &paths, &config).unwrap(),
            Role::Application(name("appsvc"))
        );
        assert_eq!(
            Role::of(&peer(1000), &paths, &config).unwrap(),
            Role::User(name("alice"))
        );
        assert!(Role::of(&peer(4242), &paths, &config).is_err());
    }
}
