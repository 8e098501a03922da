//! The `credsync` command line: arguments, prompts, messages and exit codes
//! over `credsync-core`, which holds both stores, the change, the drift rules,
//! the policy and the lockout. `main.rs` only hands over to [`cli::main`].

pub mod cli;
