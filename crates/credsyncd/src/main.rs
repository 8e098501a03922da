//! credsyncd: see the library's documentation (and docs/design.md, "The service").
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    credsyncd::main()
}
