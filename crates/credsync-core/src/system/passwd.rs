//! `/etc/passwd` and `/etc/group`, read by credsync itself rather than through
//! NSS, so that an alternate root (`--root`) is seen exactly as the files say.
//!
//! Only well-formed local entries are returned: a line counts when it is UTF-8,
//! has exactly the expected number of colon-separated fields (7 for passwd, 4 for
//! group), a non-empty name that does not start with `#` (a comment, even with
//! all the fields of an entry), a blank or a NIS `+`/`-`, and numeric ids.
//! Comments, blank lines, CRLF lines and anything else malformed are skipped,
//! the way glibc's files backend and shadow-utils skip them. These files are only
//! read here; `/etc/shadow` is the one file credsync writes (see `shadow`).

#![forbid(unsafe_code)]

use std::path::Path;

/// One user of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Field 6, the home directory, as written (may be empty).
    pub home: String,
    /// Field 7, the login shell, as written (empty means `/bin/sh`).
    pub shell: String,
}

/// One group of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    /// Field 4 split on `,`; empty items (e.g. a trailing comma) are dropped.
    pub members: Vec<String>,
}

/// The lines of a passwd-style file, each with its terminating `\n` if it has
/// one (the last line may not). Concatenating them gives back the input exactly.
pub(crate) fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes.split_inclusive(|&b| b == b'\n')
}

/// The fields of one passwd-style line (`line` may end in `\n`), or `None` if
/// the line is not a local entry with exactly `count` fields: not UTF-8, a `\r`
/// anywhere (CRLF files), an empty name, a commented-out line, or a NIS `+`/`-`
/// name.
///
/// glibc skips leading blanks and then a line starting with `#`, so
/// `#old:x:1000:1000::/home/old:/bin/sh` is no account of uid 1000. A name
/// starting with a blank is refused too: no valid user name does.
pub(crate) fn entry_fields(line: &[u8], count: usize) -> Option<Vec<&str>> {
    let content = line.strip_suffix(b"\n").unwrap_or(line);
    let text = std::str::from_utf8(content).ok()?;
    if text.contains('\r') {
        return None;
    }
    let fields: Vec<&str> = text.split(':').collect();
    let name = fields[0];
    let not_local = [' ', '\t', '\x0b', '\x0c', '#', '+', '-'];
    if fields.len() != count || name.is_empty() || name.starts_with(not_local) {
        return None;
    }
    Some(fields)
}

/// A numeric id as passwd and group write it: decimal digits only.
fn parse_id(field: &str) -> Option<u32> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse().ok()
}

/// Every well-formed entry of a passwd file, in file order.
pub fn parse_passwd(bytes: &[u8]) -> Vec<PasswdEntry> {
    lines(bytes)
        .filter_map(|line| {
            let f = entry_fields(line, 7)?;
            Some(PasswdEntry {
                name: f[0].to_owned(),
                uid: parse_id(f[2])?,
                gid: parse_id(f[3])?,
                home: f[5].to_owned(),
                shell: f[6].to_owned(),
            })
        })
        .collect()
}

/// Every well-formed entry of a group file, in file order.
pub fn parse_group(bytes: &[u8]) -> Vec<GroupEntry> {
    lines(bytes)
        .filter_map(|line| {
            let f = entry_fields(line, 4)?;
            Some(GroupEntry {
                name: f[0].to_owned(),
                gid: parse_id(f[2])?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

pub fn read_passwd(path: &Path) -> std::io::Result<Vec<PasswdEntry>> {
    Ok(parse_passwd(&std::fs::read(path)?))
}

pub fn read_group(path: &Path) -> std::io::Result<Vec<GroupEntry>> {
    Ok(parse_group(&std::fs::read(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        \n\
        alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n\
        +nisuser::::::\n\
        -blocked:x:1:1:::\n\
        short:x:1001:1001:/home/short:/bin/sh\n\
        long:x:1002:1002::/home/long:/bin/sh:extra\n\
        crlf:x:1003:1003::/home/crlf:/bin/sh\r\n\
        badid:x:-1:1004::/home/badid:/bin/sh\n\
        latin\xe9:x:1005:1005::/home/l:/bin/sh\n\
        #old:x:1000:1000::/home/old:/bin/sh\n\
        \x20 # old:x:1000:1000::/home/old:/bin/sh\n\
        \x20alice:x:1000:1000::/home/alice:/bin/sh\n\
        bob:x:1006:100::/home/bob:";

    #[test]
    fn passwd_keeps_only_well_formed_local_entries() {
        let entries = parse_passwd(PASSWD);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["root", "alice", "bob"]);
        assert_eq!(
            entries[1],
            PasswdEntry {
                name: "alice".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/alice".into(),
                shell: "/bin/bash".into(),
            }
        );
        // The last line has no newline and an empty shell.
        assert_eq!(entries[2].uid, 1006);
        assert_eq!(entries[2].shell, "");
    }

    #[test]
    fn a_commented_out_account_is_no_account() {
        // glibc's getpwuid(1000) skips the comment and finds alice.
        let entries = parse_passwd(
            b"#old:x:1000:1000::/home/old:/bin/sh\n\
              \t#old2:x:1000:1000::/home/old:/bin/sh\n\
              alice:x:1000:1000::/home/alice:/bin/bash\n",
        );
        let first = entries.iter().find(|e| e.uid == 1000).unwrap();
        assert_eq!(first.name, "alice");
        assert_eq!(entries.len(), 1);
        let groups = parse_group(b"#appsvc:x:999:eve\nappsvc:x:999:svc\n");
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].members, ["svc"]);
    }

    #[test]
    fn group_members_are_split_and_malformed_lines_skipped() {
        let groups =
            parse_group(b"root:x:0:\nadm:x:4:syslog,alice,\n+:::\nbad:x:5\nwheel:x:10:bob");
        assert_eq!(
            groups,
            [
                GroupEntry {
                    name: "root".into(),
                    gid: 0,
                    members: vec![],
                },
                GroupEntry {
                    name: "adm".into(),
                    gid: 4,
                    members: vec!["syslog".into(), "alice".into()],
                },
                GroupEntry {
                    name: "wheel".into(),
                    gid: 10,
                    members: vec!["bob".into()],
                },
            ]
        );
    }

    #[test]
    fn lines_round_trip_exactly() {
        let joined: Vec<u8> = lines(PASSWD).flatten().copied().collect();
        assert_eq!(joined, PASSWD);
    }
}
