//! Signals around a password prompt. While the terminal's echo is off, SIGINT,
//! SIGTERM, SIGHUP, SIGQUIT and SIGTSTP must not kill or stop the process before
//! the echo is restored: during a prompt they get a handler that does nothing,
//! installed without `SA_RESTART`, so the blocked `read` returns `EINTR`, the
//! prompt reader restores the terminal on its way out, and the command fails
//! with "interrupted".

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

const INTERRUPTS: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGTSTP,
];

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
