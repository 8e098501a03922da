//! The PAM client (STUB: interface only).

use crate::account::UserName;
use crate::secret::Password;

/// What `pam_acct_mgmt` said about an account whose password was right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    Valid,
    /// PAM_NEW_AUTHTOK_REQD: expired, allowed through so it can be changed.
    MustChange,
}

#[derive(Debug, thiserror::Error)]
pub enum PamError {
    #[error("authentication failure")]
    AuthFailed,
    #[error("the account is not allowed to log in: {0}")]
    AccountRefused(String),
    #[error("PAM error: {0}")]
    Other(String),
}

pub fn authenticate(
    _service: &str,
    _user: &UserName,
    _ruser: &UserName,
    _password: &Password,
) -> Result<AccountState, PamError> {
    Err(PamError::Other("not built yet".into()))
}
