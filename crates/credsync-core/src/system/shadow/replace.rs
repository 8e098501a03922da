//! Replacing `/etc/shadow` so that, whatever happens, the file is either the
//! old content or the new one, with the original's owner, mode and SELinux
//! label, and `/etc/shadow-` holds the previous content.
//!
//! The order is shadow-utils' (`commonio_close`), plus the directory fsync
//! neither shadow-utils nor pam_unix does: backup first, then the new file
//! written to a temporary in `/etc`, fsynced, renamed over the original.

use super::{RemoveOnDrop, ShadowError, ShadowFile, io_error};
use crate::fault;
use crate::system::fresh;
use crate::system::fresh::with_suffix;
use crate::system::signals;
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
use std::fs::{File, FileTimes, Metadata, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use xattr::FileExt;

const SELINUX_LABEL: &str = "security.selinux";

/// Writes `file` over `shadow`, keeping the content found there as
/// `shadow-`. The caller holds both locks.
///
/// Refuses (`Changed`) if the file on disk is no longer what `file` derives
/// from: another program wrote it without the locks, `file` was read before
/// they were taken, or `file` is a copy taken before an earlier write of ours.
/// Writing would silently undo that change.
pub(super) fn replace(shadow: &Path, file: &mut ShadowFile) -> Result<(), ShadowError> {
    let _signals = signals::Blocked::new();
    let _fsize = NoFileSizeLimit::new();

    let Current {
        content: current,
        meta,
        label,
    } = read_current(shadow)?;
    if current != file.base() {
        return Err(ShadowError::Changed {
            path: shadow.display().to_string(),
        });
    }
    let backup = with_suffix(shadow, "-");
    let times = FileTimes::new()
        .set_accessed(meta.accessed().map_err(|e| io_error("read", shadow, e))?)
        .set_modified(meta.modified().map_err(|e| io_error("read", shadow, e))?);
    write_then_rename(
        &with_suffix(&backup, "+"),
        &backup,
        &current,
        &meta,
        label.as_deref(),
        Some(times),
        BACKUP_STEPS,
    )?;
    let new = file.to_bytes();
    write_then_rename(
        &with_suffix(shadow, "+"),
        shadow,
        &new,
        &meta,
        label.as_deref(),
        None,
        SHADOW_STEPS,
    )?;
    file.written(new);
    // Makes both renames durable. Once the rename is done the change is made
    // and visible, so a failure here is not reported as a failed change.
    if let Some(dir) = shadow.parent() {
        let _ = File::open(dir).and_then(|d| d.sync_all());
    }
    fault::reached("directory-synced");
    Ok(())
}

/// Removes the temporaries (`shadow+`, `shadow-+`) a writer that crashed
/// left behind — ours or shadow-utils', which names its temporary `shadow+`
/// too. Only called with both locks held, so no live writer owns them. Best
/// effort: a temporary that can't be removed here makes the next write fail
/// with a clear error instead.
pub(super) fn remove_leftovers(shadow: &Path) {
    let backup = with_suffix(shadow, "-");
    for temp in [with_suffix(shadow, "+"), with_suffix(&backup, "+")] {
        let _ = std::fs::remove_file(temp);
    }
}

/// What `/etc/shadow` is now.
struct Current {
    content: Vec<u8>,
    meta: Metadata,
    /// The `security.selinux` attribute, if the file has one.
    label: Option<Vec<u8>>,
}

fn read_current(shadow: &Path) -> Result<Current, ShadowError> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(shadow)
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => ShadowError::Missing {
                path: shadow.display().to_string(),
            },
            _ => io_error("open", shadow, e),
        })?;
    let meta = file.metadata().map_err(|e| io_error("read", shadow, e))?;
    if !meta.is_file() {
        return Err(io_error(
            "read",
            shadow,
            std::io::Error::other("not a regular file"),
        ));
    }
    let mut content = Vec::new();
    file.read_to_end(&mut content)
        .map_err(|e| io_error("read", shadow, e))?;
    let label = match file.get_xattr(SELINUX_LABEL) {
        Ok(label) => label,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => None,
        Err(e) => return Err(io_error("read the SELinux label of", shadow, e)),
    };
    Ok(Current {
        content,
        meta,
        label,
    })
}

/// The fault points (see `crate::fault`) of one `write_then_rename`.
#[derive(Clone, Copy)]
struct Steps {
    written: &'static str,
    synced: &'static str,
    renamed: &'static str,
}

const BACKUP_STEPS: Steps = Steps {
    written: "backup-written",
    synced: "backup-synced",
    renamed: "backup-renamed",
};

const SHADOW_STEPS: Steps = Steps {
    written: "shadow-temp-written",
    synced: "shadow-temp-synced",
    renamed: "shadow-renamed",
};

/// Writes `bytes` to `temp` (created fresh, owner, mode and label copied from
/// `like`), fsyncs it and renames it to `target`. On any failure `temp` is
/// removed and `target` is untouched.
fn write_then_rename(
    temp: &Path,
    target: &Path,
    bytes: &[u8],
    like: &Metadata,
    label: Option<&[u8]>,
    times: Option<FileTimes>,
    steps: Steps,
) -> Result<(), ShadowError> {
    let mut file = fresh::create(temp, (like.uid(), like.gid()), like.mode())
        .map_err(|(action, e)| io_error(action, temp, e))?;
    let mut remove = RemoveOnDrop::new(temp);
    let error = |action| move |e| io_error(action, temp, e);
    if let Some(label) = label {
        file.set_xattr(SELINUX_LABEL, label)
            .map_err(error("set the SELinux label of"))?;
    }
    file.write_all(bytes).map_err(error("write"))?;
    if let Some(times) = times {
        file.set_times(times).map_err(error("set the times of"))?;
    }
    fault::reached(steps.written);
    file.sync_all().map_err(error("write"))?;
    drop(file);
    fault::reached(steps.synced);
    std::fs::rename(temp, target).map_err(|e| io_error("replace", target, e))?;
    remove.disarm();
    fault::reached(steps.renamed);
    Ok(())
}

/// Lifts `RLIMIT_FSIZE` so that `ulimit -f` can't truncate the new file;
/// restores it on drop. Raising the hard limit needs root; failing to is not
/// fatal (an oversized write then fails with EFBIG and nothing is replaced).
struct NoFileSizeLimit {
    previous: Option<(libc::rlim_t, libc::rlim_t)>,
}

impl NoFileSizeLimit {
    fn new() -> Self {
        let previous = match getrlimit(Resource::RLIMIT_FSIZE) {
            Ok((soft, hard)) if soft != RLIM_INFINITY || hard != RLIM_INFINITY => {
                let raised = setrlimit(Resource::RLIMIT_FSIZE, RLIM_INFINITY, RLIM_INFINITY)
                    .or_else(|_| setrlimit(Resource::RLIMIT_FSIZE, hard, hard));
                raised.ok().map(|()| (soft, hard))
            }
            _ => None,
        };
        NoFileSizeLimit { previous }
    }
}

impl Drop for NoFileSizeLimit {
    fn drop(&mut self) {
        if let Some((soft, hard)) = self.previous {
            let _ = setrlimit(Resource::RLIMIT_FSIZE, soft, hard);
        }
    }
}

/// Tells nscd and sssd that users changed, as shadow-utils does after writing
/// and unlocking (`nscd -i passwd`; nscd keeps no shadow cache, shadow
/// lookups go through the passwd one) with an empty environment. Missing
/// tools and failures are ignored: the caches expire on their own. Each tool
/// gets [`CACHE_FLUSH_WAIT`]; one that takes longer (nscd stopped half-way,
/// sssd hung) is killed, so a change never waits on a cache daemon.
pub(super) fn flush_caches() {
    for (program, args) in [
        ("/usr/sbin/nscd", &["-i", "passwd"][..]),
        ("/usr/sbin/sss_cache", &["-U"][..]),
    ] {
        if !Path::new(program).exists() {
            continue;
        }
        let Ok(mut child) = Command::new(program)
            .args(args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        else {
            continue;
        };
        let deadline = std::time::Instant::now() + CACHE_FLUSH_WAIT;
        while matches!(child.try_wait(), Ok(None)) {
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// How long a cache flush may take before its tool is killed.
pub const CACHE_FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
