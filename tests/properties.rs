//! Properties of the password-file parsers over generated files: everything
//! real `/etc/shadow` and `/etc/passwd` files have been seen to hold (comments,
//! blank lines, NIS `+`/`-` lines, too many or too few fields, CRLF endings, no
//! final newline, bytes that are not UTF-8) in random order and mix.
//!
//! Each file is generated together with its model: which lines are entries, and
//! for whom. The parsers must agree with the model, write back every byte they
//! read, and change exactly one line when one password is set.

use credsync_core::account::UserName;
use credsync_core::system::crypt::LinuxHash;
use credsync_core::system::passwd::{PasswdEntry, parse_passwd};
use credsync_core::system::shadow::{Aging, LastChange, ShadowFile};
use proptest::prelude::*;
use proptest::sample::Index;

/// One line of a generated file, without its ending, and the user it is an
/// entry for if the parser must read it as one.
#[derive(Debug, Clone)]
struct Line<T> {
    text: Vec<u8>,
    entry: Option<T>,
}

impl<T> Line<T> {
    fn other(text: impl Into<Vec<u8>>) -> Self {
        Line {
            text: text.into(),
            entry: None,
        }
    }
}

/// A generated file: its lines, each with its ending.
#[derive(Debug, Clone)]
struct File<T> {
    lines: Vec<(Line<T>, &'static [u8])>,
}

impl<T> File<T> {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (line, ending) in &self.lines {
            out.extend_from_slice(&line.text);
            out.extend_from_slice(ending);
        }
        out
    }
}

/// Lines with endings: `\n` or `\r\n` (a CRLF line is never an entry), and the
/// last one possibly without any.
fn file_of<T: Clone + std::fmt::Debug + 'static>(
    line: impl Strategy<Value = Line<T>>,
    max_lines: usize,
) -> impl Strategy<Value = File<T>> {
    let ending = prop_oneof![4 => Just(&b"\n"[..]), 1 => Just(&b"\r\n"[..])];
    (
        prop::collection::vec((line, ending), 0..max_lines),
        any::<bool>(),
    )
        .prop_map(|(mut lines, unterminated)| {
            if unterminated && let Some((_, ending)) = lines.last_mut() {
                *ending = b"";
            }
            for (line, ending) in &mut lines {
                if *ending == b"\r\n" {
                    line.entry = None;
                }
            }
            File { lines }
        })
}

/// Names that repeat often (so files have duplicate entries) and others.
fn user_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("root".to_owned()),
        Just("alice".to_owned()),
        Just("bob".to_owned()),
        "[a-z_][a-z0-9_.-]{0,10}[$]?",
    ]
}

/// A field that holds no `:` and no line break.
fn field() -> impl Strategy<Value = String> {
    "[^:\n\r]{0,6}"
}

/// Everything a local line is not: comments, blank, NIS, junk without `:`.
fn not_an_entry<T: Clone + std::fmt::Debug>() -> impl Strategy<Value = Line<T>> {
    prop_oneof![
        "#[^\n]{0,40}".prop_map(Line::other),
        Just(Line::other("")),
        "[+-][a-z]{0,6}(:[^:\n\r]{0,4}){0,8}".prop_map(Line::other),
        prop::collection::vec(
            any::<u8>().prop_filter("no : or \\n", |&b| b != b':' && b != b'\n'),
            0..40
        )
        .prop_map(Line::other),
    ]
}

/// An entry commented out (`#`, blanks before it allowed) or indented: glibc
/// reads neither as the user.
fn commented<T: Clone + std::fmt::Debug>(
    entry: impl Strategy<Value = Line<T>>,
) -> impl Strategy<Value = Line<T>> {
    let prefix = prop_oneof![Just("#"), Just("# "), Just("  #"), Just("\t"), Just(" ")];
    (prefix, entry).prop_map(|(prefix, line)| Line::other([prefix.as_bytes(), &line.text].concat()))
}

/// Enough cases to run in a few seconds; the fuzz targets go deeper. A
/// failure prints its minimal input instead of writing it into the tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- /etc/shadow ----------------------------------------------------------------

/// A password field `LinuxHash` accepts.
fn hash_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("*".to_owned()),
        Just("!".to_owned()),
        "!?[$]y[$]j9T[$][./A-Za-z0-9]{1,22}[$][./A-Za-z0-9]{1,43}",
        "[^:\n\r\0]{0,20}",
    ]
}

/// Field 3 and how it must be read; `None` for a value that makes the line
/// invalid.
fn day_field() -> impl Strategy<Value = (String, Option<LastChange>)> {
    prop_oneof![
        Just((String::new(), Some(LastChange::Unset))),
        Just(("0".to_owned(), Some(LastChange::MustChange))),
        (1i64..100_000).prop_map(|d| (d.to_string(), Some(LastChange::Day(d)))),
        (1i64..1000).prop_map(|d| (format!("-{d}"), Some(LastChange::Unset))),
        prop_oneof![
            Just("yesterday"),
            Just("-"),
            Just("+5"),
            Just(" 5"),
            Just("99999999999999999999")
        ]
        .prop_map(|bad| (bad.to_owned(), None)),
    ]
}

/// A 9-field line: an entry unless its day field is invalid.
fn shadow_entry() -> impl Strategy<Value = Line<String>> {
    (
        user_name(),
        hash_field(),
        day_field(),
        prop::collection::vec(field(), 6),
    )
        .prop_map(|(name, hash, (day, last), rest)| Line {
            text: format!("{name}:{hash}:{day}:{}", rest.join(":")).into_bytes(),
            entry: last.map(|_| name),
        })
}

/// A user's line with too few or too many fields, or a byte that is not UTF-8.
fn shadow_malformed() -> impl Strategy<Value = Line<String>> {
    prop_oneof![
        (user_name(), prop::collection::vec(field(), 1..8))
            .prop_map(|(name, rest)| Line::other(format!("{name}:{}", rest.join(":")))),
        (user_name(), prop::collection::vec(field(), 9..12))
            .prop_map(|(name, rest)| Line::other(format!("{name}:{}", rest.join(":")))),
        user_name().prop_map(|name| Line::other(format!("{name}:*\u{0}:19000:0:99999:7:::"))),
        user_name().prop_map(|name| {
            let mut text = format!("{name}:*:19000:0:99999:7:::").into_bytes();
            text.insert(name.len() + 1, 0xff);
            Line::other(text)
        }),
    ]
}

fn shadow_file() -> impl Strategy<Value = File<String>> {
    let line = prop_oneof![
        4 => shadow_entry(),
        1 => shadow_malformed(),
        1 => commented(shadow_entry()),
        2 => not_an_entry(),
    ];
    file_of(line, 24)
}

fn last_change() -> impl Strategy<Value = LastChange> {
    prop_oneof![
        Just(LastChange::Unset),
        Just(LastChange::MustChange),
        (1i64..100_000).prop_map(LastChange::Day),
        any::<i64>().prop_map(LastChange::Day),
    ]
}

/// Bytes biased towards the separators the parser cares about.
fn separator_heavy_bytes() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        3 => Just(b':'),
        2 => Just(b'\n'),
        1 => Just(b'\r'),
        1 => Just(b'+'),
        1 => Just(b'#'),
        4 => b'a'..=b'c',
        2 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..400)
}

/// Field 3 as credsync writes it: a computed day of 0 or less is empty.
fn written_day(last: LastChange) -> String {
    match last {
        LastChange::MustChange => "0".to_owned(),
        LastChange::Day(d) if d > 0 => d.to_string(),
        _ => String::new(),
    }
}

proptest! {
    #![proptest_config(config())]

    /// A shadow file is written back exactly as it was read, whatever it holds.
    #[test]
    fn shadow_parse_then_write_is_byte_identical(file in shadow_file()) {
        let bytes = file.bytes();
        prop_assert_eq!(ShadowFile::parse(bytes.clone()).to_bytes(), bytes);
    }

    /// The same holds for bytes that follow no line format at all.
    #[test]
    fn shadow_round_trip_holds_for_arbitrary_bytes(
        bytes in prop_oneof![separator_heavy_bytes(), prop::collection::vec(any::<u8>(), 0..400)],
    ) {
        prop_assert_eq!(ShadowFile::parse(bytes.clone()).to_bytes(), bytes);
    }

    /// Exactly the lines the model calls entries are found, the first of a
    /// name winning.
    #[test]
    fn shadow_entries_are_the_well_formed_local_lines(file in shadow_file()) {
        let parsed = ShadowFile::parse(file.bytes());
        for (line, _) in &file.lines {
            let Some(name) = line.entry.as_deref() else { continue };
            let first = file.lines.iter().find(|(l, _)| l.entry.as_deref() == Some(name));
            let (first, _) = first.unwrap();
            let text = std::str::from_utf8(&first.text).unwrap();
            let fields: Vec<&str> = text.split(':').collect();
            let entry = parsed.entry(&UserName::parse(name).unwrap());
            let entry = entry.unwrap_or_else(|| panic!("no entry for {name:?}"));
            prop_assert_eq!(entry.hash.as_str(), fields[1]);
        }
        for (line, _) in &file.lines {
            let name = line.text.split(|&b| b == b':').next().unwrap();
            let Ok(user) = UserName::parse(&String::from_utf8_lossy(name)) else { continue };
            let is_entry = file.lines.iter().any(|(l, _)| l.entry.as_deref() == Some(user.as_str()));
            prop_assert_eq!(parsed.entry(&user).is_some(), is_entry, "{}", user);
        }
    }

    /// Setting one user's password rewrites fields 2 and 3 of that user's
    /// first entry and leaves every other line, and that line's other fields
    /// and ending, byte-identical.
    #[test]
    fn changing_one_password_alters_no_other_line(
        file in shadow_file(),
        pick in any::<Index>(),
        hash in hash_field(),
        last in last_change(),
    ) {
        let users: Vec<&str> = file.lines.iter().filter_map(|(l, _)| l.entry.as_deref()).collect();
        prop_assume!(!users.is_empty());
        let user = UserName::parse(users[pick.index(users.len())]).unwrap();
        let hash = LinuxHash::from_field(&hash).unwrap();

        let mut parsed = ShadowFile::parse(file.bytes());
        prop_assert!(parsed.set_password(&user, &hash, last));

        let changed_at = file
            .lines
            .iter()
            .position(|(l, _)| l.entry.as_deref() == Some(user.as_str()))
            .unwrap();
        let mut want = File { lines: file.lines.clone() };
        let (line, _) = &mut want.lines[changed_at];
        let text = String::from_utf8(line.text.clone()).unwrap();
        let fields: Vec<&str> = text.split(':').collect();
        let day = written_day(last);
        let mut new_fields = vec![fields[0], hash.as_str(), &day];
        new_fields.extend(&fields[3..]);
        line.text = new_fields.join(":").into_bytes();
        let (got, want) = (parsed.to_bytes(), want.bytes());
        prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
    }

    /// Setting one user's aging fields rewrites fields 4 to 6 of that user's
    /// first entry where a value is given, and no other byte.
    #[test]
    fn changing_one_users_aging_alters_no_other_line(
        file in shadow_file(),
        pick in any::<Index>(),
        days in prop::array::uniform3(prop::option::of(0i64..100_000)),
    ) {
        let users: Vec<&str> = file.lines.iter().filter_map(|(l, _)| l.entry.as_deref()).collect();
        prop_assume!(!users.is_empty());
        let user = UserName::parse(users[pick.index(users.len())]).unwrap();
        let [min, max, warn] = days;

        let mut parsed = ShadowFile::parse(file.bytes());
        let aging = Aging { min, max, warn };
        prop_assert!(parsed.set_aging(&user, aging));

        let changed_at = file
            .lines
            .iter()
            .position(|(l, _)| l.entry.as_deref() == Some(user.as_str()))
            .unwrap();
        let mut want = File { lines: file.lines.clone() };
        let (line, _) = &mut want.lines[changed_at];
        let text = String::from_utf8(line.text.clone()).unwrap();
        let mut fields: Vec<String> = text.split(':').map(str::to_owned).collect();
        for (slot, value) in [(3, min), (4, max), (5, warn)] {
            if let Some(d) = value {
                fields[slot] = d.to_string();
            }
        }
        line.text = fields.join(":").into_bytes();
        let (got, want) = (parsed.to_bytes(), want.bytes());
        prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
    }

    /// Setting the password of a user without an entry (unknown, or only on
    /// lines that are not entries) changes no byte.
    #[test]
    fn changing_a_user_without_an_entry_changes_nothing(
        file in shadow_file(),
        name in user_name(),
        last in last_change(),
    ) {
        prop_assume!(!file.lines.iter().any(|(l, _)| l.entry.as_deref() == Some(name.as_str())));
        let bytes = file.bytes();
        let mut parsed = ShadowFile::parse(bytes.clone());
        let hash = LinuxHash::from_field("$y$j9T$salt$hash").unwrap();
        prop_assert!(!parsed.set_password(&UserName::parse(&name).unwrap(), &hash, last));
        prop_assert_eq!(parsed.to_bytes(), bytes);
    }
}

// ---- /etc/passwd -----------------------------------------------------------------

/// A numeric id field and the id it holds; `None` makes the line invalid.
fn id_field() -> impl Strategy<Value = (String, Option<u32>)> {
    prop_oneof![
        4 => any::<u32>().prop_map(|n| (n.to_string(), Some(n))),
        1 => prop_oneof![
            Just("-1"),
            Just(""),
            Just("12a"),
            Just("+7"),
            Just("4294967296"),
            Just(" 1")
        ]
        .prop_map(|bad| (bad.to_owned(), None)),
    ]
}

/// A 7-field line: an entry unless an id is invalid.
fn passwd_entry() -> impl Strategy<Value = Line<PasswdEntry>> {
    (
        user_name(),
        field(),
        id_field(),
        id_field(),
        field(),
        field(),
        field(),
    )
        .prop_map(
            |(name, password, (uid_text, uid), (gid_text, gid), gecos, home, shell)| {
                let text =
                    format!("{name}:{password}:{uid_text}:{gid_text}:{gecos}:{home}:{shell}");
                let entry = uid.zip(gid).map(|(uid, gid)| PasswdEntry {
                    name,
                    uid,
                    gid,
                    home,
                    shell,
                });
                Line {
                    text: text.into_bytes(),
                    entry,
                }
            },
        )
}

fn passwd_file() -> impl Strategy<Value = File<PasswdEntry>> {
    let malformed = (user_name(), prop::collection::vec(field(), 1..10))
        .prop_filter("not 7 fields", |(_, rest)| rest.len() != 6)
        .prop_map(|(name, rest)| Line::other(format!("{name}:{}", rest.join(":"))));
    let line = prop_oneof![
        4 => passwd_entry(),
        1 => malformed,
        1 => commented(passwd_entry()),
        2 => not_an_entry(),
    ];
    file_of(line, 24)
}

proptest! {
    #![proptest_config(config())]

    /// `/etc/passwd` yields exactly the model's entries, in file order, with
    /// their fields as written: comments, NIS and CRLF lines, wrong field
    /// counts and bad ids are skipped.
    #[test]
    fn passwd_entries_are_the_well_formed_local_lines(file in passwd_file()) {
        let want: Vec<PasswdEntry> = file.lines.iter().filter_map(|(l, _)| l.entry.clone()).collect();
        prop_assert_eq!(parse_passwd(&file.bytes()), want);
    }

    /// Whatever the bytes, every entry read is a line of the file as written.
    #[test]
    fn passwd_entries_come_from_lines_of_the_file(bytes in separator_heavy_bytes()) {
        let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        for entry in parse_passwd(&bytes) {
            let prefix = format!("{}:", entry.name);
            let suffix = format!(":{}:{}", entry.home, entry.shell);
            prop_assert!(
                lines.iter().any(|l| l.starts_with(prefix.as_bytes()) && l.ends_with(suffix.as_bytes())),
                "{:?} is not a line of the file", entry
            );
        }
    }
}
