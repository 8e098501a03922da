//! Who is calling, and process hygiene before anything else runs.
//!
//! Like shadow-utils and sudo, credsync may run setuid root; then everything the
//! caller controls is hostile: the environment is cleared to a safe set, the
//! umask is 077, core dumps are off (they could hold passwords), and the three
//! standard descriptors are made to exist so no file we open can become them.
//! Core dumps are off in every run (not dumpable, RLIMIT_CORE 0), and a setuid
//! run ignores Ctrl-Z, which would otherwise stop it holding the locks.
//! Root also lifts the file size limit, and SIGXFSZ is ignored where a limit
//! stays, so `ulimit -f` can't kill a change half-way.
//!
//! What else survives `execve` into a setuid binary is undone before any lock
//! can be taken, so that nothing the caller set up can kill a run that holds
//! `/etc/.pwd.lock` and `/etc/shadow.lock` (a killed holder its parent never
//! reaps stays a zombie whose pid keeps the lock "alive"): the interval timers
//! are disarmed, every signal the caller ignored or blocked gets its default
//! back, descriptors above 2 are closed, and root raises the limits whose
//! breach kills or aborts (CPU time, address space, data, stack, real-time
//! CPU) or starves a run (open files, processes, pending signals), as sudo
//! does for itself. `setgroups` drops the caller's supplementary groups with
//! the id switch, so helpers run by root don't carry them.
//! This module holds the `unsafe` that edition 2024 asks for around the
//! environment, `mallopt`, signal dispositions, the interval timers and
//! `close_range`; everything else uses safe wrappers.

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigHandler, Signal, signal};
use nix::sys::stat::{Mode, umask};
use nix::unistd::{Gid, Uid, getegid, geteuid, getgid, getuid, setresgid, setresuid};

/// The identity the process was started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invoker {
    pub real_uid: u32,
    pub real_gid: u32,
    pub effective_uid: u32,
    /// Real and effective ids differ: a setuid or setgid run.
    pub elevated: bool,
}

const SAFE_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Must be the first thing `main` does, while the process has one thread.
pub fn harden() -> Invoker {
    let invoker = Invoker {
        real_uid: getuid().as_raw(),
        real_gid: getgid().as_raw(),
        effective_uid: geteuid().as_raw(),
        elevated: getuid() != geteuid() || getgid() != getegid(),
    };
    ensure_standard_fds();
    close_inherited_descriptors();
    disarm_interval_timers();
    restore_default_signals();
    return_large_blocks_at_once();
    umask(Mode::from_bits_truncate(0o077));
    // A core dump would hold passwords. RLIMIT_CORE 0 stops core files, but a
    // `core_pattern` pipe (systemd-coredump, apport) is handed the memory
    // whatever the limit; a process that is not dumpable is never dumped, by
    // any handler. Failure only matters in a setuid run, where it's checked.
    let no_core = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    let not_dumpable = nix::sys::prctl::set_dumpable(false);
    if invoker.elevated {
        if no_core.is_err() || not_dumpable.is_err() {
            eprintln!("credsync: cannot disable core dumps; refusing to run");
            std::process::exit(3);
        }
        reset_environment();
        if invoker.effective_uid == 0 {
            become_root_entirely();
        }
        ignore_terminal_stop();
    }
    lift_file_size_limit(invoker.effective_uid == 0);
    if invoker.effective_uid == 0 {
        raise_fatal_limits();
    }
    if invoker.elevated
        && let Some(limit) = fatal_limit_left()
    {
        eprintln!(
            "credsync: refusing to run with {limit} set, which could kill it while it holds the password files; run it without that limit"
        );
        std::process::exit(3);
    }
    invoker
}

/// Descriptors the caller left open (without close-on-exec) would otherwise
/// reach every helper root runs (`nscd`, `sss_cache`) and give the caller a
/// channel into them. Nothing of credsync's is open yet.
fn close_inherited_descriptors() {
    // SAFETY: close_range only closes descriptors; this runs first in `main`,
    // before any thread or file of ours exists, so no live handle is closed
    // under its owner. A kernel without it (before 5.9) returns ENOSYS, and
    // the loop below does the same work one descriptor at a time.
    if unsafe { libc::close_range(3, libc::c_uint::MAX, 0) } == 0 {
        return;
    }
    let open: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|&fd| fd > 2)
                .collect()
        })
        .unwrap_or_default();
    for fd in open {
        // SAFETY: as above; the read_dir handle is closed already, and a
        // descriptor that is gone by now makes close fail harmlessly.
        unsafe { libc::close(fd) };
    }
}

/// `setitimer` timers survive `execve`: a caller's ITIMER_REAL would raise
/// SIGALRM (ITIMER_VIRTUAL SIGVTALRM, ITIMER_PROF SIGPROF) inside a change.
fn disarm_interval_timers() {
    let off = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    for which in [libc::ITIMER_REAL, libc::ITIMER_VIRTUAL, libc::ITIMER_PROF] {
        // SAFETY: `off` is a valid itimerval and the old value isn't asked
        // for (null); a zero value disarms the timer.
        unsafe { libc::setitimer(which, &off, std::ptr::null_mut()) };
    }
}

/// Ignored signals and the blocked mask survive `execve` (handlers don't).
/// Every signal the caller left ignored gets its default action back (an
/// ignored SIGCHLD would make waiting for a helper fail), except SIGPIPE,
/// which Rust's runtime ignores on purpose before `main`; handlers Rust
/// installed (SIGSEGV, SIGBUS for stack overflows) are left alone. Then
/// nothing stays blocked: credsync holds what it must itself, around the
/// locks (`signals::Blocked`).
fn restore_default_signals() {
    use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
    for each in Signal::iterator() {
        if matches!(each, Signal::SIGKILL | Signal::SIGSTOP | Signal::SIGPIPE) {
            continue;
        }
        let mut current: libc::sigaction = zeroed_sigaction();
        // SAFETY: a null new action only reads the current one into
        // `current`, a valid, writable sigaction.
        let read = unsafe { libc::sigaction(each as libc::c_int, std::ptr::null(), &mut current) };
        if read == 0 && current.sa_sigaction == libc::SIG_IGN {
            // SAFETY: SIG_DFL runs no code of ours, and no thread exists yet.
            let _ = unsafe { signal(each, SigHandler::SigDfl) };
        }
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// An all-zero `sigaction`, to be filled in by the kernel.
fn zeroed_sigaction() -> libc::sigaction {
    // SAFETY: sigaction is a plain C struct for which all-zero bytes are a
    // valid value (SIG_DFL, no flags, an empty mask).
    unsafe { std::mem::zeroed() }
}

/// Soft and hard limit root gives itself for a resource whose breach the
/// caller could use to kill it: unlimited, or at least `floor`.
const FATAL_LIMITS: [(Resource, Option<u64>); 8] = [
    (Resource::RLIMIT_CPU, None),
    (Resource::RLIMIT_AS, None),
    (Resource::RLIMIT_DATA, None),
    (Resource::RLIMIT_STACK, Some(STACK_NEEDED)),
    (Resource::RLIMIT_RTTIME, None),
    (Resource::RLIMIT_NPROC, None),
    (Resource::RLIMIT_SIGPENDING, Some(4096)),
    (Resource::RLIMIT_NOFILE, Some(8192)),
];

/// `ulimit -t` (SIGXCPU, then SIGKILL), `ulimit -v`/`-d` (an allocation
/// aborts the process) and `ulimit -s` (a stack overflow) would kill a run
/// holding the locks; `ulimit -n`, `-u` and `-i` would make it fail. Root
/// (CAP_SYS_RESOURCE) raises them for the whole run, as sudo raises its own.
/// A limit that can't be raised stays: the run then fails cleanly or not at
/// all, as before.
fn raise_fatal_limits() {
    for (resource, floor) in FATAL_LIMITS {
        let Ok((soft, hard)) = getrlimit(resource) else {
            continue;
        };
        let raised = match floor {
            None if soft == RLIM_INFINITY => continue,
            None => setrlimit(resource, RLIM_INFINITY, RLIM_INFINITY),
            Some(floor) if soft != RLIM_INFINITY && soft < floor => {
                let hard = if hard == RLIM_INFINITY {
                    hard
                } else {
                    hard.max(floor)
                };
                setrlimit(resource, floor, hard)
            }
            Some(_) => continue,
        };
        if raised.is_err() {
            // Without CAP_SYS_RESOURCE: the soft limit as far as the hard one.
            let _ = setrlimit(resource, hard, hard);
        }
    }
}

/// The stack a run needs at least (the usual default).
const STACK_NEEDED: u64 = 8 << 20;

/// A limit the caller set that is still in force after `raise_fatal_limits`
/// and could kill the run half-way (root without `CAP_SYS_RESOURCE`, as in
/// a container, can't raise a hard limit): CPU time, address space, data,
/// real-time CPU, or a stack below [`STACK_NEEDED`]. A setuid run refuses to
/// start under one — before it takes any lock — rather than leave its pid in
/// `/etc/shadow.lock` for as long as its caller keeps the corpse unreaped.
fn fatal_limit_left() -> Option<&'static str> {
    let finite = |resource| matches!(getrlimit(resource), Ok((soft, _)) if soft != RLIM_INFINITY);
    [
        (Resource::RLIMIT_CPU, "a CPU time limit (ulimit -t)"),
        (Resource::RLIMIT_AS, "an address space limit (ulimit -v)"),
        (Resource::RLIMIT_DATA, "a data size limit (ulimit -d)"),
        (Resource::RLIMIT_RTTIME, "a real-time CPU limit (ulimit -R)"),
    ]
    .into_iter()
    .find(|&(resource, _)| finite(resource))
    .map(|(_, name)| name)
    .or_else(|| {
        matches!(getrlimit(Resource::RLIMIT_STACK), Ok((soft, _)) if soft < STACK_NEEDED)
            .then_some("a stack size limit below 8 MiB (ulimit -s)")
    })
}

/// `ulimit -f` must not cut a change short. A write past `RLIMIT_FSIZE` kills
/// the process with SIGXFSZ — in the middle of a change, with no message,
/// holding `/etc/shadow.lock` — and `shadow::replace` lifting the limit
/// around `/etc/shadow` (as shadow-utils does) doesn't cover the record
/// (SQLite's log and database) or the lock file. So root lifts it once for
/// the whole run. Failing to is not fatal: where a limit stays (not root, or
/// no CAP_SYS_RESOURCE to raise a hard limit), SIGXFSZ is ignored, so a write
/// past it fails with EFBIG and the change fails cleanly instead.
fn lift_file_size_limit(root: bool) {
    if root
        && setrlimit(Resource::RLIMIT_FSIZE, RLIM_INFINITY, RLIM_INFINITY).is_err()
        && let Ok((_, hard)) = getrlimit(Resource::RLIMIT_FSIZE)
    {
        // Without CAP_SYS_RESOURCE: the soft limit as far as the hard one.
        let _ = setrlimit(Resource::RLIMIT_FSIZE, hard, hard);
    }
    let unlimited = matches!(
        getrlimit(Resource::RLIMIT_FSIZE),
        Ok((soft, _)) if soft == RLIM_INFINITY
    );
    if !unlimited {
        // SAFETY: SIG_IGN installs no handler, so no code runs in signal
        // context; `harden` calls this before any thread exists.
        let _ = unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) };
    }
}

/// A setuid-root run keeps its caller's uid as the real uid, which lets the
/// caller signal it — `kill -STOP` while it holds `/etc/.pwd.lock` would
/// block every password change on the system. The caller is recorded in
/// `Invoker` first; then all three uids (and gids) become root, as `su` and
/// sudo do. Signals from the terminal (Ctrl-C at a prompt) still arrive.
fn become_root_entirely() {
    let root_gid = Gid::from_raw(0);
    let root_uid = Uid::from_raw(0);
    // The caller's supplementary groups go too: a helper root runs
    // (`sss_cache`) would otherwise keep them.
    if nix::unistd::setgroups(&[]).is_err()
        || setresgid(root_gid, root_gid, root_gid).is_err()
        || setresuid(root_uid, root_uid, root_uid).is_err()
    {
        eprintln!("credsync: cannot take on root's identity; refusing to run");
        std::process::exit(3);
    }
    // Changing the ids resets dumpability to `fs.suid_dumpable`, which is 2
    // (dump as root) where apport or systemd-coredump collect setuid crashes.
    if nix::sys::prctl::set_dumpable(false).is_err() {
        eprintln!("credsync: cannot disable core dumps; refusing to run");
        std::process::exit(3);
    }
}

/// Becomes the caller for good (all three uids and gids, no supplementary
/// groups): for a command that only talks to the service, whose peer
/// credentials must be the caller's, never the setuid root's.
pub fn become_caller(invoker: &Invoker) -> Result<(), String> {
    let (uid, gid) = (
        Uid::from_raw(invoker.real_uid),
        Gid::from_raw(invoker.real_gid),
    );
    if geteuid().is_root() && invoker.real_uid != 0 {
        nix::unistd::setgroups(&[]).map_err(|e| format!("cannot drop groups: {e}"))?;
    }
    setresgid(gid, gid, gid).map_err(|e| format!("cannot become gid {gid}: {e}"))?;
    setresuid(uid, uid, uid).map_err(|e| format!("cannot become uid {uid}: {e}"))?;
    if geteuid() != uid || getuid() != uid {
        return Err("cannot give up root".into());
    }
    Ok(())
}

/// Once it is root, a setuid run can be signalled by its caller only through
/// the terminal — and Ctrl-Z would stop it wherever it is, even holding
/// `/etc/.pwd.lock`, which blocks every password change on the system for as
/// long as the caller keeps it stopped. So SIGTSTP is ignored, as
/// shadow-utils' `passwd` ignores it while it writes; at a password prompt
/// `signals::Interruptible` still turns it into "interrupted".
fn ignore_terminal_stop() {
    // SAFETY: SIG_IGN installs no handler code, and `harden` runs before any
    // thread exists.
    if unsafe { signal(Signal::SIGTSTP, SigHandler::SigIgn) }.is_err() {
        eprintln!("credsync: cannot ignore terminal stops; refusing to run");
        std::process::exit(3);
    }
}

/// Every hash takes a large work area (Argon2id 19 MiB, yescrypt 16 MiB by
/// default). glibc raises its mmap threshold after the first such block is
/// freed, so later ones come from the heap and stay resident: a batch grew to
/// 350 MiB where 46 MiB are in use. A fixed threshold keeps large blocks
/// mmapped, returned to the system (and their password-derived pages dropped)
/// as soon as they are freed.
fn return_large_blocks_at_once() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // any thread exists, and a refusal (return 0) leaves the default in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Opens /dev/null until descriptors 0, 1 and 2 all exist, so a caller who
/// closed them can't make our shadow file become "standard output".
fn ensure_standard_fds() {
    use nix::fcntl::{OFlag, open};
    use std::os::fd::{AsRawFd, IntoRawFd};
    loop {
        match open("/dev/null", OFlag::O_RDWR, Mode::empty()) {
            Ok(fd) if fd.as_raw_fd() <= 2 => {
                // It now is stdin/out/err and must stay open for the process's life.
                let _ = fd.into_raw_fd();
            }
            Ok(_) => return,
            Err(_) => std::process::exit(3),
        }
    }
}

/// Keeps only a validated TERM (for the prompt) and sets a fixed PATH and C
/// locale. `clearenv` rather than removing names one by one: a hostile caller
/// can pass entries that `remove_var` can't name (no `=`, or a leading `=`).
fn reset_environment() {
    let term = std::env::var("TERM").ok().filter(|t| {
        t.len() < 64
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
    });
    // SAFETY: `harden` runs first in `main`, before any thread is spawned, so
    // nothing reads or holds a pointer into the environment meanwhile.
    unsafe {
        libc::clearenv();
        std::env::set_var("PATH", SAFE_PATH);
        std::env::set_var("LC_ALL", "C");
        if let Some(term) = term {
            std::env::set_var("TERM", term);
        }
    }
}
