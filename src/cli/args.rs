//! The command line, as users type it. Names and flags are the contract. The
//! help reads like `passwd(1)`'s; the man pages and shell completions are
//! generated from these definitions (`cargo xtask assets`).
#![forbid(unsafe_code)]

use clap::{ArgAction, Args, Parser, Subcommand};
use std::path::PathBuf;

/// `credsync --version`: the version and how this build was made.
macro_rules! long_version {
    ($features:literal) => {
        concat!(
            env!("CARGO_PKG_VERSION"),
            "\nfeatures: ",
            $features,
            "\nstore: SQLite (bundled), Argon2id; Linux hashes: libxcrypt; policy: libpwquality"
        )
    };
}
#[cfg(not(feature = "fault-injection"))]
const LONG_VERSION: &str = long_version!("none (release build)");
#[cfg(feature = "fault-injection")]
const LONG_VERSION: &str = long_version!(
    "fault-injection (a test build: CREDSYNC_FAULT aborts it mid-write; never install it)"
);

#[derive(Debug, Parser)]
#[command(
    name = "credsync",
    version,
    long_version = LONG_VERSION,
    about = "change a password in the Linux account and the application's record at once, and keep them in step",
    long_about = None,
    disable_help_flag = true,
    disable_version_flag = true,
    disable_help_subcommand = true,
    subcommand_value_name = "COMMAND",
    subcommand_help_heading = "Commands",
    override_usage = "credsync [options] COMMAND [ARGS]",
)]
pub struct Cli {
    /// take every system path under DIR (offline images, test fixtures); refused when setuid
    #[arg(short = 'R', long, value_name = "DIR", global = true)]
    pub root: Option<PathBuf>,
    /// print results as JSON
    #[arg(long, global = true)]
    pub json: bool,
    /// display this help message and exit
    #[arg(short = 'h', long = "help", action = ArgAction::Help, global = true)]
    _help: Option<bool>,
    /// display the version and the build's features, and exit
    #[arg(short = 'V', long = "version", action = ArgAction::Version)]
    _version: Option<bool>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// change a password (your own, or USER's as root)
    #[command(override_usage = "credsync passwd [options] [USER]")]
    Passwd(PasswdArgs),
    /// the appliance CLI's words: `set password` changes your own password
    #[command(
        override_usage = "credsync set password [options]",
        subcommand_value_name = "WHAT",
        subcommand_help_heading = "What to set"
    )]
    Set {
        #[command(subcommand)]
        what: SetWhat,
    },
    /// recover a lost password in one step (root only)
    #[command(override_usage = "credsync recover [options] USER")]
    Recover(RecoverArgs),
    /// reconcile the record with the Linux accounts; run at every service start (root only)
    #[command(override_usage = "credsync sync [options]")]
    Sync {
        /// report what would be done without writing anything
        #[arg(short = 'n', long)]
        dry_run: bool,
    },
    /// show the state of each managed account (yours only, unless root)
    #[command(override_usage = "credsync status [options] [USER]")]
    Status {
        /// only this account
        user: Option<String>,
    },
    /// check a password against the application record (exit 0 when it matches)
    #[command(override_usage = "credsync verify [options] USER")]
    Verify {
        /// the account whose password to check
        user: String,
        /// read the password from standard input instead of the terminal
        #[arg(short, long)]
        stdin: bool,
    },
    /// change many passwords from `user:password` lines on standard input, all or nothing (root only)
    #[command(override_usage = "credsync import [options] < FILE")]
    Import {
        /// force each user to change the password at next login
        #[arg(short, long)]
        expire: bool,
        /// accept passwords that break the policy, with warnings
        #[arg(short, long, conflicts_with = "hashed")]
        force: bool,
        /// take `user:crypt_hash[:argon2id_phc]` lines, as `chpasswd -e` does; anything that is not a hash is refused
        #[arg(short = 'H', long)]
        hashed: bool,
    },
    /// the fleet on etcd: `set`, `import`, `status`, `reconcile`, `keygen` (root only; see credsync-fleet(8))
    #[command(override_usage = "credsync fleet COMMAND [ARGS]")]
    Fleet {
        /// the fleet command and its arguments, passed to credsync-fleet
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<std::ffi::OsString>,
    },
    /// talk to the service (credsyncd) as the applications do
    #[command(
        override_usage = "credsync api call [options] METHOD [PARAMETERS]",
        subcommand_value_name = "ACTION",
        subcommand_help_heading = "Actions"
    )]
    Api {
        #[command(subcommand)]
        action: ApiAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiAction {
    /// call one method of io.credsync.Credentials and print each reply's parameters as a JSON line
    #[command(override_usage = "credsync api call [options] METHOD [PARAMETERS]")]
    Call {
        /// the method: `Verify`, or a full name such as `org.varlink.service.GetInfo`
        method: String,
        /// the parameters as a JSON object (default {}); `-` reads them from standard input, which is where passwords go
        parameters: Option<String>,
        /// ask for a stream of replies (`Monitor`) and print each as it comes
        #[arg(long)]
        more: bool,
        /// the service's socket
        #[arg(long, value_name = "PATH")]
        socket: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// the account to change (default: your own)
    pub user: Option<String>,
    /// read passwords from standard input, one per line, without prompts
    #[arg(short, long)]
    pub stdin: bool,
    /// force a change at next login
    #[arg(short, long)]
    pub expire: bool,
    /// root only: accept a password that breaks the policy, with warnings, as `passwd` lets root do
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum SetWhat {
    /// change your own password
    #[command(override_usage = "credsync set password [options]")]
    Password {
        /// read passwords from standard input, one per line, without prompts
        #[arg(short, long)]
        stdin: bool,
    },
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// the account whose password is lost
    pub user: String,
    /// read the new password from standard input instead of the terminal
    #[arg(short, long)]
    pub stdin: bool,
    /// force a change at next login
    #[arg(short, long)]
    pub expire: bool,
    /// accept a password that breaks the policy, with warnings, as `passwd` lets root do
    #[arg(short, long)]
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
