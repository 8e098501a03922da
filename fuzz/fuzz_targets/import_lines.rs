//! `credsync import`'s standard input as arbitrary bytes: a batch is accepted
//! only when every non-blank line is `user:password` with a valid name, a
//! usable password and no repeated user, and then each change is exactly its
//! line split at the first colon; anything else is refused with a line number.
#![no_main]

use credsync::cli::input::parse_import;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = data;
    match parse_import(&mut reader) {
        Ok(batch) => {
            // Lines as `read_line` ends them: at `\n`, then one `\r` before it.
            let lines: Vec<&[u8]> = data
                .split_inclusive(|&b| b == b'\n')
                .map(|l| match l.strip_suffix(b"\n") {
                    Some(l) => l.strip_suffix(b"\r").unwrap_or(l),
                    None => l,
                })
                .collect();
            let wanted: Vec<usize> = (1..=lines.len())
                .filter(|&n| !lines[n - 1].is_empty())
                .collect();
            let numbers: Vec<usize> = batch.iter().map(|(n, _)| *n).collect();
            assert_eq!(numbers, wanted, "not every non-blank line became a change");
            for (i, (n, change)) in batch.iter().enumerate() {
                let mut line = change.user.as_str().as_bytes().to_vec();
                line.push(b':');
                line.extend_from_slice(change.password.as_bytes());
                assert_eq!(line, lines[n - 1], "line {n} is not what was read");
                assert!(
                    batch[..i].iter().all(|(_, c)| c.user != change.user),
                    "user {} is named twice",
                    change.user
                );
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.starts_with("line ") || message.starts_with("no user:password lines"),
                "{message}"
            );
            assert!(message.ends_with("nothing was changed"), "{message}");
        }
    }
});
