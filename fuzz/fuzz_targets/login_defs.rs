//! `/etc/login.defs` as arbitrary bytes, read the way credsync reads the file
//! (invalid UTF-8 replaced): every key a line defines is found, its value is
//! cut the way shadow-utils cuts it, and numbers read as numbers.
#![no_main]

use credsync_core::system::method::LoginDefs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let defs = LoginDefs::parse(&text);
    for line in text.lines() {
        let line = line.trim_matches([' ', '\t', '\r', '\n']);
        if line.starts_with('#') {
            continue;
        }
        let Some((key, _)) = line.split_once([' ', '\t']) else {
            continue;
        };
        let value = defs
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} is defined but not found"));
        assert!(!value.contains('"'), "{value:?} keeps a quote");
        assert!(
            !value.starts_with([' ', '\t']) && !value.ends_with([' ', '\t']),
            "{value:?} keeps blanks"
        );
        assert!(!value.contains('\n'), "{value:?} spans lines");
        assert_eq!(defs.get_number(key), value.parse::<i64>().ok());
    }
});
