//! `io.credsync.Credentials`: its description (the `.varlink` file the
//! packages ship), and its errors, each with a documented name and the
//! parameters the IDL gives it.
#![forbid(unsafe_code)]

use credsync_core::error::Error;
use serde_json::{Value, json};

pub const NAME: &str = "io.credsync.Credentials";

/// The interface description, as `GetInterfaceDescription` returns it.
pub const DESCRIPTION: &str = include_str!("../io.credsync.Credentials.varlink");

/// An error reply: its full name and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub name: String,
    pub parameters: Value,
}

impl Refusal {
    fn ours(name: &str, parameters: Value) -> Refusal {
        Refusal {
            name: format!("{NAME}.{name}"),
            parameters,
        }
    }

    pub fn authentication_failed() -> Refusal {
        Refusal::ours("AuthenticationFailed", json!({}))
    }
    pub fn policy_refused(rules: &[String]) -> Refusal {
        Refusal::ours("PolicyRefused", json!({ "rules": rules }))
    }
    pub fn permission_denied(reason: &str) -> Refusal {
        Refusal::ours("PermissionDenied", json!({ "reason": reason }))
    }
    pub fn no_such_user(user: &str) -> Refusal {
        Refusal::ours("NoSuchUser", json!({ "user": user }))
    }
    pub fn locked(until: Option<(String, i64)>) -> Refusal {
        let (text, unix) = until.unzip();
        Refusal::ours(
            "Locked",
            json!({ "locked_until": text, "locked_until_unix": unix }),
        )
    }
    pub fn too_soon(allowed_from: &str, allowed_from_unix: i64) -> Refusal {
        Refusal::ours(
            "TooSoon",
            json!({ "allowed_from": allowed_from, "allowed_from_unix": allowed_from_unix }),
        )
    }
    pub fn busy(reason: &str) -> Refusal {
        Refusal::ours("Busy", json!({ "reason": reason }))
    }
    pub fn invalid_argument(reason: &str) -> Refusal {
        Refusal::ours("InvalidArgument", json!({ "reason": reason }))
    }
    pub fn account_expired() -> Refusal {
        Refusal::ours("AccountExpired", json!({}))
    }
    pub fn no_password() -> Refusal {
        Refusal::ours("NoPassword", json!({}))
    }
    pub fn failed(reason: &str) -> Refusal {
        Refusal::ours("Failed", json!({ "reason": reason }))
    }

    /// varlink's own errors (`org.varlink.service`).
    pub fn method_not_found(method: &str) -> Refusal {
        Refusal {
            name: "org.varlink.service.MethodNotFound".to_owned(),
            parameters: json!({ "method": method }),
        }
    }
    pub fn interface_not_found(interface: &str) -> Refusal {
        Refusal {
            name: "org.varlink.service.InterfaceNotFound".to_owned(),
            parameters: json!({ "interface": interface }),
        }
    }
    pub fn invalid_parameter(parameter: &str) -> Refusal {
        Refusal {
            name: "org.varlink.service.InvalidParameter".to_owned(),
            parameters: json!({ "parameter": parameter }),
        }
    }
    /// A streaming method called without `"more": true`.
    pub fn expected_more() -> Refusal {
        Refusal {
            name: "org.varlink.service.ExpectedMore".to_owned(),
            parameters: json!({}),
        }
    }
    pub fn method_not_implemented(method: &str) -> Refusal {
        Refusal {
            name: "org.varlink.service.MethodNotImplemented".to_owned(),
            parameters: json!({ "method": method }),
        }
    }
}

impl From<crate::wire::InvalidParameter> for Refusal {
    fn from(e: crate::wire::InvalidParameter) -> Refusal {
        Refusal::invalid_parameter(&e.0)
    }
}

/// The core's errors in the interface's terms; the text is the command
/// line's, which never holds a password.
impl From<Error> for Refusal {
    fn from(e: Error) -> Refusal {
        match &e {
            Error::AuthFailed => Refusal::authentication_failed(),
            Error::Denied(why) => Refusal::permission_denied(why),
            Error::UnknownUser(user) => Refusal::no_such_user(user.as_str()),
            Error::Invalid(why) | Error::Usage(why) => Refusal::invalid_argument(why),
            Error::Policy(why) => Refusal::policy_refused(std::slice::from_ref(why)),
            Error::Locked(_) => Refusal::locked(None),
            Error::Busy(_)
            | Error::Shadow(credsync_core::system::shadow::ShadowError::Busy { .. })
            | Error::Store(credsync_core::store::StoreError::Busy) => Refusal::busy(&e.to_string()),
            _ => Refusal::failed(&e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_names_every_method_and_error_the_service_answers() {
        assert!(DESCRIPTION.contains(&format!("interface {NAME}\n")));
        for method in [
            "Verify",
            "ChangePassword",
            "SetPassword",
            "GetStatus",
            "Monitor",
        ] {
            assert!(
                DESCRIPTION.contains(&format!("method {method}(")),
                "{method}"
            );
        }
        for error in [
            Refusal::authentication_failed(),
            Refusal::policy_refused(&[]),
            Refusal::permission_denied(""),
            Refusal::no_such_user(""),
            Refusal::locked(None),
            Refusal::too_soon("", 0),
            Refusal::busy(""),
            Refusal::invalid_argument(""),
            Refusal::account_expired(),
            Refusal::no_password(),
            Refusal::failed(""),
        ] {
            let short = error.name.rsplit('.').next().unwrap();
            let line = DESCRIPTION
                .lines()
                .find(|l| l.starts_with(&format!("error {short} ")))
                .unwrap_or_else(|| panic!("{short} is not in the IDL"));
            for field in error.parameters.as_object().unwrap().keys() {
                assert!(line.contains(&format!("{field}:")), "{short}.{field}");
            }
        }
    }
}
