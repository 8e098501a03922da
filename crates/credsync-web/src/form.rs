//! A posted form (`application/x-www-form-urlencoded`), decoded into buffers
//! that are wiped when dropped: the fields hold passwords.
#![forbid(unsafe_code)]

use zeroize::Zeroizing;

pub struct Form {
    fields: Vec<(String, Zeroizing<String>)>,
}

impl Form {
    /// `None` if a field is not valid UTF-8 once decoded.
    pub fn parse(body: &[u8]) -> Option<Form> {
        let mut fields = Vec::new();
        for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            let name = String::from_utf8(decode(name).to_vec()).ok()?;
            let value = decode(value);
            let value = Zeroizing::new(std::str::from_utf8(&value).ok()?.to_owned());
            fields.push((name, value));
        }
        Some(Form { fields })
    }

    /// The first value of `name`; empty if absent.
    pub fn get(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// Percent-decoding, `+` as a space, into a buffer sized once and wiped.
fn decode(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && hex(bytes[i + 1]).is_some()
                && hex(bytes[i + 2]).is_some() =>
            {
                out.push(hex(bytes[i + 1]).unwrap_or(0) << 4 | hex(bytes[i + 2]).unwrap_or(0));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_decoded() {
        let form =
            Form::parse(b"user=alice&password=P%40ss+w%C3%B6rd%25&csrf=ab&empty=&bare").unwrap();
        assert_eq!(form.get("user"), "alice");
        assert_eq!(form.get("password"), "P@ss w\u{f6}rd%");
        assert_eq!(form.get("csrf"), "ab");
        assert_eq!(form.get("empty"), "");
        assert_eq!(form.get("bare"), "");
        assert_eq!(form.get("missing"), "");
    }

    #[test]
    fn a_broken_escape_stays_as_it_was() {
        let form = Form::parse(b"a=%zz&b=%4").unwrap();
        assert_eq!(form.get("a"), "%zz");
        assert_eq!(form.get("b"), "%4");
    }

    #[test]
    fn invalid_utf8_is_refused() {
        assert!(Form::parse(b"password=%ff%fe").is_none());
    }
}
