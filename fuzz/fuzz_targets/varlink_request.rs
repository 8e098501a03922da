//! A request to credsyncd as arbitrary bytes (one message, without its NUL):
//! decoding never panics; a call is accepted only when the message is one JSON
//! object whose `method` is a string, and then its method and parameters are
//! those of the object (invalid UTF-8 anywhere is refused); a refusal is
//! fixed words and a position, never part of the message.
#![no_main]

use credsyncd::wire::{Params, Secret, decode};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(call) => {
            let Ok(object) = serde_json::from_slice::<Value>(data) else {
                // A string with a lone surrogate escape (`\ude00`): serde_json's
                // Value refuses it, the raw parameters keep it. Whatever a
                // method then reads must be an answer, not a panic.
                if let Ok(params) = Params::parse(call.parameters) {
                    for name in ["user", "password", "initial"] {
                        let _ = params.optional::<String>(name);
                        let _ = params.optional::<Secret>(name);
                        let _ = params.optional::<bool>(name);
                    }
                }
                return;
            };
            assert_eq!(
                object.get("method").and_then(Value::as_str),
                Some(call.method.as_ref()),
                "the method is not the object's"
            );
            let Ok(params) = Params::parse(call.parameters) else {
                let parameters = object.get("parameters");
                assert!(
                    parameters.is_some_and(|p| !p.is_object() && !p.is_null()),
                    "an object's parameters were refused"
                );
                return;
            };
            for name in ["user", "password", "current_password", "new_password", "initial"] {
                let given = object.get("parameters").and_then(|p| p.get(name));
                let text = params.optional::<String>(name);
                let secret = params.optional::<Secret>(name);
                let flag = params.optional::<bool>(name);
                match given {
                    None | Some(Value::Null) => {
                        assert!(matches!(text, Ok(None)), "{name}: absent yet found");
                        assert!(params.required::<String>(name).is_err(), "{name}: required yet absent");
                    }
                    Some(Value::String(s)) => {
                        assert_eq!(text.as_ref().ok().and_then(Option::as_deref), Some(s.as_str()));
                        assert_eq!(secret.ok().flatten().map(|Secret(s)| s.to_string()).as_deref(), Some(s.as_str()));
                        assert!(flag.is_err(), "{name}: a string read as a flag");
                    }
                    Some(Value::Bool(b)) => assert_eq!(flag.ok().flatten(), Some(*b)),
                    Some(_) => assert!(text.is_err() && secret.is_err(), "{name}: not a string, read as one"),
                }
            }
        }
        Err(e) => {
            // Fixed words and two numbers: nothing of the request.
            let message = e.to_string();
            let rest = message
                .strip_prefix("the request is not a varlink call (a JSON object with a string \"method\"), at line ")
                .unwrap_or_else(|| panic!("{message}"));
            let (line, column) = rest.split_once(" column ").unwrap_or_else(|| panic!("{message}"));
            assert!(
                line.parse::<usize>().is_ok() && column.parse::<usize>().is_ok(),
                "{message}"
            );
        }
    }
});
