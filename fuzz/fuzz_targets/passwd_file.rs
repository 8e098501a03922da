//! `/etc/passwd` and `/etc/group` as arbitrary bytes: the entries returned are
//! exactly the lines the documented rule accepts, in file order, with their
//! fields as written.
#![no_main]

use credsync_core::system::passwd::{GroupEntry, PasswdEntry, parse_group, parse_passwd};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let want: Vec<PasswdEntry> = local_lines(data, 7)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: id(f[2])?,
                gid: id(f[3])?,
                home: f[5].to_owned(),
                shell: f[6].to_owned(),
            })
        })
        .collect();
    assert_eq!(parse_passwd(data), want);

    let want: Vec<GroupEntry> = local_lines(data, 4)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: id(f[2])?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect();
    assert_eq!(parse_group(data), want);
});

/// The rule, written independently of the parser: lines split after each
/// `\n`; a line counts when it is UTF-8 without `\r`, has exactly `count`
/// fields and a non-empty name that does not start with `#` (glibc skips
/// comments, also after blanks), a blank, or NIS `+`/`-`.
fn local_lines(data: &[u8], count: usize) -> impl Iterator<Item = Vec<&str>> {
    // Splitting on `\n` gives an empty piece after a final `\n`; an empty
    // line is never an entry, so it changes nothing.
    data.split(|&b| b == b'\n').filter_map(move |line| {
        let text = std::str::from_utf8(line).ok()?;
        let fields: Vec<&str> = text.split(':').collect();
        let name = fields[0];
        let local = !text.contains('\r')
            && fields.len() == count
            && !name.is_empty()
            && !name.starts_with(['#', '+', '-'])
            && !name.starts_with(|c: char| c.is_ascii_whitespace() || c == '\x0b');
        local.then_some(fields)
    })
}

/// A numeric id: one or more ASCII digits that fit in a u32.
fn id(field: &str) -> Option<u32> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}
