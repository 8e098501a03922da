//! The one error type the commands return, and the exit codes it maps to. The
//! codes follow `passwd` where one applies; the README documents them all.
#![forbid(unsafe_code)]

use crate::config::ConfigError;
use crate::store::StoreError;
use crate::store::app_hash::AppHashError;
use crate::system::crypt::CryptError;
use crate::system::pam::PamError;
use crate::system::shadow::ShadowError;

/// Exit codes (README "Exit codes").
pub mod exit {
    pub const SUCCESS: u8 = 0;
    /// Permission denied, or authentication failure.
    pub const DENIED: u8 = 1;
    /// Invalid usage of the command line.
    pub const USAGE: u8 = 2;
    /// Unexpected failure: nothing was changed.
    pub const FAILURE: u8 = 3;
    /// `/etc/passwd` or `/etc/shadow` is missing.
    pub const FILE_MISSING: u8 = 4;
    /// The password files or the store are locked by another program.
    pub const BUSY: u8 = 5;
    /// Invalid argument: unknown user, unusable password or name.
    pub const INVALID: u8 = 6;
    /// The credential store is unsafe, corrupt or from a newer version.
    pub const STORE: u8 = 7;
    /// The new password breaks the password policy (quality, history, or the
    /// minimum age); nothing was changed.
    pub const POLICY: u8 = 8;
    /// The PAM stack failed.
    pub const PAM: u8 = 10;
    /// `verify`: the password is right but must be changed before use.
    pub const MUST_CHANGE: u8 = 11;
    /// `verify`: the password is right but has expired (maximum age passed).
    pub const EXPIRED: u8 = 12;
    /// Locked after repeated failures (pam_faillock's tally); `recover` clears it.
    pub const LOCKED: u8 = 13;

    /// What each code means, as the README's table and the man page say it.
    pub const MEANINGS: &[(u8, &str)] = &[
        (SUCCESS, "success"),
        (
            DENIED,
            "permission denied, authentication failure (wrong password), or (`verify`) the account has expired, is locked in Linux or has no password",
        ),
        (USAGE, "invalid usage of the command line"),
        (
            FAILURE,
            "unexpected failure (nothing was changed, unless the message says otherwise)",
        ),
        (FILE_MISSING, "`/etc/shadow` or `/etc/passwd` is missing"),
        (
            BUSY,
            "the password files are locked by another program (waited 15 s); try again",
        ),
        (
            INVALID,
            "invalid argument: unknown user, unusable user name or password, confirmation differs, bad import line",
        ),
        (
            STORE,
            "the credential store is unsafe (symlink, foreign owner, writable by others), corrupt or from a newer credsync",
        ),
        (
            POLICY,
            "the new password breaks the password policy (every broken rule is listed), or the minimum age has not passed",
        ),
        (PAM, "PAM error"),
        (
            MUST_CHANGE,
            "`verify`: the password is correct but must be changed first",
        ),
        (
            EXPIRED,
            "`verify`: the password is correct but has expired (maximum age passed)",
        ),
        (
            LOCKED,
            "the account is locked after repeated failures (`verify`, self-service `passwd`); the message says for how long; `recover` unlocks it",
        ),
    ];
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Denied(String),
    #[error("authentication failure")]
    AuthFailed,
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Invalid(String),
    #[error("user '{0}' does not exist")]
    UnknownUser(crate::account::UserName),
    #[error("{0} is missing")]
    FileMissing(String),
    #[error("the password is correct but must be changed")]
    MustChange,
    #[error("the password is correct but has expired; it must be changed")]
    Expired,
    /// Every rule the new password breaks, already in the user's terms.
    #[error("{0}")]
    Policy(String),
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    Failure(String),
    /// Something else holds what is needed; try again.
    #[error("{0}")]
    Busy(String),
    #[error(transparent)]
    Shadow(#[from] ShadowError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypt(#[from] CryptError),
    #[error(transparent)]
    AppHash(#[from] AppHashError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Pam(PamError),
}

impl From<PamError> for Error {
    fn from(e: PamError) -> Self {
        match e {
            PamError::AuthFailed => Error::AuthFailed,
            other => Error::Pam(other),
        }
    }
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Denied(_) | Error::AuthFailed => exit::DENIED,
            Error::Usage(_) => exit::USAGE,
            Error::Invalid(_) | Error::UnknownUser(_) => exit::INVALID,
            Error::FileMissing(_) => exit::FILE_MISSING,
            Error::MustChange => exit::MUST_CHANGE,
            Error::Expired => exit::EXPIRED,
            Error::Policy(_) => exit::POLICY,
            Error::Locked(_) => exit::LOCKED,
            Error::Failure(_) | Error::Crypt(_) | Error::AppHash(_) | Error::Config(_) => {
                exit::FAILURE
            }
            Error::Busy(_)
            | Error::Shadow(ShadowError::Busy { .. })
            | Error::Store(StoreError::Busy) => exit::BUSY,
            Error::Shadow(ShadowError::Missing { .. }) => exit::FILE_MISSING,
            Error::Shadow(_) => exit::FAILURE,
            Error::Store(StoreError::Sqlite(e)) if is_busy(e) => exit::BUSY,
            Error::Store(StoreError::Io { .. } | StoreError::Sqlite(_)) => exit::FAILURE,
            Error::Store(_) => exit::STORE,
            Error::Pam(_) => exit::PAM,
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::exit;

    /// The README's table, the man page (generated from `MEANINGS`) and the
    /// code agree: every row of the table is one entry, in order.
    #[test]
    fn the_readme_lists_every_exit_code_as_the_code_means_it() {
        let readme = include_str!("../../../README.md");
        let table = &readme[readme.find("## Exit codes").unwrap()..];
        let table = &table[..table.find("\n## ").unwrap()];
        let rows: Vec<String> = table
            .lines()
            .filter(|line| line.starts_with("| ") && line.as_bytes()[2].is_ascii_digit())
            .map(str::to_owned)
            .collect();
        let expected: Vec<String> = exit::MEANINGS
            .iter()
            .map(|(code, meaning)| format!("| {code} | {meaning} |"))
            .collect();
        assert_eq!(rows, expected);
    }
}
