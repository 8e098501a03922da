//! The front door: parse the command line, establish who is calling and under
//! which root, run one command, and turn its outcome into one line on stderr
//! and a documented exit code (`credsync_core::error::exit`).
#![forbid(unsafe_code)]

mod api;
mod args;
mod commands;
mod fleet;
pub mod input;
mod report;

use args::{ApiAction, Cli, Command, SetWhat};
use clap::{CommandFactory, Parser};
use credsync_core::access::Caller;
use credsync_core::clock::Now;
use credsync_core::config::Config;
use credsync_core::error::{Error, exit};
use credsync_core::system::Paths;
use credsync_core::system::privilege::{self, Invoker};
use std::process::ExitCode;

/// The command line's definition, from which the man pages and the shell
/// completions are generated.
pub fn command() -> clap::Command {
    Cli::command()
}

pub fn main() -> ExitCode {
    let invoker = privilege::harden();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match run(invoker, cli) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(e) => {
            report::warn(&one_line(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Help and version go to stdout with success; a usage error is one line.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        let code = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            exit::USAGE
        } else {
            exit::SUCCESS
        };
        return ExitCode::from(code);
    }
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or("invalid usage")
        .trim_start_matches("error: ");
    report::warn(&format!("{first}; see 'credsync --help'"));
    ExitCode::from(exit::USAGE)
}

fn one_line(message: &str) -> String {
    message.replace(['\n', '\r'], " ")
}

/// Everything a command needs to know about the run it is part of.
pub struct Context {
    pub paths: Paths,
    pub config: Config,
    pub caller: Caller,
    pub json: bool,
    /// Owner required of the store: the effective user (root, or the `--root` caller).
    pub store_owner: u32,
    pub now: Now,
}

fn run(invoker: Invoker, cli: Cli) -> Result<(), Error> {
    if let Command::Api {
        action:
            ApiAction::Call {
                method,
                parameters,
                more,
                socket,
            },
    } = &cli.command
    {
        let socket = match (socket, &cli.root) {
            (Some(path), _) => path.clone(),
            (None, Some(root)) => Paths::under(root).under_root(api::SOCKET),
            (None, None) => api::SOCKET.into(),
        };
        return api::call(&invoker, &socket, method, parameters.as_deref(), *more);
    }
    if let Command::Fleet { args } = &cli.command {
        return fleet::hand_over(&invoker, cli.root.as_deref(), cli.json, args);
    }
    let paths = match &cli.root {
        None if invoker.effective_uid != 0 => {
            return Err(Error::Denied(
                "credsync must run as root to reach the system's password files: \
                 install it setuid root or use sudo"
                    .into(),
            ));
        }
        None => Paths::system(),
        Some(_) if invoker.elevated => {
            return Err(Error::Denied(
                "--root is not allowed when credsync runs setuid".into(),
            ));
        }
        Some(dir) => {
            // An image's or a fixture's accounts are not this system's.
            credsync_core::system::linux_audit::turn_off();
            Paths::under(dir)
        }
    };
    let config = Config::load(&paths.config())?;
    let caller = Caller::identify(&paths, invoker.real_uid)?;
    let ctx = Context {
        paths,
        config,
        caller,
        json: cli.json,
        store_owner: invoker.effective_uid,
        now: Now::read(),
    };
    match cli.command {
        Command::Passwd(a) => commands::passwd(&ctx, a.user.as_deref(), a.stdin, a.expire, a.force),
        Command::Set {
            what: SetWhat::Password { stdin },
        } => commands::passwd(&ctx, None, stdin, false, false),
        Command::Recover(a) => commands::recover(&ctx, &a.user, a.stdin, a.expire, a.force),
        Command::Sync { dry_run } => commands::sync(&ctx, dry_run),
        Command::Status { user } => commands::status(&ctx, user.as_deref()),
        Command::Verify { user, stdin } => commands::verify(&ctx, &user, stdin),
        Command::Import {
            expire,
            force,
            hashed,
        } => commands::import(&ctx, expire, force, hashed),
        Command::Api { .. } | Command::Fleet { .. } => {
            unreachable!("answered before the context is built")
        }
    }
}
