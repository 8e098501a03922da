//! Named points in the write path where a test build can stop the process
//! dead, to prove that a crash at any step leaves both stores recoverable.
//!
//! Built only with the `fault-injection` cargo feature, which the test suite
//! turns on. Then `CREDSYNC_FAULT=<point>` makes the process `abort()` on
//! reaching that point (no unwinding, no destructors: locks, temporaries and
//! intents stay exactly as a power cut would leave them), and
//! `CREDSYNC_FAULT=<point>:stop` makes it stop itself (SIGSTOP) there, holding
//! whatever it holds, until a test sends SIGCONT. Without the feature
//! `reached` is an empty inline function and the variable means nothing.
#![forbid(unsafe_code)]

/// Every point, in the order a change passes them. `docs/reliability.md`
/// says what each one shows.
pub const POINTS: [&str; 11] = [
    "locked",
    "intent-recorded",
    "backup-written",
    "backup-synced",
    "backup-renamed",
    "shadow-temp-written",
    "shadow-temp-synced",
    "shadow-renamed",
    "directory-synced",
    "record-uncommitted",
    "intent-cleared",
];

/// The points of a change pam_credsync follows (`pam_change`): PAM has
/// written shadow, the record not yet.
pub const PAM_POINTS: [&str; 1] = ["pam-record-unwritten"];

/// The variable that names the point to abort at.
pub const VARIABLE: &str = "CREDSYNC_FAULT";

/// Aborts here if this test build was asked to.
#[cfg(feature = "fault-injection")]
pub fn reached(point: &'static str) {
    debug_assert!(
        POINTS.contains(&point) || PAM_POINTS.contains(&point),
        "unlisted fault point {point}"
    );
    let Some(wanted) = std::env::var_os(VARIABLE) else {
        return;
    };
    let wanted = wanted.to_string_lossy();
    if wanted == point {
        std::process::abort();
    }
    if wanted.strip_suffix(":stop") == Some(point) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
    }
}

#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn reached(_point: &'static str) {}
