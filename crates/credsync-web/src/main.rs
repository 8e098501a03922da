//! credsync-web: see the library's documentation (and README, "Web self-service").
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    credsync_web::main()
}
