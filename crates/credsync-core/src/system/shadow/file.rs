//! `/etc/shadow` as bytes: parsed without losing a single one, and serialised
//! back so that every line credsync did not change is byte-identical.

use super::LastChange;
use crate::account::UserName;
use crate::system::crypt::LinuxHash;
use crate::system::passwd::{entry_fields, lines};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// One user's line of `/etc/shadow`, as far as credsync cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    pub name: String,
    pub hash: LinuxHash,
    pub last_change: LastChange,
}

/// Shadow's aging fields 4 to 6, in days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Aging {
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub warn: Option<i64>,
}

/// The whole file, line by line, each line's raw bytes kept with its `\n`.
///
/// A line is an entry only if it is UTF-8 without `\r`, has exactly 9
/// colon-separated fields, a non-empty name that does not start with `#` (a
/// comment), a blank or a NIS `+`/`-`, a password field `LinuxHash` accepts,
/// and a last-change field that is empty or a decimal number. Everything else
/// (comments, blank lines, NIS lines, malformed lines) is kept as it is and
/// ignored: credsync never rewrites a line that glibc and shadow-utils would
/// not read as a user either.
///
/// The bytes are read once and kept as they are (`base`); a line is where it
/// lies in them until a change gives it bytes of its own. So reading 100,000
/// lines costs one pass and one allocation per user name (the index), not a
/// copy of every line; serialising is one buffer, written in one go. The
/// bytes, the lines' places and the index are shared between clones: a copy
/// to change (as every writer takes) costs nothing until it changes a line.
#[derive(Debug, Clone, Default)]
pub struct ShadowFile {
    /// Where each line (with its `\n`) lies in `base`.
    spans: Arc<Vec<Range<usize>>>,
    /// Lines changed since `base`, by line number.
    changed: HashMap<usize, Vec<u8>>,
    /// Line number of each user's first entry, so lookups don't re-parse the
    /// file (a batch looks up every user it changes). Changing a password
    /// keeps the name, so the index stays true.
    index: Arc<HashMap<String, usize>>,
    /// The content on disk this file derives from, so a write can refuse to
    /// overwrite a file that changed since (a lost update). Moved forward by a
    /// successful write: `file` can then be changed and written again, while a
    /// clone taken before the write cannot undo it.
    base: Arc<Vec<u8>>,
}

impl ShadowFile {
    pub fn parse(raw: Vec<u8>) -> Self {
        let spans = spans(&raw);
        let mut index = HashMap::with_capacity(spans.len());
        for (i, span) in spans.iter().enumerate() {
            if let Some(name) = entry_name(&raw[span.clone()]) {
                index.entry(name.to_owned()).or_insert(i);
            }
        }
        ShadowFile {
            spans: Arc::new(spans),
            changed: HashMap::new(),
            index: Arc::new(index),
            base: Arc::new(raw),
        }
    }

    fn line(&self, index: usize) -> &[u8] {
        match self.changed.get(&index) {
            Some(line) => line,
            None => &self.base[self.spans[index].clone()],
        }
    }

    /// The first entry named `user`: the one glibc's `getspnam` returns.
    pub fn entry(&self, user: &UserName) -> Option<ShadowEntry> {
        self.find(user).map(|(_, entry)| entry)
    }

    /// Every entry, in file order (for the parser's tests; commands look users up).
    #[cfg(test)]
    pub fn entries(&self) -> Vec<ShadowEntry> {
        (0..self.spans.len())
            .filter_map(|i| parse_entry(self.line(i)))
            .collect()
    }

    /// Sets fields 2 and 3 of `user`'s first entry; the other seven fields and
    /// the line ending keep their bytes. Returns false, changing nothing, if
    /// the user has no entry.
    pub fn set_password(&mut self, user: &UserName, hash: &LinuxHash, last: LastChange) -> bool {
        self.edit_fields(user, |fields| {
            fields[1] = hash.as_str().as_bytes().to_vec();
            fields[2] = last_change_field(last).into_bytes();
        })
    }

    /// Fields 4 to 6 of `user`'s line: days before a change is allowed, days
    /// a password lasts, days of warning; `None` for an empty or unreadable field.
    pub fn aging(&self, user: &UserName) -> Option<Aging> {
        let (index, _) = self.find(user)?;
        let fields = entry_fields(self.line(index), 9)?;
        Some(Aging {
            min: days(fields[3]),
            max: days(fields[4]),
            warn: days(fields[5]),
        })
    }

    /// Field 7 of `user`'s line: days after the password expired that the
    /// account still works; `None` for an empty or unreadable field.
    pub fn inactive_days(&self, user: &UserName) -> Option<i64> {
        self.day_field(user, 6)
    }

    /// Field 8 of `user`'s line: the day the account expires; `None` for an
    /// empty or unreadable field.
    pub fn account_expires(&self, user: &UserName) -> Option<i64> {
        self.day_field(user, 7)
    }

    fn day_field(&self, user: &UserName, slot: usize) -> Option<i64> {
        let (index, _) = self.find(user)?;
        let fields = entry_fields(self.line(index), 9)?;
        days(fields[slot])
    }

    /// Sets fields 4 to 6 of `user`'s line where `aging` has a value, and
    /// leaves the others as they are. Returns whether the user was found.
    pub fn set_aging(&mut self, user: &UserName, aging: Aging) -> bool {
        self.edit_fields(user, |fields| {
            for (slot, value) in [(3, aging.min), (4, aging.max), (5, aging.warn)] {
                if let Some(days) = value {
                    fields[slot] = days.to_string().into_bytes();
                }
            }
        })
    }

    /// Rewrites `user`'s first line through `edit`, which sees its fields
    /// split at `:`; fields `edit` leaves alone, and the line ending, keep
    /// their bytes. Returns false, changing nothing, if the user has no entry
    /// (an entry has all nine fields, so `edit` may index any of them).
    fn edit_fields(&mut self, user: &UserName, edit: impl FnOnce(&mut [Vec<u8>])) -> bool {
        let Some((index, _)) = self.find(user) else {
            return false;
        };
        let line = self.line(index);
        let (content, ending) = match line.strip_suffix(b"\n") {
            Some(content) => (content, &b"\n"[..]),
            None => (line, &b""[..]),
        };
        let mut fields: Vec<Vec<u8>> = content.split(|&b| b == b':').map(<[u8]>::to_vec).collect();
        edit(&mut fields);
        let mut new = fields.join(&b':');
        new.extend_from_slice(ending);
        self.changed.insert(index, new);
        true
    }

    /// The whole file, changed lines included, in one buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        if self.changed.is_empty() {
            return self.base.to_vec();
        }
        let grown: usize = self.changed.values().map(Vec::len).sum();
        let mut out = Vec::with_capacity(self.base.len() + grown);
        for i in 0..self.spans.len() {
            out.extend_from_slice(self.line(i));
        }
        out
    }

    /// The content on disk this file derives from.
    pub(super) fn base(&self) -> &[u8] {
        &self.base
    }

    /// Records that `written` (this file's bytes) is now on disk.
    pub(super) fn written(&mut self, written: Vec<u8>) {
        // Same lines, same numbers (a change never adds or removes one), so
        // the index still holds.
        self.spans = Arc::new(spans(&written));
        self.changed.clear();
        self.base = Arc::new(written);
    }

    fn find(&self, user: &UserName) -> Option<(usize, ShadowEntry)> {
        let &index = self.index.get(user.as_str())?;
        parse_entry(self.line(index)).map(|entry| (index, entry))
    }
}

/// Each line of `raw` with its `\n` (the last one may have none).
fn spans(raw: &[u8]) -> Vec<Range<usize>> {
    let mut spans = Vec::with_capacity(raw.len() / 64 + 1);
    let mut start = 0;
    for line in lines(raw) {
        spans.push(start..start + line.len());
        start += line.len();
    }
    spans
}

/// The user name of a line that is an entry (what `parse_entry` accepts),
/// without building the entry.
fn entry_name(line: &[u8]) -> Option<&str> {
    let content = line.strip_suffix(b"\n").unwrap_or(line);
    let text = std::str::from_utf8(content).ok()?;
    if text.contains('\r') {
        return None;
    }
    let mut fields = text.split(':');
    let name = fields.next()?;
    let hash = fields.next()?;
    let last_change = fields.next()?;
    let not_local = [' ', '\t', '\x0b', '\x0c', '#', '+', '-'];
    if fields.count() != 6 || name.is_empty() || name.starts_with(not_local) || hash.contains('\0')
    {
        return None;
    }
    parse_last_change(last_change).map(|_| name)
}

fn parse_entry(line: &[u8]) -> Option<ShadowEntry> {
    let fields = entry_fields(line, 9)?;
    Some(ShadowEntry {
        name: fields[0].to_owned(),
        hash: LinuxHash::from_field(fields[1])?,
        last_change: parse_last_change(fields[2])?,
    })
}

/// Field 3 as glibc and shadow-utils read it: empty is unset, a negative
/// number (`-1`, which some tools write) is unset too, `0` forces a change, and
/// anything that is not a decimal number makes the line invalid (`None`).
fn parse_last_change(field: &str) -> Option<LastChange> {
    if field.is_empty() {
        return Some(LastChange::Unset);
    }
    let digits = field.strip_prefix('-').unwrap_or(field);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(match field.parse::<i64>().ok()? {
        0 => LastChange::MustChange,
        n if n < 0 => LastChange::Unset,
        n => LastChange::Day(n),
    })
}

/// Field 3 as shadow-utils and pam_unix write it. A computed day of 0 (or a
/// nonsensical negative one) is written empty, because `0` would force a change.
/// A count of days in fields 4 to 8; `None` when empty or unreadable.
fn days(field: &str) -> Option<i64> {
    field.parse::<i64>().ok().filter(|&d| d >= 0)
}

fn last_change_field(last: LastChange) -> String {
    match last {
        LastChange::Unset => String::new(),
        LastChange::MustChange => "0".to_owned(),
        LastChange::Day(n) if n <= 0 => String::new(),
        LastChange::Day(n) => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aging_fields_are_read_and_set_one_by_one() {
        let mut file = ShadowFile::parse(b"a:*:19000:0:99999:7:::\nb:*:19000::::::".to_vec());
        let a = UserName::parse("a").unwrap();
        let b = UserName::parse("b").unwrap();
        assert_eq!(
            file.aging(&a),
            Some(Aging {
                min: Some(0),
                max: Some(99999),
                warn: Some(7)
            })
        );
        assert_eq!(file.aging(&b), Some(Aging::default()));
        assert!(file.set_aging(
            &a,
            Aging {
                min: Some(1),
                max: Some(60),
                warn: None
            }
        ));
        assert!(file.set_aging(
            &b,
            Aging {
                min: None,
                max: Some(60),
                warn: Some(7)
            }
        ));
        assert_eq!(file.to_bytes(), b"a:*:19000:1:60:7:::\nb:*:19000::60:7:::");
    }

    /// Everything a real `/etc/shadow` has been seen to contain.
    const NASTY: &[u8] = b"root:$y$j9T$salt$hash:19000:0:99999:7:::\n\
        # comment: with colons:a:b:c:d:e:f:g\n\
        \n\
        alice:$6$salt$hash:19500:1:60:7:::\n\
        +nisuser::::::::\n\
        -nisblocked::::::::\n\
        +\n\
        eight:!:19000:0:99999:7::\n\
        ten:!:19000:0:99999:7::::\n\
        crlf:*:19000:0:99999:7:::\r\n\
        latin\xe9:*:19000:0:99999:7:::\n\
        badday:*:yesterday:0:99999:7:::\n\
        \x00\xff binary junk\n\
        bob:!$y$j9T$x$y::0:99999:7:::\n\
        alice:*:1:0:99999:7:::\n\
        carol:*:0::::::";

    fn user(name: &str) -> UserName {
        UserName::parse(name).unwrap()
    }

    fn hash(field: &str) -> LinuxHash {
        LinuxHash::from_field(field).unwrap()
    }

    #[test]
    fn unmodified_file_serialises_byte_identical() {
        assert_eq!(ShadowFile::parse(NASTY.to_vec()).to_bytes(), NASTY);
        for edge in [&b""[..], b"\n", b"x", b"root:*:1:0:99999:7:::"] {
            assert_eq!(ShadowFile::parse(edge.to_vec()).to_bytes(), edge);
        }
    }

    #[test]
    fn only_well_formed_local_lines_are_entries() {
        let file = ShadowFile::parse(NASTY.to_vec());
        let entries: Vec<(String, LastChange)> = file
            .entries()
            .into_iter()
            .map(|e| (e.name, e.last_change))
            .collect();
        assert_eq!(
            entries,
            [
                ("root".to_owned(), LastChange::Day(19000)),
                ("alice".to_owned(), LastChange::Day(19500)),
                ("bob".to_owned(), LastChange::Unset),
                ("alice".to_owned(), LastChange::Day(1)),
                ("carol".to_owned(), LastChange::MustChange),
            ]
        );
        assert!(!file.entry(&user("bob")).unwrap().hash.is_usable());
        for ignored in ["eight", "ten", "crlf", "badday", "nisuser"] {
            assert_eq!(file.entry(&user(ignored)), None, "{ignored}");
        }
    }

    /// The index (`entry_name`) takes exactly the lines `parse_entry` reads
    /// as users, whatever a line holds.
    #[test]
    fn the_index_and_the_parser_agree_on_every_line() {
        let odd: &[&[u8]] = &[
            b"n\0ul:*:1::::::\n",
            b"nul:*\0x:1::::::\n",
            b"nul:*:1::::::\0\n",
            b"crlf:*:1::::::\r\n",
            b"short:*:1\n",
            b"long:*:1:::::::\n",
            b"neg:*:-1::::::",
            b"bad:*:1x::::::",
            b"\xff:*:1::::::\n",
            b":*:1::::::\n",
        ];
        for line in lines(NASTY).chain(odd.iter().copied()) {
            assert_eq!(
                entry_name(line),
                parse_entry(line).map(|e| e.name).as_deref(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn written_moves_the_base_and_keeps_the_index() {
        let mut file = ShadowFile::parse(NASTY.to_vec());
        let alice = user("alice");
        file.set_password(&alice, &hash("$y$new"), LastChange::Day(20000));
        let bytes = file.to_bytes();
        file.written(bytes.clone());
        assert_eq!(file.base(), &bytes[..]);
        assert_eq!(file.to_bytes(), bytes);
        assert_eq!(file.entry(&alice).unwrap().hash, hash("$y$new"));
        file.set_password(&alice, &hash("$y$again"), LastChange::MustChange);
        assert_eq!(
            ShadowFile::parse(file.to_bytes())
                .entry(&alice)
                .unwrap()
                .hash,
            hash("$y$again")
        );
    }

    #[test]
    fn entry_is_the_first_of_duplicate_names() {
        let file = ShadowFile::parse(NASTY.to_vec());
        assert_eq!(
            file.entry(&user("alice")).unwrap().last_change,
            LastChange::Day(19500)
        );
    }

    #[test]
    fn set_password_rewrites_only_fields_two_and_three_of_one_line() {
        let mut file = ShadowFile::parse(NASTY.to_vec());
        let new = hash("$y$j9T$new$newhash");
        assert!(file.set_password(&user("alice"), &new, LastChange::Day(20000)));
        let mut want = NASTY.to_vec();
        let at = NASTY
            .windows(b"alice:$6$".len())
            .position(|w| w == b"alice:$6$")
            .unwrap();
        let old_line = b"alice:$6$salt$hash:19500:1:60:7:::\n";
        let new_line = b"alice:$y$j9T$new$newhash:20000:1:60:7:::\n";
        want.splice(at..at + old_line.len(), new_line.iter().copied());
        assert_eq!(file.to_bytes(), want);
        let entry = file.entry(&user("alice")).unwrap();
        assert_eq!(entry.hash, new);
        assert_eq!(entry.last_change, LastChange::Day(20000));
    }

    #[test]
    fn set_password_keeps_a_missing_final_newline() {
        let mut file = ShadowFile::parse(NASTY.to_vec());
        assert!(file.set_password(&user("carol"), &hash("!"), LastChange::Unset));
        assert!(file.to_bytes().ends_with(b"\ncarol:!:::::::"));
    }

    #[test]
    fn last_change_is_written_the_shadow_utils_way() {
        let cases = [
            (LastChange::Unset, "root:$1$x::0:99999:7:::\n"),
            (LastChange::MustChange, "root:$1$x:0:0:99999:7:::\n"),
            (LastChange::Day(0), "root:$1$x::0:99999:7:::\n"),
            (LastChange::Day(-3), "root:$1$x::0:99999:7:::\n"),
            (LastChange::Day(19876), "root:$1$x:19876:0:99999:7:::\n"),
        ];
        for (last, want) in cases {
            let mut file = ShadowFile::parse(b"root:*:19000:0:99999:7:::\n".to_vec());
            assert!(file.set_password(&user("root"), &hash("$1$x"), last));
            assert_eq!(
                String::from_utf8(file.to_bytes()).unwrap(),
                want,
                "{last:?}"
            );
        }
    }

    #[test]
    fn set_password_for_an_unknown_or_ignored_user_changes_nothing() {
        let mut file = ShadowFile::parse(NASTY.to_vec());
        for name in ["nobody", "crlf", "ten", "badday"] {
            assert!(!file.set_password(&user(name), &hash("*"), LastChange::Unset));
        }
        assert_eq!(file.to_bytes(), NASTY);
    }

    #[test]
    fn last_change_field_parsing() {
        assert_eq!(parse_last_change(""), Some(LastChange::Unset));
        assert_eq!(parse_last_change("-1"), Some(LastChange::Unset));
        assert_eq!(parse_last_change("0"), Some(LastChange::MustChange));
        assert_eq!(parse_last_change("00"), Some(LastChange::MustChange));
        assert_eq!(parse_last_change("19000"), Some(LastChange::Day(19000)));
        for bad in ["x", "-", "+5", " 5", "5 ", "99999999999999999999"] {
            assert_eq!(parse_last_change(bad), None, "{bad:?}");
        }
    }
}
