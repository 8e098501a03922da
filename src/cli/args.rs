//! The command line, as users type it. Names and flags are the contract.
#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "credsync",
    version,
    about = "Change a password in the Linux account and the application's record at once, and keep them in step",
    long_about = None,
)]
pub struct Cli {
    /// Take every system path under DIR (offline images, test fixtures); refused when setuid
    #[arg(long, value_name = "DIR", global = true)]
    pub root: Option<PathBuf>,
    /// Print results as JSON
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Change a password (your own, or USER's as root)
    Passwd(PasswdArgs),
    /// The appliance CLI's words: `set password` changes your own password
    Set {
        #[command(subcommand)]
        what: SetWhat,
    },
    /// Administrator recovery of a lost password, in one step (root only)
    Recover(RecoverArgs),
    /// Reconcile the record and the Linux account; run at every service start (root only)
    Sync {
        /// Report what would be done without writing anything
        #[arg(long)]
        dry_run: bool,
    },
    /// Show the state of each managed account (yours only, unless root)
    Status {
        /// Only this user
        user: Option<String>,
    },
    /// Check a password against the application record (exit 0 when it matches)
    Verify {
        user: String,
        /// Read the password from standard input instead of the terminal
        #[arg(long)]
        stdin: bool,
    },
    /// Change many passwords from `user:password` lines on standard input, all or nothing (root only)
    Import {
        /// Force each user to change the password at next login
        #[arg(long)]
        expire: bool,
        /// Set passwords that break the password policy (the broken rules are
        /// shown as warnings)
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// The account to change (default: your own)
    pub user: Option<String>,
    /// Read passwords from standard input, one per line, without prompts
    #[arg(long)]
    pub stdin: bool,
    /// Force a change at next login
    #[arg(long)]
    pub expire: bool,
    /// Root only: set a password that breaks the password policy (the broken
    /// rules are shown as warnings), as `passwd` lets root do
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum SetWhat {
    /// Change your own password
    Password {
        /// Read passwords from standard input, one per line, without prompts
        #[arg(long)]
        stdin: bool,
    },
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    pub user: String,
    /// Read the new password from standard input instead of the terminal
    #[arg(long)]
    pub stdin: bool,
    /// Force a change at next login
    #[arg(long)]
    pub expire: bool,
    /// Root only: set a password that breaks the password policy (the broken
    /// rules are shown as warnings), as `passwd` lets root do
    #[arg(long)]
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
