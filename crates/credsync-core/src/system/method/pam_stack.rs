//! Finds the line of a module a PAM stack would run: the pam_unix line a
//! password change goes through (the first `pam_unix.so` module of type
//! `password`), or the first `pam_faillock.so` of type `auth`, in the stack of
//! a service, with includes expanded in place, read the way libpam reads `/etc/pam.d`
//! (linux-pam `libpam/pam_handlers.c` and `pam_misc.c`, 1.5.2):
//! - the service name is lower-cased and stripped of any directory; a service
//!   without a file uses `other`; files are looked up in `/etc/pam.d`, then in
//!   the vendor directory `/usr/lib/pam.d`;
//! - `#` starts a comment, a trailing `\` joins the next line;
//! - a leading `-` on the type (`-password`) only silences load errors;
//! - `password include X` and `password substack X` read the `password` lines
//!   of X (and `auth include X` the `auth` lines); Debian's `@include X` reads
//!   X in place;
//! - `[...]` is one token (`[success=1 default=ignore]`).
//!
//! Conditional jumps are not followed: the first pam_unix line in file order is
//! the one Debian, Red Hat and SUSE stacks run for a password change.
//!
//! The files are read through [`ConfigFiles`], so the same walk runs over the
//! disk or over an in-memory set of files (the parser's fuzz target).
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::path::{Path, PathBuf};

/// libpam refuses to nest substacks deeper than this (`PAM_SUBSTACK_MAX_LEVEL`);
/// credsync applies it to every kind of include.
const MAX_DEPTH: usize = 16;

/// The most files one search opens. The depth and loop guards alone still let
/// a stack whose files each include the next one many times grow without
/// bound (ten includes a file, sixteen deep, is 10^16 reads); real stacks
/// open a handful.
const MAX_FILES_OPENED: usize = 256;

/// The service libpam falls back to when a service has no file.
const DEFAULT_SERVICE: &str = "other";

/// A `TYPE CONTROL MODULE ARGS` line and the file it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleLine {
    pub file: PathBuf,
    pub args: Vec<String>,
}

/// The `password ... pam_unix.so ARGS` line.
pub type PamUnixLine = ModuleLine;

/// Which line to look for: the module type and the module's file name.
#[derive(Debug, Clone, Copy)]
struct Wanted<'a> {
    kind: &'a str,
    module: &'a str,
}

/// Where the stack's files are read from.
pub trait ConfigFiles {
    /// The text of the regular file at `path`; `None` if there is none or it
    /// cannot be read.
    fn read(&self, path: &Path) -> Option<String>;
    /// A name that is the same for every path of one file, for the loop guard.
    fn identity(&self, path: &Path) -> PathBuf;
}

/// The file system: symlinks resolved, bytes that are not UTF-8 replaced.
struct Disk;

impl ConfigFiles for Disk {
    fn read(&self, path: &Path) -> Option<String> {
        if !path.is_file() {
            return None;
        }
        let bytes = std::fs::read(path).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn identity(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// The pam_unix password line of `service`'s stack under `pam_d`, if any.
pub fn find_pam_unix_password(pam_d: &Path, service: &str) -> Option<PamUnixLine> {
    find_pam_unix_password_in(&Disk, pam_d, service)
}

/// [`find_pam_unix_password`] with the files read from `files`.
pub fn find_pam_unix_password_in(
    files: &impl ConfigFiles,
    pam_d: &Path,
    service: &str,
) -> Option<PamUnixLine> {
    let wanted = Wanted {
        kind: "password",
        module: "pam_unix.so",
    };
    find_in(files, pam_d, service, wanted)
}

/// The first `auth ... pam_faillock.so ARGS` line of `service`'s stack under
/// `pam_d`, if pam_faillock counts failures there at all.
pub fn find_pam_faillock_auth(pam_d: &Path, service: &str) -> Option<ModuleLine> {
    let wanted = Wanted {
        kind: "auth",
        module: "pam_faillock.so",
    };
    find_in(&Disk, pam_d, service, wanted)
}

fn find_in(
    files: &impl ConfigFiles,
    pam_d: &Path,
    service: &str,
    wanted: Wanted<'_>,
) -> Option<ModuleLine> {
    let dirs = ConfigDirs::new(files, pam_d);
    let service = service_name(service);
    let (file, text) = dirs.open(&service).or_else(|| dirs.open(DEFAULT_SERVICE))?;
    let mut chain = Vec::new();
    search(&dirs, wanted, file, &text, &mut chain)
}

/// libpam's `pam_start`: the part after the last `/`, lower-cased.
fn service_name(service: &str) -> String {
    let base = service.rsplit('/').next().unwrap_or_default();
    if base.is_empty() || base == "." || base == ".." {
        DEFAULT_SERVICE.to_owned()
    } else {
        base.to_ascii_lowercase()
    }
}

/// Where config names are looked up, all under the same root as `pam_d`.
struct ConfigDirs<'a, F> {
    files: &'a F,
    root: Option<PathBuf>,
    dirs: Vec<PathBuf>,
    /// Files opened so far, against [`MAX_FILES_OPENED`].
    opened: Cell<usize>,
}

impl<'a, F: ConfigFiles> ConfigDirs<'a, F> {
    fn new(files: &'a F, pam_d: &Path) -> Self {
        // `pam_d` is ROOT/etc/pam.d; absolute includes and the vendor
        // directory are taken under the same ROOT.
        let root = pam_d.parent().and_then(Path::parent).map(Path::to_path_buf);
        let mut dirs = vec![pam_d.to_path_buf()];
        if let Some(root) = &root {
            dirs.push(root.join("usr/lib/pam.d"));
        }
        ConfigDirs {
            files,
            root,
            dirs,
            opened: Cell::new(0),
        }
    }

    /// libpam's `_pam_open_config_file`: an absolute name as is (under the
    /// root), a relative one in each directory in turn. `None` once the
    /// search has opened [`MAX_FILES_OPENED`] files.
    fn open(&self, name: &str) -> Option<(PathBuf, String)> {
        if name.is_empty() || self.opened.get() >= MAX_FILES_OPENED {
            return None;
        }
        self.opened.set(self.opened.get() + 1);
        if let Some(relative) = name.strip_prefix('/') {
            let path = match &self.root {
                Some(root) => root.join(relative),
                None => PathBuf::from(name),
            };
            return self.files.read(&path).map(|text| (path, text));
        }
        self.dirs
            .iter()
            .map(|dir| dir.join(name))
            .find_map(|path| self.files.read(&path).map(|text| (path, text)))
    }
}

/// Walks one file's lines (only those of the wanted type matter),
/// descending into includes. `chain` holds the files being read, to stop
/// include loops.
fn search<F: ConfigFiles>(
    dirs: &ConfigDirs<'_, F>,
    wanted: Wanted<'_>,
    file: PathBuf,
    text: &str,
    chain: &mut Vec<PathBuf>,
) -> Option<ModuleLine> {
    let identity = dirs.files.identity(&file);
    if chain.len() >= MAX_DEPTH || chain.contains(&identity) {
        return None;
    }
    chain.push(identity);
    let found = logical_lines(text).into_iter().find_map(|line| {
        let tokens = tokenize(&line);
        let (first, rest) = tokens.split_first()?;
        if first.eq_ignore_ascii_case("@include") {
            return include(dirs, wanted, rest.first()?, chain);
        }
        let kind = first.strip_prefix('-').unwrap_or(first);
        if !kind.eq_ignore_ascii_case(wanted.kind) {
            return None;
        }
        let [control, module, args @ ..] = rest else {
            return None;
        };
        if control.eq_ignore_ascii_case("include") || control.eq_ignore_ascii_case("substack") {
            return include(dirs, wanted, module, chain);
        }
        let module_file = module.rsplit('/').next().unwrap_or(module);
        (module_file == wanted.module).then(|| ModuleLine {
            file: file.clone(),
            args: args.to_vec(),
        })
    });
    chain.pop();
    found
}

fn include<F: ConfigFiles>(
    dirs: &ConfigDirs<'_, F>,
    wanted: Wanted<'_>,
    name: &str,
    chain: &mut Vec<PathBuf>,
) -> Option<ModuleLine> {
    let (file, text) = dirs.open(name)?;
    search(dirs, wanted, file, &text, chain)
}

/// libpam's `_pam_assemble_line`: blank and comment-only lines are skipped
/// (even inside a continuation), `#` ends a line, and a line ending in `\`
/// continues on the next one.
fn logical_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for raw in text.lines() {
        let s = raw.trim_start_matches([' ', '\t', '\n']);
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        if let Some((before, _comment)) = s.split_once('#') {
            current.push_str(before);
            lines.push(std::mem::take(&mut current));
            continue;
        }
        let trimmed = s.trim_end_matches([' ', '\t', '\n', '\r']);
        match trimmed.strip_suffix('\\') {
            Some(continued) => {
                current.push_str(continued);
                current.push(' ');
            }
            None => {
                current.push_str(s);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    // A continuation cut off by the end of the file is an incomplete line,
    // which libpam refuses too.
    lines
}

/// libpam's `_pam_StrTok`: blank-separated tokens, where `[...]` (with `\]`
/// for a literal `]`) is one token without its brackets.
fn tokenize(line: &str) -> Vec<String> {
    let is_blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|&c| is_blank(c)).is_some() {}
        let Some(first) = chars.next() else {
            return tokens;
        };
        let mut token = String::new();
        if first == '[' {
            while let Some(c) = chars.next() {
                match c {
                    ']' => break,
                    '\\' if chars.peek() == Some(&']') => {
                        token.push(']');
                        chars.next();
                    }
                    _ => token.push(c),
                }
            }
            // libpam ends the token at the `]`; anything glued to it starts
            // the next token.
        } else {
            token.push(first);
            while let Some(c) = chars.next_if(|&c| !is_blank(c)) {
                token.push(c);
            }
        }
        tokens.push(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_joined_and_comments_dropped() {
        let text = "# comment\n\
                    \n\
                    password required \\\n\
                    \x20  pam_unix.so sha512   # trailing\n\
                    auth required pam_deny.so\n";
        assert_eq!(
            logical_lines(text),
            vec![
                "password required  pam_unix.so sha512   ".to_owned(),
                "auth required pam_deny.so".to_owned()
            ]
        );
    }

    #[test]
    fn brackets_make_one_token() {
        assert_eq!(
            tokenize("password\t[success=1 default=ignore]  pam_unix.so obscure yescrypt"),
            vec![
                "password",
                "success=1 default=ignore",
                "pam_unix.so",
                "obscure",
                "yescrypt"
            ]
        );
        assert_eq!(tokenize(r"[a\]b] c"), vec!["a]b", "c"]);
    }

    #[test]
    fn service_names_are_lower_cased_base_names() {
        assert_eq!(service_name("CredSync"), "credsync");
        assert_eq!(service_name("/etc/pam.d/passwd"), "passwd");
        assert_eq!(service_name(".."), "other");
        assert_eq!(service_name(""), "other");
    }

    /// Files in memory that count how often they are read.
    struct Counted {
        files: std::collections::HashMap<PathBuf, String>,
        reads: Cell<usize>,
    }

    impl ConfigFiles for Counted {
        fn read(&self, path: &Path) -> Option<String> {
            self.reads.set(self.reads.get() + 1);
            self.files.get(path).cloned()
        }

        fn identity(&self, path: &Path) -> PathBuf {
            path.to_path_buf()
        }
    }

    #[test]
    fn includes_that_fan_out_stop_after_a_bounded_number_of_files() {
        // credsync includes f0, and each of f0..f3 includes the next ten
        // times: 11111 opens without a bound, and every extra level is ten
        // times more (sixteen levels are 10^16).
        let pam_d = Path::new("/r/etc/pam.d");
        let mut files = std::collections::HashMap::new();
        files.insert(pam_d.join("credsync"), "@include f0\n".to_owned());
        for i in 0..4 {
            let line = format!("@include f{}\n", i + 1);
            files.insert(pam_d.join(format!("f{i}")), line.repeat(10));
        }
        let counted = Counted {
            files,
            reads: Cell::new(0),
        };
        assert_eq!(find_pam_unix_password_in(&counted, pam_d, "credsync"), None);
        // At most 256 opens, each looking in /etc/pam.d, then in
        // /usr/lib/pam.d.
        let reads = counted.reads.get();
        assert!(reads <= 512, "{reads} reads");
    }
}
