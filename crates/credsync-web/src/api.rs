//! The page's only way to the credentials: credsyncd's varlink interface
//! `io.credsync.Credentials` on its Unix socket, one connection per call.
//!
//! A request that carries a password is built in a buffer reserved large
//! enough up front (so it is never reallocated, leaving copies) and wiped
//! when dropped; so is every reply read back.
#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

const INTERFACE: &str = "io.credsync.Credentials";
/// A reply is a few hundred bytes; a status of every account can be more.
const MAX_REPLY: usize = 16 << 20;
/// Longer than any failure delay the service sleeps before a refusal.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What the service answered a call with, in the page's terms.
#[derive(Debug)]
pub enum Refused {
    AuthenticationFailed,
    PolicyRefused(Vec<String>),
    Locked {
        until: Option<String>,
        until_unix: Option<i64>,
    },
    TooSoon {
        allowed_from: String,
    },
    AccountExpired,
    NoPassword,
    NoSuchUser,
    PermissionDenied(String),
    Busy(String),
    InvalidArgument(String),
    /// Any other error, or the service unreachable: the page says so.
    Unavailable(String),
}

/// Verify's answer when the password is right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Ok,
    MustChange,
    Expired,
}

/// The fields of `GetStatus` the page shows.
#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub user: String,
    pub changed_at: String,
    pub session_epoch: i64,
    pub password_expires_in_days: Option<i64>,
}

/// One `Monitor` event.
#[derive(Debug, Clone, Deserialize)]
pub struct Event {
    pub user: String,
    pub session_epoch: i64,
    pub source: String,
    pub changed_at: i64,
}

/// Calls to credsyncd in flight: password checks have a budget of their
/// own (half), so that failed logins, each held for the service's failure
/// delay, cannot starve the pages' other calls.
#[derive(Clone)]
pub struct Api {
    socket: Arc<PathBuf>,
    checks: Arc<Semaphore>,
    others: Arc<Semaphore>,
}

/// How long a call waits for a free slot before the page says it is busy.
const SLOT_WAIT: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct Call<P> {
    method: String,
    parameters: P,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    more: bool,
}

#[derive(Deserialize)]
struct Reply {
    error: Option<String>,
    #[serde(default)]
    parameters: Value,
    #[serde(default)]
    continues: bool,
}

impl Api {
    pub fn new(socket: &Path, connections: usize) -> Api {
        let checks = (connections / 2).max(1);
        Api {
            socket: Arc::new(socket.to_owned()),
            checks: Arc::new(Semaphore::new(checks)),
            others: Arc::new(Semaphore::new(connections.saturating_sub(checks).max(1))),
        }
    }

    pub async fn verify(&self, user: &str, password: &str) -> Result<Verified, Refused> {
        #[derive(Serialize)]
        struct P<'a> {
            user: &'a str,
            password: &'a str,
        }
        let reply = self
            .call("Verify", &P { user, password }, user.len() + password.len())
            .await?;
        match reply["result"].as_str() {
            Some("ok") => Ok(Verified::Ok),
            Some("must-change") => Ok(Verified::MustChange),
            Some("expired") => Ok(Verified::Expired),
            other => Err(Refused::Unavailable(format!("Verify answered {other:?}"))),
        }
    }

    /// The session epoch after the change.
    pub async fn change_password(
        &self,
        user: &str,
        current: &str,
        new: &str,
    ) -> Result<i64, Refused> {
        #[derive(Serialize)]
        struct P<'a> {
            user: &'a str,
            current_password: &'a str,
            new_password: &'a str,
        }
        let params = P {
            user,
            current_password: current,
            new_password: new,
        };
        let reply = self
            .call(
                "ChangePassword",
                &params,
                user.len() + current.len() + new.len(),
            )
            .await?;
        reply["session_epoch"]
            .as_i64()
            .ok_or_else(|| Refused::Unavailable("ChangePassword gave no session_epoch".into()))
    }

    pub async fn status(&self, user: &str) -> Result<Account, Refused> {
        #[derive(Serialize)]
        struct P<'a> {
            user: &'a str,
        }
        let reply = self.call("GetStatus", &P { user }, user.len()).await?;
        let accounts: Vec<Account> = serde_json::from_value(reply["accounts"].clone())
            .map_err(|e| Refused::Unavailable(format!("GetStatus: {e}")))?;
        accounts
            .into_iter()
            .find(|account| account.user == user)
            .ok_or(Refused::NoSuchUser)
    }

    /// Subscribes to every change (with the current epochs first); events
    /// arrive on the returned stream until the connection ends.
    pub async fn monitor(&self) -> std::io::Result<Monitor> {
        let mut stream = UnixStream::connect(&*self.socket).await?;
        let call = Call {
            method: format!("{INTERFACE}.Monitor"),
            parameters: serde_json::json!({ "initial": true }),
            more: true,
        };
        let mut bytes = serde_json::to_vec(&call)?;
        bytes.push(0);
        stream.write_all(&bytes).await?;
        Ok(Monitor {
            reader: BufReader::new(stream),
            ended: false,
        })
    }

    /// `text_len`: the bytes of the strings in `parameters`, whose worst
    /// escaping the request buffer is reserved for.
    async fn call<P: Serialize>(
        &self,
        method: &str,
        parameters: &P,
        text_len: usize,
    ) -> Result<Value, Refused> {
        let slots = if method == "Verify" || method == "ChangePassword" {
            &self.checks
        } else {
            &self.others
        };
        let _slot = match tokio::time::timeout(SLOT_WAIT, slots.acquire()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return Err(Refused::Unavailable("shutting down".into())),
            Err(_) => {
                return Err(Refused::Busy(
                    "every connection to credsyncd is in use".into(),
                ));
            }
        };
        let request = encode(method, parameters, text_len).map_err(Refused::Unavailable)?;
        let exchange = async {
            let mut stream = UnixStream::connect(&*self.socket).await?;
            stream.write_all(&request).await?;
            let mut reader = BufReader::new(stream);
            read_message(&mut reader).await
        };
        let message = match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(Some(message))) => message,
            Ok(Ok(None)) => {
                return Err(Refused::Unavailable(
                    "credsyncd closed the connection".into(),
                ));
            }
            Ok(Err(e)) => return Err(Refused::Unavailable(format!("credsyncd: {e}"))),
            Err(_) => return Err(Refused::Unavailable("credsyncd did not answer".into())),
        };
        let reply: Reply = serde_json::from_slice(&message)
            .map_err(|e| Refused::Unavailable(format!("credsyncd's reply: {e}")))?;
        match reply.error {
            None => Ok(reply.parameters),
            Some(error) => Err(refusal(&error, &reply.parameters)),
        }
    }
}

/// A call's message, NUL-terminated, in a buffer reserved up front for the
/// worst escaping (`\u00XX`, six bytes a byte) of its strings and wiped on
/// drop; refused if it had to grow, which would have left a copy behind.
fn encode<P: Serialize>(
    method: &str,
    parameters: &P,
    text_len: usize,
) -> Result<Zeroizing<Vec<u8>>, String> {
    let call = Call {
        method: format!("{INTERFACE}.{method}"),
        parameters,
        more: false,
    };
    let reserved = 512 + 6 * text_len;
    let mut request = Zeroizing::new(Vec::with_capacity(reserved));
    let capacity = request.capacity();
    serde_json::to_writer(&mut *request, &call).map_err(|e| format!("encoding {method}: {e}"))?;
    request.push(0);
    if request.capacity() != capacity {
        return Err(format!("the {method} request outgrew its buffer"));
    }
    Ok(request)
}

/// A `Monitor` subscription.
pub struct Monitor {
    reader: BufReader<UnixStream>,
    ended: bool,
}

impl Monitor {
    /// The next event; `None` when the stream ended (the service stopped).
    pub async fn next(&mut self) -> std::io::Result<Option<Event>> {
        if self.ended {
            return Ok(None);
        }
        let Some(message) = read_message(&mut self.reader).await? else {
            return Ok(None);
        };
        let reply: Reply = serde_json::from_slice(&message).map_err(std::io::Error::other)?;
        if let Some(error) = reply.error {
            return Err(std::io::Error::other(format!("Monitor: {error}")));
        }
        let event = serde_json::from_value(reply.parameters["event"].clone())
            .map_err(std::io::Error::other)?;
        // The last reply of a stream still carries its event.
        self.ended = !reply.continues;
        Ok(Some(event))
    }
}

/// One NUL-terminated message, without its NUL; `None` at end of stream.
async fn read_message(
    reader: &mut BufReader<UnixStream>,
) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let mut message = Zeroizing::new(Vec::new());
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(None);
        }
        if let Some(end) = available.iter().position(|&b| b == 0) {
            message.extend_from_slice(&available[..end]);
            reader.consume(end + 1);
            return Ok(Some(message));
        }
        let taken = available.len();
        if message.len() + taken > MAX_REPLY {
            return Err(std::io::Error::other("credsyncd's reply is too large"));
        }
        // Grow by hand so that a reply is never left behind in a freed buffer.
        if message.capacity() < message.len() + taken {
            let mut larger = Zeroizing::new(Vec::with_capacity((message.len() + taken) * 2));
            larger.extend_from_slice(&message);
            message = larger;
        }
        message.extend_from_slice(available);
        reader.consume(taken);
    }
}

fn refusal(error: &str, parameters: &Value) -> Refused {
    let text = |key: &str| parameters[key].as_str().unwrap_or_default().to_owned();
    match error.strip_prefix("io.credsync.Credentials.") {
        Some("AuthenticationFailed") => Refused::AuthenticationFailed,
        Some("PolicyRefused") => Refused::PolicyRefused(
            parameters["rules"]
                .as_array()
                .map(|rules| {
                    rules
                        .iter()
                        .filter_map(|r| r.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        ),
        Some("Locked") => Refused::Locked {
            until: parameters["locked_until"].as_str().map(str::to_owned),
            until_unix: parameters["locked_until_unix"].as_i64(),
        },
        Some("TooSoon") => Refused::TooSoon {
            allowed_from: text("allowed_from"),
        },
        Some("AccountExpired") => Refused::AccountExpired,
        Some("NoPassword") => Refused::NoPassword,
        Some("NoSuchUser") => Refused::NoSuchUser,
        Some("PermissionDenied") => Refused::PermissionDenied(text("reason")),
        Some("Busy") => Refused::Busy(text("reason")),
        Some("InvalidArgument") => Refused::InvalidArgument(text("reason")),
        Some("Failed") => Refused::Unavailable(text("reason")),
        _ => Refused::Unavailable(error.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_become_the_pages_refusals() {
        let policy = refusal(
            "io.credsync.Credentials.PolicyRefused",
            &json!({ "rules": ["too short", "no digit"] }),
        );
        assert!(
            matches!(policy, Refused::PolicyRefused(rules) if rules == ["too short", "no digit"])
        );
        let locked = refusal(
            "io.credsync.Credentials.Locked",
            &json!({ "locked_until": "12:00", "locked_until_unix": 42 }),
        );
        assert!(matches!(
            locked,
            Refused::Locked {
                until_unix: Some(42),
                ..
            }
        ));
        assert!(matches!(
            refusal("org.varlink.service.MethodNotFound", &json!({})),
            Refused::Unavailable(name) if name == "org.varlink.service.MethodNotFound"
        ));
    }

    #[test]
    fn a_request_holding_a_password_is_built_without_reallocating() {
        #[derive(Serialize)]
        struct P<'a> {
            user: &'a str,
            password: &'a str,
        }
        // Escapes in both strings, the user the longer: the buffer must be
        // reserved for both, or it moves after the password is in it.
        let user = "\u{1}".repeat(200);
        let password = "\u{1}\u{2}\"\\ quoted".repeat(8);
        let params = P {
            user: &user,
            password: &password,
        };
        let request = encode("Verify", &params, user.len() + password.len()).unwrap();
        assert_eq!(request.last(), Some(&0));
        // Reserving for the password alone is caught, not sent.
        let error = encode("Verify", &params, password.len()).unwrap_err();
        assert!(error.contains("outgrew"), "{error}");
    }
}
