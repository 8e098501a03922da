//! The listening socket: the one systemd passes (`LISTEN_FDS`, sd_listen_fds(3)
//! with `Accept=no`), or one bound here. The only unsafe code of the service
//! is taking over descriptor 3 from systemd.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;

/// sd_listen_fds(3): the first passed descriptor.
const SD_LISTEN_FDS_START: i32 = 3;

/// The socket systemd passed to this process, if any.
pub fn passed() -> Result<Option<UnixListener>, String> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    if !for_us || count < 1 {
        return Ok(None);
    }
    if count > 1 {
        return Err(format!(
            "systemd passed {count} sockets; credsyncd serves one (ListenStream= once)"
        ));
    }
    let fd = SD_LISTEN_FDS_START;
    // Check before taking ownership: it must be an open socket.
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `struct stat` into the buffer it is given, which
    // is one; on a descriptor that isn't open it fails with EBADF and writes
    // nothing, and the buffer is only read after a success.
    let is_socket = unsafe { libc::fstat(fd, st.as_mut_ptr()) } == 0
        // SAFETY: fstat succeeded, so it filled the buffer.
        && unsafe { st.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFSOCK;
    if !is_socket {
        return Err("LISTEN_FDS says a socket was passed, but descriptor 3 is not one".into());
    }
    // SAFETY: systemd passed descriptor 3 to this process (LISTEN_PID is
    // ours), it is an open socket (checked above), and nothing else in the
    // process owns it: it is taken over exactly once, here.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let listener = UnixListener::from(owned);
    nix::fcntl::fcntl(
        &listener,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| format!("cannot set close-on-exec on the passed socket: {e}"))?;
    Ok(Some(listener))
}

/// Binds `path` (mode 0666: who may call what is decided per call from the
/// peer's credentials), creating its directory (0755) and replacing a stale
/// socket left by an earlier run, never any other kind of file.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)
            .map_err(|e| format!("cannot replace the old socket {}: {e}", path.display()))?,
        Ok(_) => {
            return Err(format!(
                "{} exists and is not a socket; not replacing it",
                path.display()
            ));
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("cannot make {} reachable (0666): {e}", path.display()))?;
    Ok(listener)
}
