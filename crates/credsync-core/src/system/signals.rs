//! Signals around the two moments that must not be cut short.
//!
//! - [`Blocked`]: from before the password files are locked until after they
//!   are released (`ShadowLock` holds one), and around each file replaced,
//!   the signals that end or stop a process by default and that a caller can
//!   still cause (the terminal's, timers', HUP, PIPE, ...) are held back, as
//!   shadow-utils ignores them around its writes; they are delivered when the
//!   guard drops, or dropped with [`Blocked::discard_pending`] once a change
//!   is written.
//! - [`Interruptible`]: while a password prompt has the terminal's echo off,
//!   INT, TERM, HUP, QUIT and TSTP get a handler that does nothing and are
//!   held back, except inside [`Interruptible::wait_readable`], which lets them
//!   in atomically (`ppoll`). A signal that arrives at any moment of the
//!   prompt, even before the wait begins, therefore ends the wait with
//!   `EINTR`: the terminal is restored on the way out and the command fails
//!   with "interrupted".
//! - [`interrupt_at`]: a blocking system call with a deadline, the way glibc's
//!   `lckpwdf()` waits for `/etc/.pwd.lock`: a timer aimed at this thread
//!   raises SIGALRM, caught without `SA_RESTART`, so the call returns `EINTR`.

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::signal::{
    SaFlags, SigAction, SigEvent, SigHandler, SigSet, SigevNotify, SigmaskHow, Signal, sigaction,
};
use nix::sys::time::TimeSpec;
use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
use nix::time::ClockId;
use std::io;
use std::os::fd::AsFd;
use std::time::Instant;

/// Every signal whose default action ends or stops the process and that a
/// caller can still cause once a setuid run has become root: the terminal's
/// (Ctrl-C, Ctrl-\, Ctrl-Z, hangup, background reads and writes), a timer's
/// (start-up disarms the caller's; these are for what slips through), and
/// the rest of the catchable ones that end a process by default.
const HELD_DURING_WRITES: [Signal; 15] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGPIPE,
    Signal::SIGALRM,
    Signal::SIGVTALRM,
    Signal::SIGPROF,
    Signal::SIGXCPU,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGIO,
];

const INTERRUPTS: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGTSTP,
];

/// Holds the signals back until dropped. The mask is per thread: the thread
/// that writes holds them back, and a signal sent to the process goes to
/// another thread if one takes it (the fleet agent's runtime). Guards nest.
pub struct Blocked {
    previous: Option<SigSet>,
}

impl Blocked {
    pub fn new() -> Self {
        // pthread_sigmask only fails for an invalid `how`.
        Blocked {
            previous: set_of(&HELD_DURING_WRITES)
                .thread_swap_mask(SigmaskHow::SIG_BLOCK)
                .ok(),
        }
    }
}

impl Blocked {
    /// Ends the hold and drops whatever arrived meanwhile. Once a change has
    /// begun to be written it is finished and reported, not cut short after
    /// the fact (shadow-utils ignores these signals while it writes): a
    /// Ctrl-C that came too late must not hide that the password changed.
    pub fn discard_pending(self) {
        let held = set_of(&HELD_DURING_WRITES);
        let now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // Takes each pending instance, this thread's or the process's, while
        // they are still held back. Nothing else changes: the process's
        // dispositions are left alone, so another thread (the fleet agent's
        // runtime, which handles SIGTERM) loses no signal meant for it.
        // SAFETY: `held` is a valid signal set borrowed for the call, the
        // info pointer may be null, and a zero timeout returns at once;
        // sigtimedwait returns the signal taken, or -1 when none is pending.
        while unsafe { libc::sigtimedwait(held.as_ref(), std::ptr::null_mut(), &now) } > 0 {}
        drop(self);
    }
}

impl Default for Blocked {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            let _ = previous.thread_set_mask();
        }
    }
}

extern "C" fn interrupt(_: libc::c_int) {}

/// Holds the interrupting signals back, with a do-nothing handler, until
/// dropped; [`Interruptible::wait_readable`] is the one place they get in.
pub struct Interruptible {
    previous: Vec<(Signal, SigAction)>,
    previous_mask: Option<SigSet>,
}

impl Interruptible {
    pub fn new() -> Self {
        // Blocked first: a signal between installing the handler and
        // blocking would be spent on the do-nothing handler and never end
        // the wait.
        let previous_mask = set_of(&INTERRUPTS)
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .ok();
        let action = SigAction::new(
            SigHandler::Handler(interrupt),
            SaFlags::empty(),
            SigSet::empty(),
        );
        let previous = INTERRUPTS
            .iter()
            .filter_map(|&signal| {
                // SAFETY: the handler is async-signal-safe (it does nothing), and
                // the previous action is put back by Drop.
                unsafe { sigaction(signal, &action) }
                    .ok()
                    .map(|old| (signal, old))
            })
            .collect();
        Interruptible {
            previous,
            previous_mask,
        }
    }

    /// Waits until `fd` has something to read, letting the held signals in
    /// for the wait only. A signal, pending already or arriving during the
    /// wait, ends it with `ErrorKind::Interrupted`.
    pub fn wait_readable(&self, fd: impl AsFd) -> io::Result<()> {
        let mut open = self.previous_mask.unwrap_or_else(SigSet::empty);
        for signal in INTERRUPTS {
            open.remove(signal);
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        ppoll(&mut fds, None, Some(open)).map_err(io::Error::from)?;
        Ok(())
    }
}

fn set_of(signals: &[Signal]) -> SigSet {
    let mut set = SigSet::empty();
    for &signal in signals {
        set.add(signal);
    }
    set
}

impl Default for Interruptible {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Interruptible {
    fn drop(&mut self) {
        // Unblock first, while the do-nothing handler is still in place, so a
        // signal left pending is consumed here rather than acted on after the
        // command has already reported it as an interruption.
        if let Some(mask) = &self.previous_mask {
            let _ = mask.thread_set_mask();
        }
        for (signal, old) in &self.previous {
            // SAFETY: re-installs the exact action the process had before.
            let _ = unsafe { sigaction(*signal, old) };
        }
    }
}

/// Runs `wait`, a blocking system call, and interrupts it at `deadline`: it
/// then returns `EINTR`, which is what it gets to say. A deadline already
/// past returns `EINTR` without calling it. Only this thread is signalled,
/// and SIGALRM's previous disposition and mask are restored afterwards.
pub fn interrupt_at<T>(
    deadline: Instant,
    wait: impl FnOnce() -> Result<T, Errno>,
) -> Result<T, Errno> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(Errno::EINTR);
    }
    let _handler = AlarmHandler::install()?;
    let previous_mask = set_of(&[Signal::SIGALRM])
        .thread_swap_mask(SigmaskHow::SIG_UNBLOCK)
        .ok();
    let result = (|| {
        let this_thread = SigEvent::new(SigevNotify::SigevThreadId {
            signal: Signal::SIGALRM,
            thread_id: nix::unistd::gettid().as_raw(),
            si_value: 0,
        });
        let mut timer = Timer::new(ClockId::CLOCK_MONOTONIC, this_thread)?;
        // Fired again every 50 ms after the deadline: a signal that came
        // before the call was entered (the process stopped in between) would
        // otherwise leave it waiting with no deadline at all.
        timer.set(
            Expiration::IntervalDelayed(
                TimeSpec::from_duration(remaining),
                TimeSpec::from_duration(std::time::Duration::from_millis(50)),
            ),
            TimerSetTimeFlags::empty(),
        )?;
        // Dropping the timer (timer_delete) after the wait disarms it; a
        // signal already sent to this thread, which doesn't block it, has
        // been handled by the time the call returns.
        wait()
    })();
    if let Some(mask) = previous_mask {
        let _ = mask.thread_set_mask();
    }
    result
}

/// The do-nothing SIGALRM handler, installed while any thread of ours waits
/// in [`interrupt_at`]. The disposition is process-wide, so it is counted:
/// the first waiter installs it, the last puts the previous action back —
/// otherwise one thread could restore the default (terminate) while another's
/// timer is about to fire.
struct AlarmHandler;

static ALARM_WAITERS: std::sync::Mutex<(usize, Option<SigAction>)> =
    std::sync::Mutex::new((0, None));

impl AlarmHandler {
    fn install() -> Result<Self, Errno> {
        let mut waiters = ALARM_WAITERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if waiters.0 == 0 {
            let action = SigAction::new(
                SigHandler::Handler(interrupt),
                SaFlags::empty(),
                SigSet::empty(),
            );
            // SAFETY: the handler is async-signal-safe (it does nothing), and
            // the previous action is put back when the last waiter leaves.
            waiters.1 = Some(unsafe { sigaction(Signal::SIGALRM, &action) }?);
        }
        waiters.0 += 1;
        Ok(AlarmHandler)
    }
}

impl Drop for AlarmHandler {
    fn drop(&mut self) {
        let mut waiters = ALARM_WAITERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        waiters.0 -= 1;
        if waiters.0 == 0
            && let Some(previous) = waiters.1.take()
        {
            // SAFETY: re-installs the exact action the process had before.
            let _ = unsafe { sigaction(Signal::SIGALRM, &previous) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::raise;
    use std::sync::Mutex;

    /// Dispositions are process-wide: one guard at a time, or a guard dropped
    /// out of order could restore the default action under another test.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    #[test]
    fn a_signal_before_the_wait_still_ends_it() {
        let _one = ONE_AT_A_TIME.lock().unwrap();
        let (read_end, _write_end) = nix::unistd::pipe().unwrap();
        let signals = Interruptible::new();
        // Arrives before the wait begins: held, not lost.
        raise(Signal::SIGTERM).unwrap();
        let waited = signals.wait_readable(&read_end);
        assert_eq!(
            waited.map_err(|e| e.kind()),
            Err(io::ErrorKind::Interrupted)
        );
    }

    #[test]
    fn a_blocking_call_is_interrupted_at_its_deadline() {
        let _one = ONE_AT_A_TIME.lock().unwrap();
        let (read_end, _write_end) = nix::unistd::pipe().unwrap();
        let started = Instant::now();
        let deadline = started + std::time::Duration::from_millis(100);
        let mut buf = [0u8; 1];
        let read = interrupt_at(deadline, || nix::unistd::read(&read_end, &mut buf));
        assert_eq!(read, Err(Errno::EINTR));
        assert!(started.elapsed() >= std::time::Duration::from_millis(100));
    }

    #[test]
    fn a_call_that_completes_is_not_interrupted() {
        let _one = ONE_AT_A_TIME.lock().unwrap();
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&write_end, b"x").unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let mut buf = [0u8; 1];
        assert_eq!(
            interrupt_at(deadline, || nix::unistd::read(&read_end, &mut buf)),
            Ok(1)
        );
        assert_eq!(
            interrupt_at(Instant::now(), || nix::unistd::read(&read_end, &mut buf)),
            Err(Errno::EINTR),
            "a deadline already past doesn't call"
        );
    }

    #[test]
    fn a_signal_held_during_a_write_can_be_discarded() {
        let _one = ONE_AT_A_TIME.lock().unwrap();
        let held = Blocked::new();
        // Default action: it would end the test process if it were delivered.
        raise(Signal::SIGHUP).unwrap();
        held.discard_pending();
        let pending = SigSet::thread_get_mask().unwrap();
        assert!(!pending.contains(Signal::SIGHUP), "still blocked");
    }

    #[test]
    fn input_ends_the_wait_without_a_signal() {
        let _one = ONE_AT_A_TIME.lock().unwrap();
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&write_end, b"x").unwrap();
        let signals = Interruptible::new();
        assert!(signals.wait_readable(&read_end).is_ok());
    }
}
