//! The application's own password hash: Argon2id in PHC string form
//! (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), which applications in any
//! language can check with a stock Argon2 library.
#![forbid(unsafe_code)]

use crate::secret::Password;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use serde::Deserialize;

/// Argon2id cost; the defaults are the `argon2` crate's (and OWASP's minimum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Cost {
    fn default() -> Self {
        Argon2Cost {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: Params::DEFAULT_P_COST,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppHashError {
    #[error("the Argon2 cost in the configuration is invalid: {0}")]
    Cost(String),
    #[error("Argon2 hashing failed: {0}")]
    Hashing(String),
}

impl Argon2Cost {
    fn hasher(&self) -> Result<Argon2<'static>, AppHashError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| AppHashError::Cost(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Checks the cost at configuration time so a bad value fails before any write.
    pub fn validate(&self) -> Result<(), AppHashError> {
        self.hasher().map(drop)
    }

    /// A fresh Argon2id PHC string for `password`, with a random salt.
    pub fn hash(&self, password: &Password) -> Result<String, AppHashError> {
        self.hasher()?
            .hash_password(password.as_bytes())
            .map(|phc| phc.to_string())
            .map_err(|e| AppHashError::Hashing(e.to_string()))
    }
}

/// Checks `password` against a stored PHC string, with the cost the string names.
pub fn verify(password: &Password, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Cost {
        Argon2Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn default_cost_is_the_argon2_crates() {
        let cost = Argon2Cost::default();
        assert_eq!(
            (cost.memory_kib, cost.iterations, cost.parallelism),
            (19456, 2, 1)
        );
    }

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify() {
        let pw = Password::new(b"correct horse".to_vec()).unwrap();
        let phc = cheap().hash(&pw).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(verify(&pw, &phc));
        assert!(!verify(
            &Password::new(b"correct hors".to_vec()).unwrap(),
            &phc
        ));
        assert!(!verify(&pw, "not a phc string"));
    }

    #[test]
    fn invalid_cost_is_refused_before_hashing() {
        let bad = Argon2Cost {
            memory_kib: 1,
            iterations: 0,
            parallelism: 1,
        };
        assert!(bad.validate().is_err());
    }
}
