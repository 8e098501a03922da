//! A fleet entry: one user's desired state, signed by the conductor.
//!
//! The signed payload is plain text, one `name value` line each, in this
//! order and nothing else (every value is free of spaces and line breaks):
//!
//! ```text
//! credsync-fleet-entry 1
//! fleet lab
//! user admin
//! version 7
//! crypt $y$j9T$...
//! argon2id $argon2id$v=19$m=19456,t=2,p=1$...
//! must_change 0
//! aging 0 99999 7
//! set_at 1796342400
//! set_by alice
//! ```
//!
//! The Ed25519 signature covers exactly those bytes. etcd holds them, with
//! the signature, as `{"payload": "...", "signature": "<base64>"}` at
//! `/credsync/<fleet>/users/<user>`. A node verifies the signature over the
//! payload's bytes before it reads a single field, and takes every field
//! from the payload, never from anything beside it.
#![forbid(unsafe_code)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use credsync_core::account::UserName;
use credsync_core::store::app_hash;
use credsync_core::system::crypt::{self, LinuxHash};
use credsync_core::system::shadow::Aging;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::fmt;

const HEADER: &str = "credsync-fleet-entry 1";

/// The desired state of one user, as the conductor signs it.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub fleet: String,
    pub user: UserName,
    pub version: u64,
    pub crypt: LinuxHash,
    pub argon2id: String,
    pub must_change: bool,
    pub aging: Aging,
    pub set_at: i64,
    pub set_by: String,
}

/// Hashes are not passwords, but like `/etc/shadow` they stay out of logs.
impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("fleet", &self.fleet)
            .field("user", &self.user)
            .field("version", &self.version)
            .field("set_by", &self.set_by)
            .finish_non_exhaustive()
    }
}

/// What etcd holds at a user's key.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signed {
    payload: String,
    signature: String,
}

/// Why an entry is refused, in the words a node's report uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unsigned or malformed entry")]
    Unsigned,
    #[error("bad signature: no trusted fleet key signed this entry")]
    BadSignature,
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("the entry is for {0}, not for this key")]
    Misplaced(String),
    #[error("replayed: version {offered} is not newer than version {applied}, applied")]
    Replayed { offered: u64, applied: u64 },
    #[error("the crypt hash {0}")]
    Method(&'static str),
    #[error("the Argon2id hash {0}")]
    Phc(&'static str),
}

/// A fleet's name: what its etcd prefix is made of.
pub fn check_fleet_name(name: &str) -> Result<(), String> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !name.starts_with('.');
    if fine {
        Ok(())
    } else {
        Err(format!(
            "fleet name '{name}' must be 1-64 letters, digits, '-', '_' or '.', not starting with '.'"
        ))
    }
}

impl Entry {
    /// The exact bytes the signature covers.
    pub fn payload(&self) -> String {
        let days = |d: Option<i64>| d.map_or_else(|| "-".to_owned(), |d| d.to_string());
        format!(
            "{HEADER}\nfleet {}\nuser {}\nversion {}\ncrypt {}\nargon2id {}\nmust_change {}\naging {} {} {}\nset_at {}\nset_by {}\n",
            self.fleet,
            self.user,
            self.version,
            self.crypt.as_str(),
            self.argon2id,
            u8::from(self.must_change),
            days(self.aging.min),
            days(self.aging.max),
            days(self.aging.warn),
            self.set_at,
            self.set_by,
        )
    }

    /// The value to write at the user's key.
    pub fn sign(&self, key: &SigningKey) -> String {
        let payload = self.payload();
        let signature = key.sign(payload.as_bytes());
        serde_json::to_string(&Signed {
            payload,
            signature: BASE64.encode(signature.to_bytes()),
        })
        .expect("two strings serialise")
    }

    /// Reads a value from etcd: the signature first, against every trusted
    /// key, then the payload, strictly, then the hashes, which must be ones
    /// this node's libcrypt and Argon2 verify. `key_user` is the user named
    /// by the key the value was found at.
    pub fn open(
        value: &[u8],
        trusted: &[VerifyingKey],
        fleet: &str,
        key_user: &str,
    ) -> Result<Entry, Refusal> {
        let signed: Signed = serde_json::from_slice(value).map_err(|_| Refusal::Unsigned)?;
        let signature = BASE64
            .decode(&signed.signature)
            .ok()
            .and_then(|bytes| Signature::from_slice(&bytes).ok())
            .ok_or(Refusal::BadSignature)?;
        if !trusted
            .iter()
            .any(|key| key.verify(signed.payload.as_bytes(), &signature).is_ok())
        {
            return Err(Refusal::BadSignature);
        }
        let entry = parse(&signed.payload).map_err(Refusal::Malformed)?;
        if entry.fleet != fleet || entry.user.as_str() != key_user {
            return Err(Refusal::Misplaced(format!(
                "user '{}' of fleet '{}'",
                entry.user, entry.fleet
            )));
        }
        crypt::check_hash(entry.crypt.as_str()).map_err(Refusal::Method)?;
        app_hash::check_phc(&entry.argon2id).map_err(Refusal::Phc)?;
        Ok(entry)
    }
}

/// The payload's lines, in their one order.
fn parse(payload: &str) -> Result<Entry, String> {
    let body = payload
        .strip_suffix('\n')
        .ok_or("the payload must end with a line break")?;
    let mut lines = body.split('\n');
    if lines.next() != Some(HEADER) {
        return Err(format!("the first line must be '{HEADER}'"));
    }
    let mut field = |name: &str| -> Result<&str, String> {
        let line = lines.next().ok_or(format!("'{name}' is missing"))?;
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .filter(|value| !value.is_empty())
            .ok_or(format!("expected '{name}', found '{line}'"))
    };
    let fleet = field("fleet")?.to_owned();
    check_fleet_name(&fleet)?;
    let user = UserName::parse(field("user")?).map_err(|e| e.to_string())?;
    let version = number(field("version")?, "version")?;
    let crypt = LinuxHash::from_field(field("crypt")?).ok_or("the crypt hash is not a field")?;
    let argon2id = field("argon2id")?.to_owned();
    let must_change = match field("must_change")? {
        "0" => false,
        "1" => true,
        other => return Err(format!("must_change must be 0 or 1, not '{other}'")),
    };
    let aging = aging(field("aging")?)?;
    let set_at = field("set_at")?
        .parse()
        .map_err(|_| "set_at is not a number")?;
    let set_by = field("set_by")?.to_owned();
    if set_by.contains(' ') {
        return Err("set_by holds a space".into());
    }
    if lines.next().is_some() {
        return Err("unexpected lines after set_by".into());
    }
    Ok(Entry {
        fleet,
        user,
        version,
        crypt,
        argon2id,
        must_change,
        aging,
        set_at,
        set_by,
    })
}

/// A version: 1 or more, and within what SQLite stores.
fn number(text: &str, name: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .ok()
        .filter(|v| (1..=i64::MAX as u64).contains(v) && !text.starts_with('0'))
        .ok_or(format!("{name} must be a number from 1"))
}

fn aging(text: &str) -> Result<Aging, String> {
    let days = |d: Option<&str>| -> Result<Option<i64>, String> {
        match d {
            Some("-") => Ok(None),
            Some(d) => d
                .parse::<i64>()
                .ok()
                .filter(|d| (0..=99_999).contains(d))
                .map(Some)
                .ok_or(format!("aging day '{d}' is not 0-99999 or '-'")),
            None => Err("aging needs three fields".into()),
        }
    };
    let mut parts = text.split(' ');
    let aging = Aging {
        min: days(parts.next())?,
        max: days(parts.next())?,
        warn: days(parts.next())?,
    };
    if parts.next().is_some() {
        return Err("aging has more than three fields".into());
    }
    Ok(aging)
}

/// A public key as configured: 32 bytes in base64.
pub fn public_key(text: &str) -> Result<VerifyingKey, String> {
    BASE64
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
        .ok_or(format!("'{text}' is not an Ed25519 public key in base64"))
}

pub fn encode_public(key: &VerifyingKey) -> String {
    BASE64.encode(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use credsync_core::secret::Password;
    use credsync_core::store::app_hash::{AppHasher, Argon2Cost};
    use credsync_core::system::crypt::{Algorithm, HashMethod};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn entry() -> Entry {
        let password = Password::new(b"Fleet#Pass-1".to_vec()).unwrap();
        let method = HashMethod {
            algorithm: Algorithm::Sha512,
            rounds: Some(1000),
        };
        let cost = Argon2Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        Entry {
            fleet: "lab".into(),
            user: UserName::parse("admin").unwrap(),
            version: 7,
            crypt: crypt::hash_password(&password, &method).unwrap(),
            argon2id: AppHasher::new(&cost).unwrap().hash(&password).unwrap(),
            must_change: false,
            aging: Aging {
                min: Some(0),
                max: Some(99_999),
                warn: None,
            },
            set_at: 1_796_342_400,
            set_by: "alice".into(),
        }
    }

    #[test]
    fn a_signed_entry_opens_to_itself_with_the_right_key_only() {
        let entry = entry();
        let value = entry.sign(&key(1));
        let trusted = [key(9).verifying_key(), key(1).verifying_key()];
        assert_eq!(
            Entry::open(value.as_bytes(), &trusted, "lab", "admin"),
            Ok(entry.clone())
        );
        assert_eq!(
            Entry::open(value.as_bytes(), &[key(2).verifying_key()], "lab", "admin"),
            Err(Refusal::BadSignature)
        );
        assert!(matches!(
            Entry::open(value.as_bytes(), &trusted, "lab", "root"),
            Err(Refusal::Misplaced(_))
        ));
        assert!(matches!(
            Entry::open(value.as_bytes(), &trusted, "other", "admin"),
            Err(Refusal::Misplaced(_))
        ));
    }

    /// The payload's exact bytes are the protocol (docs/design.md).
    #[test]
    fn the_payload_is_the_documented_text() {
        let entry = entry();
        let payload = entry.payload();
        let expected = format!(
            "credsync-fleet-entry 1\nfleet lab\nuser admin\nversion 7\ncrypt {}\nargon2id {}\nmust_change 0\naging 0 99999 -\nset_at 1796342400\nset_by alice\n",
            entry.crypt.as_str(),
            entry.argon2id
        );
        assert_eq!(payload, expected);
        assert_eq!(parse(&payload), Ok(entry));
    }

    #[test]
    fn tampering_anywhere_breaks_the_signature() {
        let entry = entry();
        let value = entry.sign(&key(1));
        let trusted = [key(1).verifying_key()];
        let tampered = value.replace("version 7", "version 8");
        assert_eq!(
            Entry::open(tampered.as_bytes(), &trusted, "lab", "admin"),
            Err(Refusal::BadSignature)
        );
        let unsigned = serde_json::json!({ "payload": entry.payload() }).to_string();
        assert_eq!(
            Entry::open(unsigned.as_bytes(), &trusted, "lab", "admin"),
            Err(Refusal::Unsigned)
        );
        assert_eq!(
            Entry::open(b"admin:$6$x$y", &trusted, "lab", "admin"),
            Err(Refusal::Unsigned)
        );
    }

    #[test]
    fn a_signed_hash_this_libcrypt_cannot_verify_is_refused() {
        let mut entry = entry();
        entry.crypt = LinuxHash::from_field("$9z$salt$hash").unwrap();
        let value = entry.sign(&key(1));
        assert!(matches!(
            Entry::open(value.as_bytes(), &[key(1).verifying_key()], "lab", "admin"),
            Err(Refusal::Method(_))
        ));
    }

    #[test]
    fn malformed_payloads_are_refused() {
        let good = entry().payload();
        for bad in [
            good.replace("version 7", "version 0"),
            good.replace("version 7", "version 07"),
            good.replace("must_change 0", "must_change yes"),
            good.replace("aging 0 99999 -", "aging 0 99999"),
            good.replace("set_by alice\n", "set_by alice\nextra 1\n"),
            good.trim_end().to_owned(),
            good.replace("fleet lab", "fleet ../x"),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_keys_round_trip_through_base64() {
        let public = key(3).verifying_key();
        assert_eq!(public_key(&encode_public(&public)), Ok(public));
        assert!(public_key("not a key").is_err());
    }
}
