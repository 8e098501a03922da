//! Asking for a password on the controlling terminal, without echo, and
//! getting back exactly the bytes typed — as pam_unix gets them at a login
//! prompt. The terminal stays in canonical mode, so the line discipline does
//! the editing (erase, kill) and a Tab or a non-UTF-8 byte is kept, not
//! filtered. Echo is restored by a guard on every way out, including a signal
//! (see `signals::Interruptible`).
#![forbid(unsafe_code)]

use super::signals::Interruptible;
use nix::sys::termios::{LocalFlags, SetArg, Termios, tcgetattr, tcsetattr};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use zeroize::Zeroizing;

/// Turns echo off (keeping the newline echo) and puts it back on drop. Echo
/// goes off with `TCSAFLUSH`, as getpass(3) does: whatever was typed before
/// the prompt was shown has already been echoed in clear text, so it is
/// discarded rather than taken as the password. Echo comes back at once.
struct EchoOff<'a> {
    tty: &'a File,
    saved: Termios,
}

impl<'a> EchoOff<'a> {
    fn new(tty: &'a File) -> io::Result<Self> {
        let saved = tcgetattr(tty)?;
        let mut quiet = saved.clone();
        quiet
            .local_flags
            .remove(LocalFlags::ECHO | LocalFlags::ECHOE | LocalFlags::ECHOK);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        tcsetattr(tty, SetArg::TCSAFLUSH, &quiet)?;
        Ok(EchoOff { tty, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.tty, SetArg::TCSANOW, &self.saved);
    }
}

/// What can go wrong while asking.
#[derive(Debug)]
pub enum AskError {
    /// There is no controlling terminal to ask on.
    NoTerminal,
    /// A signal arrived while waiting; the terminal was restored.
    Interrupted,
    /// More than `limit` bytes were typed.
    TooLong,
    Io(io::Error),
}

/// Writes `prompt` to `/dev/tty` and reads one line without echo, at most
/// `limit` bytes, without its newline.
pub fn ask(prompt: &str, limit: usize) -> Result<Zeroizing<Vec<u8>>, AskError> {
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/tty")
        .map_err(|_| AskError::NoTerminal)?;
    let signals = Interruptible::new();
    // Echo off (and type-ahead discarded) before the prompt shows, as
    // getpass(3) orders it: what is typed once the prompt is seen is kept.
    let echo_off = EchoOff::new(&tty).map_err(|_| AskError::NoTerminal)?;
    (&tty).write_all(prompt.as_bytes()).map_err(AskError::Io)?;
    let line = read_line(
        &mut Waiting {
            tty: &tty,
            signals: &signals,
        },
        limit,
    );
    drop(echo_off);
    line
}

/// Reads the terminal, waiting for input where a signal can end the wait.
struct Waiting<'a> {
    tty: &'a File,
    signals: &'a Interruptible,
}

impl Read for Waiting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.signals.wait_readable(self.tty)?;
        let mut tty = self.tty;
        tty.read(buf)
    }
}

fn read_line(tty: &mut impl Read, limit: usize) -> Result<Zeroizing<Vec<u8>>, AskError> {
    let mut line = Zeroizing::new(Vec::with_capacity(64));
    let mut byte = [0u8; 1];
    loop {
        match tty.read(&mut byte) {
            Ok(0) => return Ok(line),
            Ok(_) if byte[0] == b'\n' => return Ok(line),
            Ok(_) if line.len() >= limit => {
                drain_line(tty);
                return Err(AskError::TooLong);
            }
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(AskError::Interrupted),
            Err(e) => return Err(AskError::Io(e)),
        }
    }
}

/// Reads the rest of an over-long line so it doesn't reach the next prompt.
fn drain_line(tty: &mut impl Read) {
    let mut byte = [0u8; 1];
    while matches!(tty.read(&mut byte), Ok(1)) && byte[0] != b'\n' {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_byte_but_the_newline() {
        let mut typed: &[u8] = b"a\tb\xe9\x01c\nnext";
        assert_eq!(&read_line(&mut typed, 511).unwrap()[..], b"a\tb\xe9\x01c");
    }

    #[test]
    fn refuses_more_than_the_limit_and_drains_the_line() {
        let mut typed: &[u8] = b"abcdef\nnext\n";
        assert!(matches!(read_line(&mut typed, 3), Err(AskError::TooLong)));
        assert_eq!(typed, b"next\n");
    }
}
