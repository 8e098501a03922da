//! The LD_PRELOAD shims of `tests/shim/`, compiled with the system's C
//! compiler into Cargo's scratch directory for the tests that load them.
//! Without a C compiler those tests fail, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles `tests/shim/NAME.c` (with `libs` to link) into `NAME.so` and
/// returns its path.
pub fn build(name: &str, libs: &[&str]) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/shim/{name}.c"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let built = dir.join(format!("{name}.so"));
    // Built under a name of its own, then renamed: another test binary may
    // be loading the previous one right now.
    let fresh = dir.join(format!("{name}.{}.so", std::process::id()));
    let cc = Command::new("cc")
        .args([
            "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
        ])
        .arg(&fresh)
        .arg(&source)
        .args(libs)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run cc to build the {name} shim ({e}); apt-get install gcc")
        });
    assert!(
        cc.status.success(),
        "cc could not build {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&cc.stderr)
    );
    std::fs::rename(&fresh, &built).unwrap();
    built
}
