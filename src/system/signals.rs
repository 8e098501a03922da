//! Signals around the two moments that must not be cut short.
//!
//! - [`Blocked`]: while both stores are being written (from the intent to the
//!   record), HUP, INT, QUIT, TERM, TSTP and PIPE are held back, as shadow-utils
//!   does around its writes; they are delivered when the guard drops.
//! - [`Interruptible`]: while a password prompt has the terminal's echo off,
//!   INT, TERM, HUP, QUIT and TSTP get a handler that does nothing and are
//!   held back, except inside [`Interruptible::wait_readable`], which lets them
//!   in atomically (`ppoll`). A signal that arrives at any moment of the
//!   prompt, even before the wait begins, therefore ends the wait with
//!   `EINTR`: the terminal is restored on the way out and the command fails
//!   with "interrupted".

use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction};
use std::io;
use std::os::fd::AsFd;

const HELD_DURING_WRITES: [Signal; 6] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGTSTP,
    Signal::SIGPIPE,
];

const INTERRUPTS: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGTSTP,
];

/// Holds the signals back until dropped. The mask is per thread: credsync
/// writes from its main thread only. Guards nest.
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
        let previous_mask = set_of(&INTERRUPTS)
            .thread_swap_mask(SigmaskHow::SIG_BLOCK)
            .ok();
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
    fn input_ends_the_wait_without_a_signal() {
        let _one = ONE_AT_A_TIME.lock().unwrap();
        let (read_end, write_end) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&write_end, b"x").unwrap();
        let signals = Interruptible::new();
        assert!(signals.wait_readable(&read_end).is_ok());
    }
}
