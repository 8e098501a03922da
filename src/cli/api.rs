//! `credsync api call`: one call to the service (`credsyncd`), for scripts and
//! for systems without `varlinkctl` (Debian 12's systemd 252 has none). The
//! process becomes its caller for good before it connects, so the service
//! sees the caller's uid, never the setuid root's. Passwords go on standard
//! input (parameters `-`), never on the command line.
#![forbid(unsafe_code)]

use super::report;
use credsync_core::error::Error;
use credsync_core::system::privilege::{self, Invoker};
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use zeroize::Zeroizing;

/// The service's socket on this system.
pub const SOCKET: &str = "/run/credsync/io.credsync.Credentials";
const INTERFACE: &str = "io.credsync.Credentials";
/// Longest reply taken (a `GetStatus` of many accounts fits many times over).
const MAX_REPLY: u64 = 64 * 1024 * 1024;

pub fn call(
    invoker: &Invoker,
    socket: &Path,
    method: &str,
    parameters: Option<&str>,
    more: bool,
) -> Result<(), Error> {
    privilege::become_caller(invoker).map_err(Error::Failure)?;
    let method = if method.contains('.') {
        method.to_owned()
    } else {
        format!("{INTERFACE}.{method}")
    };
    let parameters = parameters_of(parameters)?;
    let mut request = Map::new();
    request.insert("method".into(), Value::String(method));
    request.insert("parameters".into(), Value::Object(parameters));
    if more {
        request.insert("more".into(), Value::Bool(true));
    }
    let mut message = Zeroizing::new(
        serde_json::to_vec(&Value::Object(request))
            .map_err(|e| Error::Failure(format!("cannot encode the call: {e}")))?,
    );
    message.push(0);
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        Error::Failure(format!(
            "cannot reach credsyncd at {}: {e}",
            socket.display()
        ))
    })?;
    // A service refusing the connection (`Busy`) answers and closes at once:
    // the call may then fail to send, but the answer is still there to read.
    let sent = stream.write_all(&message);
    drop(message);
    let mut replies = BufReader::new(stream.take(MAX_REPLY));
    loop {
        let mut bytes = Vec::new();
        let read = replies.read_until(0, &mut bytes);
        if bytes.pop() != Some(0) {
            return Err(Error::Failure(match (&sent, read) {
                (Err(e), _) => format!("cannot send the call: {e}"),
                (Ok(()), Err(e)) => format!("cannot read the reply: {e}"),
                (Ok(()), Ok(_)) => "credsyncd closed the connection without a reply".into(),
            }));
        }
        let reply: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Failure(format!("credsyncd sent a reply that is not JSON: {e}")))?;
        if let Some(name) = reply.get("error").and_then(Value::as_str) {
            return Err(refusal(name, reply.get("parameters")));
        }
        let parameters = reply.get("parameters").cloned().unwrap_or(Value::Null);
        report::out(&parameters.to_string());
        if !more || reply.get("continues") != Some(&Value::Bool(true)) {
            return Ok(());
        }
    }
}

/// The call's parameters: a JSON object from the argument, or from standard
/// input for `-` (the only way a password may be passed).
fn parameters_of(argument: Option<&str>) -> Result<Map<String, Value>, Error> {
    let text = match argument {
        None => Zeroizing::new(String::from("{}")),
        Some("-") => {
            let mut text = Zeroizing::new(String::new());
            std::io::stdin()
                .take(1024 * 1024)
                .read_to_string(&mut text)
                .map_err(|e| Error::Usage(format!("cannot read the parameters: {e}")))?;
            text
        }
        Some(text) => {
            if text.contains("password") {
                return Err(Error::Usage(
                    "a password never goes on the command line: give the parameters as '-' and write them to standard input".into(),
                ));
            }
            Zeroizing::new(text.to_owned())
        }
    };
    match serde_json::from_str(&text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::Usage(
            "the parameters must be one JSON object".into(),
        )),
    }
}

/// A varlink error as the command line's error, with its exit code (README,
/// "Applications").
fn refusal(name: &str, parameters: Option<&Value>) -> Error {
    let text = |key: &str| {
        parameters
            .and_then(|p| p.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let detail = parameters
        .filter(|p| p.as_object().is_some_and(|o| !o.is_empty()))
        .map(|p| format!(" {p}"))
        .unwrap_or_default();
    let line = format!("{name}{detail}");
    let short = name.strip_prefix("io.credsync.Credentials.").unwrap_or("");
    match short {
        "AuthenticationFailed" | "PermissionDenied" | "AccountExpired" | "NoPassword" => {
            Error::Denied(line)
        }
        "PolicyRefused" | "TooSoon" => Error::Policy(line),
        "NoSuchUser" | "InvalidArgument" => Error::Invalid(line),
        "Busy" => Error::Busy(line),
        "Locked" => Error::Locked(line),
        _ if name.starts_with("org.varlink.service.") => Error::Usage(line),
        _ => {
            let reason = text("reason");
            Error::Failure(if reason.is_empty() { line } else { reason })
        }
    }
}
