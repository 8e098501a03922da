//! The varlink wire (varlink.org): each message is one JSON object followed by
//! a NUL byte, over a Unix stream socket. A call is
//! `{"method": "io.credsync.Credentials.Verify", "parameters": {…}}`, with
//! `"more": true` for a stream of replies; a reply is `{"parameters": {…}}`
//! (with `"continues": true` while a stream goes on) or
//! `{"error": "io.credsync.Credentials.Name", "parameters": {…}}`.
//!
//! Requests carry passwords, so they are read into one fixed buffer per
//! connection, never grown and wiped as each message is consumed, and decoded
//! in place: the parameters stay raw JSON borrowed from that buffer until a
//! method takes the one it needs (`Params`). Nothing here prints a message's
//! content; a decoding error names the parameter, never its value.
#![forbid(unsafe_code)]

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroizing;

/// One call, borrowed from its message.
#[derive(Deserialize)]
pub struct Call<'a> {
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    #[serde(borrow, default)]
    pub parameters: Option<&'a RawValue>,
    #[serde(default)]
    pub more: bool,
    #[serde(default)]
    pub oneway: bool,
    #[serde(default)]
    pub upgrade: bool,
}

impl fmt::Debug for Call<'_> {
    // The parameters may hold a password: never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("more", &self.more)
            .field("oneway", &self.oneway)
            .finish_non_exhaustive()
    }
}

/// Why a message is not a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not one JSON object with a string `method` (the position only, so
    /// that no part of the message is ever repeated back or logged).
    NotACall { line: usize, column: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NotACall { line, column } => write!(
                f,
                "the request is not a varlink call (a JSON object with a string \"method\"), at line {line} column {column}"
            ),
        }
    }
}

/// Decodes one message (without its NUL). JSON is UTF-8 throughout: a
/// message with invalid UTF-8 anywhere, even in a member the call ignores
/// (which serde_json would skip unchecked), is refused.
pub fn decode(message: &[u8]) -> Result<Call<'_>, DecodeError> {
    let text = std::str::from_utf8(message).map_err(|e| {
        let before = &message[..e.valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.len()
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
            + 1;
        DecodeError::NotACall { line, column }
    })?;
    // A derived struct would take a JSON array too (its fields in order).
    if !text.trim_start().starts_with('{') {
        return Err(DecodeError::NotACall { line: 1, column: 1 });
    }
    serde_json::from_str(text).map_err(|e| DecodeError::NotACall {
        line: e.line(),
        column: e.column(),
    })
}

/// A parameter that is missing, ill-typed or unknown: varlink's
/// `org.varlink.service.InvalidParameter`, naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParameter(pub String);

/// A call's parameters, each still raw JSON, taken one by one.
pub struct Params<'a> {
    fields: BTreeMap<Cow<'a, str>, &'a RawValue>,
}

impl<'a> Params<'a> {
    /// The parameters object of a call; absent means none.
    pub fn parse(raw: Option<&'a RawValue>) -> Result<Self, InvalidParameter> {
        let fields = match raw {
            None => BTreeMap::new(),
            Some(raw) if raw.get() == "null" => BTreeMap::new(),
            Some(raw) => serde_json::from_str(raw.get())
                .map_err(|_| InvalidParameter("parameters".to_owned()))?,
        };
        Ok(Params { fields })
    }

    /// A parameter that must be there and not null.
    pub fn required<T: DeserializeOwned>(&self, name: &str) -> Result<T, InvalidParameter> {
        self.optional(name)?
            .ok_or_else(|| InvalidParameter(name.to_owned()))
    }

    /// A parameter that may be missing or null.
    pub fn optional<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, InvalidParameter> {
        match self.fields.get(name) {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => serde_json::from_str(raw.get())
                .map(Some)
                .map_err(|_| InvalidParameter(name.to_owned())),
        }
    }

    /// Refuses a parameter the method doesn't have.
    pub fn only(&self, known: &[&str]) -> Result<(), InvalidParameter> {
        match self.fields.keys().find(|k| !known.contains(&k.as_ref())) {
            Some(unknown) => Err(InvalidParameter(unknown.to_string())),
            None => Ok(()),
        }
    }
}

/// A password parameter: the decoded string moves into a buffer that is wiped
/// on drop. (serde_json unescapes a string with escapes through a scratch
/// buffer of its own, which is not wiped: docs/design.md, "The service".)
pub struct Secret(pub Zeroizing<String>);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Secret(Zeroizing::new(s)))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

/// A reply, NUL-terminated.
pub fn reply(parameters: &impl Serialize, continues: bool) -> Vec<u8> {
    #[derive(Serialize)]
    struct Reply<'p, P> {
        parameters: &'p P,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        continues: bool,
    }
    framed(&Reply {
        parameters,
        continues,
    })
}

/// An error reply, NUL-terminated.
pub fn error(name: &str, parameters: &impl Serialize) -> Vec<u8> {
    #[derive(Serialize)]
    struct Error<'p, P> {
        error: &'p str,
        parameters: &'p P,
    }
    framed(&Error {
        error: name,
        parameters,
    })
}

fn framed(message: &impl Serialize) -> Vec<u8> {
    // Serializing plain structs and maps of strings and numbers can't fail.
    let mut bytes = serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec());
    bytes.push(0);
    bytes
}

pub async fn send(writer: &mut (impl AsyncWrite + Unpin), message: &[u8]) -> std::io::Result<()> {
    writer.write_all(message).await?;
    writer.flush().await
}

/// Why no further message can be read from a connection.
#[derive(Debug)]
pub enum ReadError {
    /// A message longer than the limit (its connection can't be resynchronized).
    TooLarge {
        limit: usize,
    },
    /// The peer closed the connection in the middle of a message.
    Truncated,
    Io(std::io::Error),
}

/// Reads NUL-terminated messages into one buffer of `limit` bytes, allocated
/// once and wiped as each message is consumed and when dropped.
pub struct Reader {
    buffer: Zeroizing<Vec<u8>>,
    /// Bytes read and not yet consumed.
    filled: usize,
    /// The length of the message last handed out, with its NUL.
    handed_out: usize,
}

impl Reader {
    pub fn new(limit: usize) -> Reader {
        Reader {
            buffer: Zeroizing::new(vec![0; limit]),
            filled: 0,
            handed_out: 0,
        }
    }

    /// True while part of a message is waiting for the rest.
    pub fn is_partway(&self) -> bool {
        self.filled > self.handed_out
    }

    /// The next message without its NUL, or `None` when the peer closed the
    /// connection between messages.
    pub async fn next(
        &mut self,
        socket: &mut (impl AsyncRead + Unpin),
    ) -> Result<Option<&[u8]>, ReadError> {
        self.consume();
        let mut scanned = 0;
        loop {
            if let Some(nul) = self.buffer[scanned..self.filled]
                .iter()
                .position(|&b| b == 0)
            {
                let end = scanned + nul;
                self.handed_out = end + 1;
                return Ok(Some(&self.buffer[..end]));
            }
            scanned = self.filled;
            if self.filled == self.buffer.len() {
                return Err(ReadError::TooLarge {
                    limit: self.buffer.len(),
                });
            }
            let n = socket
                .read(&mut self.buffer[self.filled..])
                .await
                .map_err(ReadError::Io)?;
            if n == 0 {
                return if self.filled == 0 {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated)
                };
            }
            self.filled += n;
        }
    }

    /// Drops the message last handed out: what follows it moves to the
    /// front, and the bytes it leaves behind are wiped.
    fn consume(&mut self) {
        if self.handed_out == 0 {
            return;
        }
        let (done, filled) = (self.handed_out, self.filled);
        self.buffer.copy_within(done..filled, 0);
        let rest = filled - done;
        self.buffer[rest..filled].fill(0);
        self.filled = rest;
        self.handed_out = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_call_and_takes_its_parameters_one_by_one() {
        let call = decode(
            br#"{"method":"io.credsync.Credentials.Verify","parameters":{"user":"alice","password":"p\u00e4ss"},"more":false}"#,
        )
        .unwrap();
        assert_eq!(call.method, "io.credsync.Credentials.Verify");
        assert!(!call.more);
        let params = Params::parse(call.parameters).unwrap();
        assert_eq!(params.required::<String>("user").unwrap(), "alice");
        let secret: Secret = params.required("password").unwrap();
        assert_eq!(secret.0.as_str(), "päss");
        assert_eq!(params.optional::<bool>("force").unwrap(), None);
        assert!(params.only(&["user", "password"]).is_ok());
        assert_eq!(
            params.only(&["user"]),
            Err(InvalidParameter("password".into()))
        );
        assert_eq!(
            params.required::<bool>("user"),
            Err(InvalidParameter("user".into()))
        );
        assert!(format!("{call:?}").find("alice").is_none());
    }

    #[test]
    fn refuses_what_is_not_a_call_without_repeating_it() {
        for bad in [
            &b"secret-password"[..],
            b"[1,2]",
            b"[\"io.credsync.Credentials.Verify\"]",
            b"{\"parameters\":{}}",
            b"{\"method\":42}",
            b"{\"method\":\"a\"} trailing",
            b"{\"method\":\"a\",\"ignored\":\"\xbb\"}",
        ] {
            let e = decode(bad).unwrap_err();
            assert!(!e.to_string().contains("secret"), "{e}");
        }
        assert!(Params::parse(Some(&RawValue::from_string("[1]".into()).unwrap())).is_err());
    }

    #[tokio::test]
    async fn reads_messages_split_and_joined_and_wipes_what_it_consumed() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let mut reader = Reader::new(64);
        a.write_all(b"{\"m\":1}\0{\"m\"").await.unwrap();
        assert_eq!(reader.next(&mut b).await.unwrap().unwrap(), b"{\"m\":1}");
        a.write_all(b":2}\0").await.unwrap();
        assert_eq!(reader.next(&mut b).await.unwrap().unwrap(), b"{\"m\":2}");
        drop(a);
        assert!(reader.next(&mut b).await.unwrap().is_none());
        assert!(reader.buffer.iter().all(|&byte| byte == 0));
    }

    #[tokio::test]
    async fn a_message_over_the_limit_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let mut reader = Reader::new(64);
        a.write_all(&[b'x'; 100]).await.unwrap();
        assert!(matches!(
            reader.next(&mut b).await,
            Err(ReadError::TooLarge { limit: 64 })
        ));
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(b"{\"unfinished").await.unwrap();
        drop(a);
        assert!(matches!(
            Reader::new(64).next(&mut b).await,
            Err(ReadError::Truncated)
        ));
    }
}
