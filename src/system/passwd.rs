//! `/etc/passwd` and `/etc/group`, read by credsync itself (STUB).

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

pub fn parse_passwd(_bytes: &[u8]) -> Vec<PasswdEntry> {
    Vec::new()
}

pub fn parse_group(_bytes: &[u8]) -> Vec<GroupEntry> {
    Vec::new()
}

pub fn read_passwd(path: &Path) -> std::io::Result<Vec<PasswdEntry>> {
    Ok(parse_passwd(&std::fs::read(path)?))
}

pub fn read_group(path: &Path) -> std::io::Result<Vec<GroupEntry>> {
    Ok(parse_group(&std::fs::read(path)?))
}
