//! Which hash method the system uses for new passwords (STUB).

use super::Paths;
use super::crypt::{Algorithm, HashMethod};

/// Where the method came from, for `status` and the docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodSource {
    Config,
    PamStack(String),
    LoginDefs,
    LibcryptDefault,
}

pub fn detect(
    _paths: &Paths,
    _service: &str,
    configured: Option<HashMethod>,
) -> (HashMethod, MethodSource) {
    match configured {
        Some(m) => (m, MethodSource::Config),
        None => (
            HashMethod {
                algorithm: Algorithm::Yescrypt,
                rounds: None,
            },
            MethodSource::LibcryptDefault,
        ),
    }
}
