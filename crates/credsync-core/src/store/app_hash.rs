//! The application's own password hash: Argon2id in PHC string form
//! (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), which applications in any
//! language can check with a stock Argon2 library.
#![forbid(unsafe_code)]

use crate::secret::Password;
use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, PasswordVerifier, Version,
};
use serde::Deserialize;
use zeroize::Zeroize;

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
    fn params(&self) -> Result<Params, AppHashError> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| AppHashError::Cost(e.to_string()))
    }

    /// Checks the cost at configuration time so a bad value fails before any write.
    pub fn validate(&self) -> Result<(), AppHashError> {
        self.params().map(drop)
    }

    /// A fresh Argon2id PHC string for `password`, with a random salt. For
    /// more than one password, keep an [`AppHasher`] instead.
    pub fn hash(&self, password: &Password) -> Result<String, AppHashError> {
        AppHasher::new(self)?.hash(password)
    }
}

/// An Argon2id hasher that keeps its work area (`memory_kib`) from one
/// password to the next: a batch allocates it, and the kernel faults it in,
/// once per thread instead of once per password. The area holds what was
/// derived from the last password, so it is wiped when the hasher is dropped.
pub struct AppHasher {
    argon2: Argon2<'static>,
    params: ParamsString,
    blocks: Vec<Block>,
}

impl AppHasher {
    pub fn new(cost: &Argon2Cost) -> Result<AppHasher, AppHashError> {
        let params = cost.params()?;
        let phc_params =
            ParamsString::try_from(&params).map_err(|e| AppHashError::Cost(e.to_string()))?;
        let blocks = vec![Block::new(); params.block_count()];
        Ok(AppHasher {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            params: phc_params,
            blocks,
        })
    }

    /// A fresh Argon2id PHC string for `password`, with a random salt: the
    /// same string the `argon2` crate's `PasswordHasher` makes.
    pub fn hash(&mut self, password: &Password) -> Result<String, AppHashError> {
        let salt = argon2::password_hash::try_generate_salt()
            .map_err(|e| AppHashError::Hashing(e.to_string()))?;
        self.hash_with_salt(password, &salt)
    }

    fn hash_with_salt(&mut self, password: &Password, salt: &[u8]) -> Result<String, AppHashError> {
        let failed = |e: &dyn std::fmt::Display| AppHashError::Hashing(e.to_string());
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        self.argon2
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut out,
                self.blocks.as_mut_slice(),
            )
            .map_err(|e| failed(&e))?;
        let phc = PasswordHash {
            algorithm: ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: self.params.clone(),
            salt: Some(Salt::new(salt).map_err(|e| failed(&e))?),
            hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
        };
        Ok(phc.to_string())
    }
}

impl AppHasher {
    fn wipe(&mut self) {
        self.blocks.iter_mut().for_each(Zeroize::zeroize);
    }
}

impl Drop for AppHasher {
    fn drop(&mut self) {
        self.wipe();
    }
}

/// Checks `password` against a stored PHC string, with the cost the string names.
pub fn verify(password: &Password, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

/// Takes an Argon2id PHC string made elsewhere only if it parses, names
/// Argon2id version 0x13, and has parameters, a salt and a hash output that
/// `verify` can use.
pub fn check_phc(phc: &str) -> Result<(), &'static str> {
    let parsed = PasswordHash::new(phc).map_err(|_| "is not a PHC string")?;
    if parsed.algorithm != ARGON2ID_IDENT {
        return Err("is not an Argon2id hash");
    }
    if parsed.version != Some(Version::V0x13.into()) {
        return Err("does not name Argon2 version 19");
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("lacks its salt or its hash");
    }
    Params::try_from(&parsed).map_err(|_| "has Argon2 parameters out of range")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_argon2id_phc_strings_pass_the_check() {
        let phc = cheap()
            .hash(&Password::new(b"x".to_vec()).unwrap())
            .unwrap();
        assert_eq!(check_phc(&phc), Ok(()));
        for (bad, why) in [
            ("plaintext", "not a PHC"),
            (
                "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "not an Argon2id",
            ),
            (
                "$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "version 19",
            ),
            ("$argon2id$v=19$m=64,t=1,p=1", "salt"),
            (
                "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                "out of range",
            ),
        ] {
            let reason = check_phc(bad).unwrap_err();
            assert!(reason.contains(why), "{bad}: {reason}");
        }
    }

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
    fn a_reused_work_area_gives_the_argon2_crates_hashes() {
        use argon2::PasswordHasher;
        let cost = cheap();
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).unwrap(),
        );
        let mut hasher = AppHasher::new(&cost).unwrap();
        for (text, salt) in [(&b"first"[..], [1u8; 16]), (b"second", [2; 16])] {
            let pw = Password::new(text.to_vec()).unwrap();
            let ours = hasher.hash_with_salt(&pw, &salt).unwrap();
            let theirs = reference.hash_password_with_salt(text, &salt).unwrap();
            assert_eq!(ours, theirs.to_string());
            assert!(verify(&pw, &ours));
        }
    }

    #[test]
    fn the_work_area_is_what_drop_wipes() {
        let mut hasher = AppHasher::new(&cheap()).unwrap();
        hasher
            .hash(&Password::new(b"secret".to_vec()).unwrap())
            .unwrap();
        let zero = |h: &AppHasher| h.blocks.iter().all(|b| b.as_ref().iter().all(|&w| w == 0));
        assert!(!zero(&hasher), "the last password's work is still there");
        hasher.wipe();
        assert_eq!(hasher.blocks.len(), 64, "the area is kept, only zeroed");
        assert!(zero(&hasher));
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
