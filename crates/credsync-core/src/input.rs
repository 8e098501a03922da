//! Where passwords come from: the terminal without echo (`system::terminal`,
//! reading `/dev/tty`), or standard input with `--stdin`, one per line, for
//! automation. Every byte read is held in a zeroizing buffer from the moment it
//! is read, and kept as typed: a password is bytes.
#![forbid(unsafe_code)]

use crate::account::UserName;
use crate::change::{HashedChange, NewPassword};
use crate::error::Error;
use crate::secret::{MAX_PASSWORD_LEN, Password, PasswordError};
use crate::store::app_hash;
use crate::system::crypt;
use crate::system::terminal::{self, AskError};
use std::collections::HashMap;
use std::io::{self, BufRead, Read};
use std::os::fd::AsFd;
use zeroize::Zeroizing;

pub struct Input<R> {
    /// `Some` with `--stdin`: read lines here instead of prompting.
    lines: Option<R>,
}

impl Input<Stdin> {
    pub fn new(use_stdin: bool) -> Self {
        Input {
            lines: use_stdin.then(Stdin::new),
        }
    }
}

/// Standard input read through a buffer of our own that is wiped when
/// dropped. std's `Stdin` keeps a process-wide buffer that is never wiped, so
/// a password read through it would stay in memory until the process ends.
pub struct Stdin {
    buffer: Zeroizing<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Stdin {
    pub fn new() -> Self {
        Stdin {
            buffer: Zeroizing::new(vec![0; 8192]),
            start: 0,
            end: 0,
        }
    }
}

impl Default for Stdin {
    fn default() -> Self {
        Self::new()
    }
}

impl Read for Stdin {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Stdin {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            let read = loop {
                match nix::unistd::read(io::stdin().as_fd(), &mut self.buffer[..]) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    // A closed standard input is an empty one, as std's `Stdin` has it.
                    Err(nix::errno::Errno::EBADF) => break Ok(0),
                    other => break other,
                }
            };
            self.start = 0;
            self.end = read.map_err(io::Error::from)?;
        }
        Ok(&self.buffer[self.start..self.end])
    }

    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }
}

impl<R: BufRead> Input<R> {
    #[cfg(test)]
    pub fn from_reader(reader: R) -> Self {
        Input {
            lines: Some(reader),
        }
    }

    pub fn is_interactive(&self) -> bool {
        self.lines.is_none()
    }

    /// One password: the next line of standard input, or the answer to `prompt`.
    pub fn password(&mut self, prompt: &str) -> Result<Password, Error> {
        self.password_or_empty(prompt)?
            .ok_or_else(|| Error::Invalid(format!("{}; nothing was changed", PasswordError::Empty)))
    }

    /// [`password`](Self::password), but an empty answer is `None` rather
    /// than an error: for a check, where it is a wrong password, not a bad
    /// argument.
    pub fn password_or_empty(&mut self, prompt: &str) -> Result<Option<Password>, Error> {
        let mut bytes = match &mut self.lines {
            Some(reader) => read_line(reader, MAX_PASSWORD_LEN)?.ok_or_else(|| {
                Error::Invalid(
                    "standard input ended before the password; nothing was changed".into(),
                )
            })?,
            None => ask(prompt)?,
        };
        match Password::new(std::mem::take(&mut *bytes)) {
            Ok(password) => Ok(Some(password)),
            Err(PasswordError::Empty) => Ok(None),
            Err(e) => Err(Error::Invalid(format!("{e}; nothing was changed"))),
        }
    }

    /// A new password, confirmed when asked interactively (not with
    /// `--stdin`); `None` when the confirmation differs, so the caller may
    /// ask again.
    pub fn confirmed_password(&mut self) -> Result<Option<Password>, Error> {
        let first = self.password("Enter a new password: ")?;
        if self.is_interactive() {
            let again = self.password("Confirm: ")?;
            if !first.same_as(&again) {
                return Ok(None);
            }
        }
        Ok(Some(first))
    }
}

/// The refusal when the confirmation differs.
pub fn mismatch() -> Error {
    Error::Invalid("the passwords do not match; nothing was changed".into())
}

/// Reads one line of at most `limit` bytes, without its line ending (`\n` or
/// `\r\n`); `None` at the end of input.
pub fn read_line(
    reader: &mut impl BufRead,
    limit: usize,
) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
    // Room for the longest line, so it never grows: a reallocation would
    // leave a copy behind, unwiped.
    let cap = (limit + 2) as u64;
    let mut line = Zeroizing::new(Vec::with_capacity(limit + 2));
    reader
        .take(cap)
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::Failure(format!("cannot read standard input: {e}")))?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    if line.len() > limit {
        return Err(Error::Invalid(format!(
            "the input line is longer than {limit} bytes; nothing was changed"
        )));
    }
    Ok(Some(line))
}

/// chpasswd's format: `user:password` per line; the password may hold `:`.
/// Blank lines are skipped; any other bad line, or a user named twice, rejects
/// the whole batch. Returns each change with its line number.
pub fn parse_import(reader: &mut impl BufRead) -> Result<Vec<(usize, NewPassword)>, Error> {
    // The longest line: a 32-byte name, the colon and the longest password.
    const MAX_LINE: usize = 32 + 1 + MAX_PASSWORD_LEN;
    parse_batch(reader, MAX_LINE, "user:password", |number, user, rest| {
        let password =
            Password::new(rest.to_vec()).map_err(|e| bad_line(number, &e.to_string()))?;
        Ok(NewPassword { user, password })
    })
}

/// `import --hashed`: `user:crypt_hash[:argon2id_phc]` per line, as
/// `chpasswd -e` takes them, but only what is a hash: each crypt hash must be
/// one this system's libcrypt verifies, each PHC string an Argon2id one
/// (`crypt::check_hash`, `app_hash::check_phc`). The first bad line refuses
/// the whole batch, naming its number. Without the PHC string the record's
/// Argon2id hash is derived at the first `verify`.
pub fn parse_hashed_import(reader: &mut impl BufRead) -> Result<Vec<(usize, HashedChange)>, Error> {
    const FORMAT: &str = "user:crypt_hash[:argon2id_phc]";
    parse_batch(reader, 4096, FORMAT, |number, user, rest| {
        let text = std::str::from_utf8(rest).map_err(|_| bad_line(number, "not UTF-8"))?;
        let mut fields = text.split(':');
        let (Some(crypt_hash), phc, None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(bad_line(number, &format!("expected {FORMAT}")));
        };
        let linux = crypt::check_hash(crypt_hash)
            .map_err(|why| bad_line(number, &format!("the crypt hash {why}")))?;
        if let Some(phc) = phc {
            app_hash::check_phc(phc)
                .map_err(|why| bad_line(number, &format!("the Argon2id hash {why}")))?;
        }
        Ok(HashedChange {
            user,
            linux,
            app: phc.map(str::to_owned),
            fleet: None,
        })
    })
}

/// The batch both imports read: numbered lines of at most `max_line` bytes,
/// blank ones skipped, each `user:` and then what `rest` makes of the
/// remainder; a user named twice, or any bad line, refuses the whole batch.
fn parse_batch<T>(
    reader: &mut impl BufRead,
    max_line: usize,
    format: &str,
    mut rest: impl FnMut(usize, UserName, &[u8]) -> Result<T, Error>,
) -> Result<Vec<(usize, T)>, Error> {
    let mut batch = Vec::new();
    let mut first_line: HashMap<UserName, usize> = HashMap::new();
    for number in 1.. {
        let line = match read_line(reader, max_line) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(Error::Invalid(_)) => return Err(bad_line(number, "the line is too long")),
            Err(e) => return Err(e),
        };
        if line.is_empty() {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(bad_line(number, &format!("expected {format}")));
        };
        let user = std::str::from_utf8(&line[..colon])
            .ok()
            .and_then(|name| UserName::parse(name).ok())
            .ok_or_else(|| bad_line(number, "invalid user name"))?;
        if let Some(first) = first_line.get(&user) {
            return Err(bad_line(
                number,
                &format!("user '{user}' is already on line {first}"),
            ));
        }
        first_line.insert(user.clone(), number);
        batch.push((number, rest(number, user, &line[colon + 1..])?));
    }
    if batch.is_empty() {
        return Err(Error::Invalid(format!(
            "no {format} lines on standard input; nothing was changed"
        )));
    }
    Ok(batch)
}

/// The batch is refused because of line `number`.
pub fn bad_line(number: usize, why: &str) -> Error {
    Error::Invalid(format!("line {number}: {why}; nothing was changed"))
}

fn ask(prompt: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    terminal::ask(prompt, MAX_PASSWORD_LEN).map_err(|e| match e {
        AskError::NoTerminal => {
            Error::Usage("no terminal to ask for the password on; use --stdin".into())
        }
        AskError::Interrupted => Error::Failure("interrupted; nothing was changed".into()),
        AskError::TooLong => Error::Invalid(format!(
            "the password is longer than {MAX_PASSWORD_LEN} bytes; nothing was changed"
        )),
        AskError::Io(e) => Error::Failure(format!("cannot read the terminal: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(text: &[u8]) -> Input<&[u8]> {
        Input::from_reader(text)
    }

    #[test]
    fn reads_one_password_per_line_without_confirmation() {
        let mut i = input(b"old pass\r\nnew:pass\n");
        assert_eq!(i.password("").unwrap().as_bytes(), b"old pass");
        assert_eq!(
            i.confirmed_password().unwrap().unwrap().as_bytes(),
            b"new:pass"
        );
        assert!(i.password("").is_err());
    }

    #[test]
    fn refuses_empty_and_overlong_lines() {
        assert!(input(b"\n").password("").is_err());
        let long = vec![b'x'; 1 << 20];
        let err = input(&long).password("").unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        let longest = [vec![b'x'; MAX_PASSWORD_LEN], b"\n".to_vec()].concat();
        assert!(input(&longest).password("").is_ok());
    }

    #[test]
    fn keeps_non_utf8_bytes() {
        let mut i = input(b"\xff\xfepass\n");
        assert_eq!(i.password("").unwrap().as_bytes(), b"\xff\xfepass");
    }

    fn parse(text: &[u8]) -> Result<Vec<(usize, NewPassword)>, Error> {
        parse_import(&mut &text[..])
    }

    #[test]
    fn import_lines_split_at_the_first_colon() {
        let batch = parse(b"alice:pa:ss\n\nbob:x\n").unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].1.user.as_str(), "alice");
        assert_eq!(batch[0].1.password.as_bytes(), b"pa:ss");
        assert_eq!(batch[1].0, 3, "line numbers count the blank line");
    }

    #[test]
    fn one_bad_line_rejects_the_batch_with_its_number() {
        for (text, line) in [
            (&b"alice:x\nbob\n"[..], "line 2"),
            (b"alice:x\nbob:\n", "line 2"),
            (b"a lice:x\n", "line 1"),
            (b"alice:x\ncarol:ok\n:x\n", "line 3"),
            (
                b"alice:x\nbob:y\nalice:z\n",
                "line 3: user 'alice' is already on line 1",
            ),
        ] {
            let err = parse(text).err().unwrap().to_string();
            assert!(err.starts_with(line), "{err}");
        }
        assert!(parse(b"").is_err());
    }

    #[test]
    fn the_longest_password_fits_an_import_line() {
        let line = [
            b"a2345678901234567890123456789012:".to_vec(),
            vec![b'p'; MAX_PASSWORD_LEN],
            b"\n".to_vec(),
        ]
        .concat();
        assert_eq!(
            parse(&line).unwrap()[0].1.password.as_bytes().len(),
            MAX_PASSWORD_LEN
        );
    }
}
