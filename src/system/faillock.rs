//! pam_faillock's failure tally: recovery clears it as `faillock --reset` does,
//! by truncating the user's tally file in the directory faillock.conf names.
#![forbid(unsafe_code)]

use super::Paths;
use crate::account::UserName;
use std::io::ErrorKind;
use std::path::PathBuf;

/// The user's tally file: `dir` from faillock.conf (taken under the root), else
/// pam_faillock's default `/var/run/faillock`.
pub fn tally_path(paths: &Paths, user: &UserName) -> PathBuf {
    let configured = std::fs::read_to_string(paths.faillock_conf())
        .ok()
        .and_then(|text| configured_dir(&text));
    let dir = match configured {
        Some(dir) => paths.under_root(&dir),
        None => paths.faillock_dir(),
    };
    dir.join(user.as_str())
}

fn configured_dir(conf: &str) -> Option<String> {
    conf.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| key.trim() == "dir")
        .map(|(_, value)| value.trim().to_owned())
        .next_back()
}

/// Clears the tally. A missing file means there is nothing to clear.
pub fn reset(paths: &Paths, user: &UserName) -> std::io::Result<()> {
    let path = tally_path(paths, user);
    match std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_dir_setting_last_one_wins() {
        assert_eq!(configured_dir("# dir = /x\n"), None);
        assert_eq!(
            configured_dir("deny = 3\ndir = /a\ndir=/b # c\n").as_deref(),
            Some("/b")
        );
    }

    #[test]
    fn reset_truncates_the_tally_and_tolerates_none() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::under(tmp.path());
        let admin = UserName::parse("admin").unwrap();
        reset(&paths, &admin).unwrap();
        let tally = tally_path(&paths, &admin);
        assert_eq!(tally, tmp.path().join("var/run/faillock/admin"));
        std::fs::create_dir_all(tally.parent().unwrap()).unwrap();
        std::fs::write(&tally, [1u8; 64]).unwrap();
        reset(&paths, &admin).unwrap();
        assert_eq!(std::fs::metadata(&tally).unwrap().len(), 0);
    }

    #[test]
    fn honours_faillock_conf_under_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::under(tmp.path());
        std::fs::create_dir_all(tmp.path().join("etc/security")).unwrap();
        std::fs::write(paths.faillock_conf(), "dir = /var/lib/faillock\n").unwrap();
        let admin = UserName::parse("admin").unwrap();
        assert_eq!(
            tally_path(&paths, &admin),
            tmp.path().join("var/lib/faillock/admin")
        );
    }
}
