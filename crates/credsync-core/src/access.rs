//! Who is asking, and what they may do. The rules: root may do everything; an
//! ordinary user may change, see and verify only their own account, except that
//! members of the configured verify groups (the application's service account)
//! may verify anyone. Every refusal is logged.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::audit::{self, Event};
use crate::error::Error;
use crate::system::passwd::{read_group, read_passwd};
use crate::system::{Paths, linux_audit};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: UserName,
    pub uid: u32,
    /// Names of every group the caller belongs to (primary and supplementary).
    pub groups: Vec<String>,
    /// The login uid of the human behind the call (`sudo` keeps it), for the
    /// record's provenance and the logs; `None` when the session has none.
    pub login_uid: Option<u32>,
}

impl Caller {
    /// The account whose uid is the real uid, looked up in the files under the
    /// root (NSS would not see an alternate root).
    pub fn identify(paths: &Paths, real_uid: u32) -> Result<Caller, Error> {
        let passwd = read_passwd(&paths.passwd()).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::FileMissing(paths.passwd().display().to_string())
            }
            _ => Error::Failure(format!("cannot read {}: {e}", paths.passwd().display())),
        })?;
        let entry = passwd
            .into_iter()
            .find(|p| p.uid == real_uid)
            .ok_or_else(|| {
                Error::Denied(format!(
                    "you (uid {real_uid}) have no entry in {}",
                    paths.passwd().display()
                ))
            })?;
        let name = UserName::parse(&entry.name).map_err(|_| {
            Error::Denied(format!(
                "your account name (uid {real_uid}) is not a valid user name"
            ))
        })?;
        let groups = read_group(&paths.group())
            .unwrap_or_default()
            .into_iter()
            .filter(|g| g.gid == entry.gid || g.members.iter().any(|m| m == name.as_str()))
            .map(|g| g.name)
            .collect();
        Ok(Caller {
            name,
            uid: real_uid,
            groups,
            login_uid: linux_audit::login_uid(),
        })
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Changing, or seeing the status of, `target`.
    pub fn may_manage(&self, target: &UserName) -> bool {
        self.is_root() || &self.name == target
    }

    pub fn may_verify(&self, target: &UserName, verify_groups: &[String]) -> bool {
        self.may_manage(target) || self.groups.iter().any(|g| verify_groups.contains(g))
    }

    /// Refuses an operation on `target`, logging it.
    pub fn refuse(&self, target: &str, why: &str) -> Error {
        audit::log(Event::Refused {
            user: target,
            by: self.name.as_str(),
            why,
        });
        Error::Denied(why.to_owned())
    }

    pub fn require_root(&self, what: &str) -> Result<(), Error> {
        if self.is_root() {
            Ok(())
        } else {
            Err(self.refuse("*", &format!("only root may {what}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(name: &str, uid: u32, groups: &[&str]) -> Caller {
        Caller {
            name: UserName::parse(name).unwrap(),
            uid,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            login_uid: None,
        }
    }

    #[test]
    fn ordinary_users_manage_only_themselves() {
        let alice = caller("alice", 1000, &["alice"]);
        assert!(alice.may_manage(&UserName::parse("alice").unwrap()));
        assert!(!alice.may_manage(&UserName::parse("bob").unwrap()));
        assert!(alice.require_root("recover").is_err());
        assert!(caller("root", 0, &[]).may_manage(&UserName::parse("bob").unwrap()));
    }

    #[test]
    fn verify_groups_may_verify_anyone() {
        let app = caller("appsvc", 998, &["appsvc"]);
        let bob = UserName::parse("bob").unwrap();
        assert!(!app.may_verify(&bob, &[]));
        assert!(app.may_verify(&bob, &["appsvc".to_owned()]));
    }

    #[test]
    fn identifies_the_caller_from_the_files_under_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("etc/group"),
            "alice:x:1000:\nappsvc:x:998:alice\n",
        )
        .unwrap();
        let paths = Paths::under(tmp.path());
        let alice = Caller::identify(&paths, 1000).unwrap();
        assert_eq!(alice.name.as_str(), "alice");
        assert_eq!(alice.groups, vec!["alice", "appsvc"]);
        assert!(Caller::identify(&paths, 4242).is_err());
    }
}
