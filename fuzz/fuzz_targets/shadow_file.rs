//! `/etc/shadow` as arbitrary bytes: parsing and writing back gives the same
//! bytes, entries are exactly the lines the documented rule accepts, and
//! setting a password (fields 2 and 3) or the aging fields (4 to 6) rewrites
//! only those fields of the user's first entry and leaves every other line's
//! bytes unchanged.
#![no_main]

use credsync_core::account::UserName;
use credsync_core::system::crypt::LinuxHash;
use credsync_core::system::shadow::{Aging, LastChange, ShadowFile};
use libfuzzer_sys::fuzz_target;

/// How many distinct names of one input are tried, to bound a run.
const MAX_USERS: usize = 16;

fuzz_target!(|data: &[u8]| {
    let file = ShadowFile::parse(data.to_vec());
    assert_eq!(file.to_bytes(), data, "parse -> to_bytes is not identical");

    let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
    let mut names: Vec<UserName> = Vec::new();
    for line in &lines {
        let first = line.split(|&b| b == b':').next().unwrap_or_default();
        if let Some(name) = std::str::from_utf8(first)
            .ok()
            .and_then(|n| UserName::parse(n).ok())
            && !names.contains(&name)
        {
            names.push(name);
        }
        if names.len() == MAX_USERS {
            break;
        }
    }
    // Hashes to write: fixed ones, and every password field of the file that
    // a hash may be.
    let mut hashes: Vec<LinuxHash> = ["$y$j9T$salt$newhash", "!", ""]
        .iter()
        .filter_map(|h| LinuxHash::from_field(h))
        .collect();
    hashes.extend(
        lines
            .iter()
            .filter_map(|l| l.split(|&b| b == b':').nth(1))
            .filter_map(|f| std::str::from_utf8(f).ok())
            .filter_map(LinuxHash::from_field)
            .take(4),
    );
    let days = [
        LastChange::Unset,
        LastChange::MustChange,
        LastChange::Day(0),
        LastChange::Day(-3),
        LastChange::Day(20000),
        LastChange::Day(i64::MAX),
        LastChange::Day(i64::MIN),
    ];

    for (n, user) in names.iter().enumerate() {
        let first = lines.iter().position(|l| oracle_entry(l, user).is_some());
        let before = file.entry(user);
        match first {
            Some(k) => {
                let (hash, last) = oracle_entry(lines[k], user).unwrap();
                let before = before.expect("an entry the rule accepts was not found");
                assert_eq!(before.hash.as_str(), hash);
                assert_eq!(before.last_change, last);
            }
            None => assert_eq!(before, None, "a line the rule rejects was read"),
        }

        check_aging(&file, data, &lines, first, user, n);

        let hash = &hashes[n % hashes.len()];
        let last = days[n % days.len()];
        let mut changed = file.clone();
        assert_eq!(changed.set_password(user, hash, last), first.is_some());
        let after = changed.to_bytes();
        let Some(k) = first else {
            assert_eq!(after, data, "a failed change altered the file");
            continue;
        };
        let after_lines: Vec<&[u8]> = after.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(after_lines.len(), lines.len(), "the line count changed");
        for (i, (old, new)) in lines.iter().zip(&after_lines).enumerate() {
            if i != k {
                assert_eq!(old, new, "line {i} changed, but only line {k} may");
            }
        }
        assert_eq!(after_lines[k], expected_line(lines[k], hash, last));
        let entry = changed.entry(user).expect("the changed entry is gone");
        assert_eq!(&entry.hash, hash);
        let read_back = match last {
            LastChange::Day(d) if d <= 0 => LastChange::Unset,
            other => other,
        };
        assert_eq!(entry.last_change, read_back);
    }
});

/// The documented rule for an entry, written independently of the parser:
/// UTF-8 without `\r`, exactly 9 fields, the name `user`, a password field
/// without NUL, a last-change field that is empty or `-`? then digits fitting
/// an i64. Returns the password field and field 3 read.
fn oracle_entry<'a>(line: &'a [u8], user: &UserName) -> Option<(&'a str, LastChange)> {
    let content = line.strip_suffix(b"\n").unwrap_or(line);
    let text = std::str::from_utf8(content).ok()?;
    if text.contains('\r') {
        return None;
    }
    let fields: Vec<&str> = text.split(':').collect();
    if fields.len() != 9 || fields[0] != user.as_str() || fields[1].contains('\0') {
        return None;
    }
    let day = fields[2];
    let last = if day.is_empty() {
        LastChange::Unset
    } else {
        let digits = day.strip_prefix('-').unwrap_or(day);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match day.parse::<i64>().ok()? {
            0 => LastChange::MustChange,
            n if n < 0 => LastChange::Unset,
            n => LastChange::Day(n),
        }
    };
    Some((fields[1], last))
}

/// `line` with fields 2 and 3 replaced the way shadow-utils writes them.
fn expected_line(line: &[u8], hash: &LinuxHash, last: LastChange) -> Vec<u8> {
    let (content, ending) = match line.strip_suffix(b"\n") {
        Some(content) => (content, &b"\n"[..]),
        None => (line, &b""[..]),
    };
    let mut fields: Vec<Vec<u8>> = content.split(|&b| b == b':').map(<[u8]>::to_vec).collect();
    fields[1] = hash.as_str().as_bytes().to_vec();
    fields[2] = match last {
        LastChange::MustChange => b"0".to_vec(),
        LastChange::Day(d) if d > 0 => d.to_string().into_bytes(),
        _ => Vec::new(),
    };
    let mut out = fields.join(&b':');
    out.extend_from_slice(ending);
    out
}

/// `set_aging` on `user` (the `n`th name tried) changes fields 4 to 6 of
/// line `first` where a value is given, and nothing else.
fn check_aging(
    file: &ShadowFile,
    data: &[u8],
    lines: &[&[u8]],
    first: Option<usize>,
    user: &UserName,
    n: usize,
) {
    let values = [
        None,
        Some(0),
        Some(7),
        Some(99999),
        Some(-1),
        Some(i64::MAX),
    ];
    let aging = Aging {
        min: values[n % values.len()],
        max: values[(n + 2) % values.len()],
        warn: values[(n + 3) % values.len()],
    };
    let mut changed = file.clone();
    assert_eq!(changed.set_aging(user, aging), first.is_some());
    let after = changed.to_bytes();
    let Some(k) = first else {
        assert_eq!(after, data, "a failed aging change altered the file");
        return;
    };
    let after_lines: Vec<&[u8]> = after.split_inclusive(|&b| b == b'\n').collect();
    assert_eq!(after_lines.len(), lines.len(), "the line count changed");
    for (i, (old, new)) in lines.iter().zip(&after_lines).enumerate() {
        if i != k {
            assert_eq!(old, new, "line {i} changed, but only line {k} may");
        }
    }
    let (content, ending) = match lines[k].strip_suffix(b"\n") {
        Some(content) => (content, &b"\n"[..]),
        None => (lines[k], &b""[..]),
    };
    let mut fields: Vec<Vec<u8>> = content.split(|&b| b == b':').map(<[u8]>::to_vec).collect();
    for (slot, value) in [(3, aging.min), (4, aging.max), (5, aging.warn)] {
        if let Some(days) = value {
            fields[slot] = days.to_string().into_bytes();
        }
    }
    let mut want = fields.join(&b':');
    want.extend_from_slice(ending);
    assert_eq!(after_lines[k], want);
    assert_eq!(
        changed.entry(user),
        file.entry(user),
        "fields 2 and 3 changed"
    );
}
