//! The temporary a replaced file is written to first, made the way
//! shadow-utils and pam_pwhistory make theirs: a fixed name beside the file
//! (so a crash leaves nothing the next writer can't find), created with
//! `O_EXCL|O_NOFOLLOW` and mode 0600, then given the owner and mode it will
//! keep. Callers hold the password files' lock, so a temporary already there
//! is a crashed writer's and is removed first.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, fchown};
use std::path::{Path, PathBuf};

/// `path` with `suffix` appended to its file name: `/etc/shadow` + `.lock`.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates `temp` afresh with `owner` (uid, gid) and `mode` (permission bits
/// only). On failure, the step that failed and why; nothing is left behind.
pub(crate) fn create(
    temp: &Path,
    owner: (u32, u32),
    mode: u32,
) -> Result<File, (&'static str, io::Error)> {
    match std::fs::remove_file(temp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(("remove the leftover", e)),
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(temp)
        .map_err(|e| ("create", e))?;
    let given = fchown(&file, Some(owner.0), Some(owner.1))
        .map_err(|e| ("set the owner of", e))
        .and_then(|()| {
            file.set_permissions(Permissions::from_mode(mode & 0o777))
                .map_err(|e| ("set the mode of", e))
        });
    match given {
        Ok(()) => Ok(file),
        Err(failed) => {
            let _ = std::fs::remove_file(temp);
            Err(failed)
        }
    }
}
