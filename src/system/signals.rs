//! Signals around the two moments that must not be cut short.
//!
//! - [`Blocked`]: while both stores are being written (from the intent to the
//!   record), HUP, INT, QUIT, TERM, TSTP and PIPE are held back, as shadow-utils
//!   does around its writes; they are delivered when the guard drops.
//! - [`Interruptible`]: while a password prompt has the terminal's echo off,
//!   INT, TERM, HUP, QUIT and TSTP get a handler that does nothing, installed
//!   without `SA_RESTART`, so the blocked `read` returns `EINTR`, the terminal
//!   is restored on the way out, and the command fails with "interrupted".

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal, sigaction};

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
        let mut set = SigSet::empty();
        for signal in HELD_DURING_WRITES {
            set.add(signal);
        }
        // pthread_sigmask only fails for an invalid `how`.
        Blocked {
            previous: set.thread_swap_mask(SigmaskHow::SIG_BLOCK).ok(),
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

/// Restores the previous dispositions on drop.
pub struct Interruptible {
    previous: Vec<(Signal, SigAction)>,
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
        Interruptible { previous }
    }
}

impl Default for Interruptible {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Interruptible {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: re-installs the exact action the process had before.
            let _ = unsafe { sigaction(*signal, old) };
        }
    }
}
