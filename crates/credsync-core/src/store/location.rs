//! Where the store lives and who may own it. The directory is 0700 and the file
//! 0600, owned by the effective user (root, or the `--root` caller); anything
//! else — a symlink, a FIFO, a foreign owner, a directory others may write, a
//! file others may read or write — is refused rather than used, because the
//! file holds shadow-equivalent hashes.
#![forbid(unsafe_code)]

use super::StoreError;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const DB_FILE: &str = "credsync.db";

/// Makes sure the directory and database file exist with safe ownership and
/// modes, creating them (0700 / 0600) on first use. Returns the database path.
pub fn prepare(dir: &Path, owner: u32) -> Result<PathBuf, StoreError> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                fs::create_dir_all(parent).map_err(|e| io_error("create", parent, e))?;
            }
            DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .map_err(|e| io_error("create", dir, e))?;
        }
        Err(e) => return Err(io_error("inspect", dir, e)),
        Ok(meta) => check(dir, &meta, owner, true)?,
    }

    let db = dir.join(DB_FILE);
    match fs::symlink_metadata(&db) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&db)
                .map_err(|e| io_error("create", &db, e))?;
        }
        Err(e) => return Err(io_error("inspect", &db, e)),
        Ok(meta) => check(&db, &meta, owner, false)?,
    }
    Ok(db)
}

/// The database path if the store exists (checked as `prepare` checks it);
/// `None` if it was never created. Creates nothing.
pub fn existing(dir: &Path, owner: u32) -> Result<Option<PathBuf>, StoreError> {
    let db = dir.join(DB_FILE);
    for (path, want_dir) in [(dir, true), (db.as_path(), false)] {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("inspect", path, e)),
            Ok(meta) => check(path, &meta, owner, want_dir)?,
        }
    }
    Ok(Some(db))
}

fn check(path: &Path, meta: &fs::Metadata, owner: u32, want_dir: bool) -> Result<(), StoreError> {
    // The directory may be listable; the file must be private.
    let forbidden = if want_dir { 0o022 } else { 0o077 };
    let kind = meta.file_type();
    let problem = if kind.is_symlink() {
        Some("is a symbolic link".to_owned())
    } else if want_dir && !kind.is_dir() {
        Some("is not a directory".to_owned())
    } else if !want_dir && !kind.is_file() {
        Some("is not a regular file".to_owned())
    } else if meta.uid() != owner {
        Some(format!(
            "is owned by uid {} instead of uid {owner}",
            meta.uid()
        ))
    } else if meta.mode() & forbidden != 0 {
        Some(format!(
            "is open to other users (mode {:04o})",
            meta.mode() & 0o7777
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(StoreError::Unsafe {
            path: path.display().to_string(),
            problem,
        }),
        None => Ok(()),
    }
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        action,
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }

    #[test]
    fn creates_directory_0700_and_file_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("var/lib/credsync");
        let db = prepare(&dir, me()).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
        assert_eq!(fs::metadata(&db).unwrap().mode() & 0o7777, 0o600);
        // A second run accepts what the first created.
        assert_eq!(prepare(&dir, me()).unwrap(), db);
    }

    #[test]
    fn refuses_a_symlinked_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o700)).unwrap();
        let link = tmp.path().join("credsync");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = prepare(&link, me()).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn refuses_a_world_writable_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("credsync");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let err = prepare(&dir, me()).unwrap_err();
        assert!(err.to_string().contains("open to other users"), "{err}");
    }

    #[test]
    fn refuses_a_database_others_may_read() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("credsync");
        let db = prepare(&dir, me()).unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        let err = prepare(&dir, me()).unwrap_err();
        assert!(err.to_string().contains("open to other users"), "{err}");
        assert!(existing(&dir, me()).is_err());
    }

    #[test]
    fn existing_creates_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("credsync");
        assert_eq!(existing(&dir, me()).unwrap(), None);
        assert!(!dir.exists());
        let db = prepare(&dir, me()).unwrap();
        assert_eq!(existing(&dir, me()).unwrap(), Some(db));
    }

    #[test]
    fn refuses_a_directory_owned_by_someone_else() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("credsync");
        DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let err = prepare(&dir, me() + 1).unwrap_err();
        assert!(err.to_string().contains("owned by uid"), "{err}");
    }

    #[test]
    fn refuses_a_database_that_is_a_symlink_or_fifo() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("credsync");
        DirBuilder::new().mode(0o700).create(&dir).unwrap();
        std::os::unix::fs::symlink("/dev/null", dir.join(DB_FILE)).unwrap();
        assert!(
            prepare(&dir, me())
                .unwrap_err()
                .to_string()
                .contains("symbolic link")
        );
        fs::remove_file(dir.join(DB_FILE)).unwrap();
        nix::unistd::mkfifo(
            &dir.join(DB_FILE),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert!(
            prepare(&dir, me())
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
    }
}
