//! A PAM service's stack as up to eight arbitrary files, split at NUL bytes
//! and laid out under `/etc/pam.d` and `/usr/lib/pam.d` in memory: the walk
//! that follows `@include`, `include` and `substack` ends, reads a bounded
//! number of files, and finds a pam_unix line only in a file that names one.
#![no_main]

use credsync_core::system::method::pam_stack::{ConfigFiles, find_pam_unix_password_in};
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Where the pieces of the input go, in order.
const LAYOUT: [&str; 8] = [
    "/r/etc/pam.d/credsync",
    "/r/etc/pam.d/other",
    "/r/etc/pam.d/a",
    "/r/etc/pam.d/b",
    "/r/usr/lib/pam.d/b",
    "/r/usr/lib/pam.d/c",
    "/r/etc/pam.d/common-password",
    "/r/etc/pam.d/system-auth",
];

/// Files in memory; paths are resolved lexically (`.` and `..`), as
/// `canonicalize` would resolve them on disk without symlinks.
struct Files {
    files: HashMap<PathBuf, String>,
    reads: Cell<usize>,
}

impl ConfigFiles for Files {
    fn read(&self, path: &Path) -> Option<String> {
        self.reads.set(self.reads.get() + 1);
        self.files.get(&self.identity(path)).cloned()
    }

    fn identity(&self, path: &Path) -> PathBuf {
        let mut resolved = PathBuf::new();
        for part in path.components() {
            match part {
                Component::ParentDir => {
                    resolved.pop();
                }
                Component::CurDir => {}
                other => resolved.push(other),
            }
        }
        resolved
    }
}

fuzz_target!(|data: &[u8]| {
    let files = Files {
        files: data
            .split(|&b| b == 0)
            .zip(LAYOUT)
            .map(|(text, path)| {
                (
                    PathBuf::from(path),
                    String::from_utf8_lossy(text).into_owned(),
                )
            })
            .collect(),
        reads: Cell::new(0),
    };
    let found = find_pam_unix_password_in(&files, Path::new("/r/etc/pam.d"), "credsync");
    // The search's own bound: 256 opens, each trying two directories.
    assert!(files.reads.get() <= 2 * 256, "{} reads", files.reads.get());
    if let Some(line) = found {
        let text = files
            .files
            .get(&files.identity(&line.file))
            .unwrap_or_else(|| panic!("found in {} which is not a file", line.file.display()));
        assert!(
            text.contains("pam_unix.so"),
            "no pam_unix line in {}",
            line.file.display()
        );
    }
});
