//! credsync-fleet: the conductor's commands and the node agent of fleet mode
//! (docs/design.md, "The fleet"). `credsync fleet …` runs this binary.
#![forbid(unsafe_code)]

pub mod agent;
pub mod conductor;
pub mod config;
pub mod entry;
pub mod report;
pub mod transport;

use agent::Node;
use clap::{Parser, Subcommand};
use conductor::{Conductor, Desired};
use config::{FleetConfig, Role};
use credsync_core::access::Caller;
use credsync_core::account::UserName;
use credsync_core::config::Config;
use credsync_core::error::{Error, exit};
use credsync_core::input::{self, Input, parse_import};
use credsync_core::system::Paths;
use credsync_core::system::passwd::read_passwd;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(
    name = "credsync-fleet",
    version,
    about = "one password change on the conductor reaches both stores of every appliance, through etcd"
)]
struct Cli {
    /// take every system path under DIR (images, test fixtures)
    #[arg(short = 'R', long, value_name = "DIR", global = true)]
    root: Option<PathBuf>,
    /// print results as JSON
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// set USER's password on every node (conductor)
    Set {
        user: String,
        /// read the password from standard input instead of the terminal
        #[arg(short, long)]
        stdin: bool,
        /// force a change at next login on every node
        #[arg(short, long)]
        expire: bool,
    },
    /// set many passwords from `user:password` lines on standard input, in one transaction (conductor)
    Import {
        /// force a change at next login on every node
        #[arg(short, long)]
        expire: bool,
    },
    /// each user's desired version and every node's (conductor)
    Status,
    /// publish the current entries again under a new version (conductor), or apply them over local changes here (node)
    Reconcile {
        /// only these users (default: all on the conductor, every drifted user on a node)
        users: Vec<String>,
    },
    /// make a new signing key in FILE (mode 0600) and print its public key
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// run the node agent (credsync-fleet.service)
    Agent {
        /// test and benchmark use only: run one agent per root found in DIR, in this process
        #[arg(long, value_name = "DIR", hide = true)]
        simulate: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::from(exit::SUCCESS),
        Err(e) => {
            eprintln!(
                "credsync-fleet: {}",
                e.to_string().replace(['\n', '\r'], " ")
            );
            ExitCode::from(e.exit_code())
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Failure(format!("cannot start the runtime: {e}")))
}

fn run(cli: Cli) -> Result<(), Error> {
    let uid = nix::unistd::getuid().as_raw();
    if cli.root.is_none() && uid != 0 {
        return Err(Error::Denied(
            "credsync-fleet must run as root (sudo credsync fleet …)".into(),
        ));
    }
    if let Command::Keygen { out } = &cli.command {
        let public = conductor::keygen(out)?;
        println!("{public}");
        return Ok(());
    }
    if let Command::Agent {
        simulate: Some(dir),
    } = &cli.command
    {
        return simulate(dir);
    }
    if cli.root.is_some() {
        // An image's or a fixture's accounts are not this system's.
        credsync_core::system::linux_audit::turn_off();
    }
    let paths = cli.root.as_deref().map_or_else(Paths::system, Paths::under);
    let config = Config::load(&paths.config())?;
    let fleet = FleetConfig::load(&paths).map_err(Error::Invalid)?;
    let store_owner = nix::unistd::geteuid().as_raw();
    let caller = Caller::identify(&paths, uid)?;
    match cli.command {
        Command::Agent { .. } => {
            if fleet.role != Role::Node {
                // The conductor's own fleet.toml lets the unit start there:
                // nothing to do, and not a failure.
                eprintln!(
                    "credsync-fleet: this host is the fleet's conductor; the agent runs on nodes only"
                );
                return Ok(());
            }
            let node = Node::new(paths, config, fleet, store_owner);
            runtime()?.block_on(async {
                let (stop, stopped) = watch::channel(false);
                tokio::spawn(async move {
                    terminated().await;
                    let _ = stop.send(true);
                });
                node.run(stopped).await;
            });
            Ok(())
        }
        Command::Reconcile { users } if fleet.role == Role::Node => {
            let only = names(&users)?;
            let mut node = Node::new(paths, config, fleet, store_owner);
            let done = runtime()?
                .block_on(node.reconcile_here(&only))
                .map_err(Error::Failure)?;
            say(
                cli.json,
                &serde_json::json!({ "applied": done }),
                &if done.is_empty() {
                    "nothing to reconcile: every fleet user holds the fleet's password".to_owned()
                } else {
                    format!("applied the fleet's password to {}", done.join(", "))
                },
            );
            Ok(())
        }
        command => {
            Conductor::require_conductor(&fleet)?;
            let by = human(&paths, &caller);
            // It goes into the signed payload, whose values hold no space.
            UserName::parse(&by).map_err(|e| {
                Error::Invalid(format!("the name '{by}' can't sign fleet entries: {e}"))
            })?;
            let conductor = Conductor {
                paths,
                config,
                fleet,
                store_owner,
                by,
            };
            conduct(&conductor, command, cli.json)
        }
    }
}

fn conduct(conductor: &Conductor, command: Command, json: bool) -> Result<(), Error> {
    match command {
        Command::Set {
            user,
            stdin,
            expire,
        } => {
            let user = names(&[user])?.remove(0);
            let mut input = Input::new(stdin);
            let password = input.confirmed_password()?.ok_or_else(input::mismatch)?;
            let versions =
                runtime()?.block_on(conductor.publish(vec![Desired { user, password }], expire))?;
            published(json, &conductor.fleet.fleet, &versions);
            Ok(())
        }
        Command::Import { expire } => {
            let batch = parse_import(&mut input::Stdin::new())?;
            let batch = batch
                .into_iter()
                .map(|(_, c)| Desired {
                    user: c.user,
                    password: c.password,
                })
                .collect();
            let versions = runtime()?.block_on(conductor.publish(batch, expire))?;
            published(json, &conductor.fleet.fleet, &versions);
            Ok(())
        }
        Command::Reconcile { users } => {
            let only = names(&users)?;
            let versions = runtime()?.block_on(conductor.reconcile(&only))?;
            published(json, &conductor.fleet.fleet, &versions);
            Ok(())
        }
        Command::Status => {
            let status = runtime()?.block_on(conductor.status())?;
            if json {
                for user in &status {
                    println!(
                        "{}",
                        serde_json::to_string(user).expect("status serialises")
                    );
                }
                return Ok(());
            }
            for user in &status {
                match &user.problem {
                    Some(problem) => println!("{}: desired state unreadable: {problem}", user.user),
                    None => println!(
                        "{}: version {} (set by {} at {})",
                        user.user,
                        user.version,
                        user.set_by,
                        credsync_core::clock::utc_text(user.set_at)
                    ),
                }
                for node in &user.nodes {
                    let applied = node
                        .applied
                        .map(|v| format!(" (version {v})"))
                        .unwrap_or_default();
                    let detail = node
                        .detail
                        .as_ref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default();
                    println!("  {:<24} {}{applied}{detail}", node.node, node.state);
                }
            }
            Ok(())
        }
        Command::Keygen { .. } | Command::Agent { .. } => unreachable!("handled before"),
    }
}

fn names(users: &[String]) -> Result<Vec<UserName>, Error> {
    users
        .iter()
        .map(|name| UserName::parse(name).map_err(|e| Error::Invalid(e.to_string())))
        .collect()
}

/// The human behind the command: the login user that `sudo` keeps, else the caller.
fn human(paths: &Paths, caller: &Caller) -> String {
    caller
        .login_uid
        .and_then(|auid| {
            read_passwd(&paths.passwd())
                .ok()?
                .into_iter()
                .find(|p| p.uid == auid)
                .map(|p| p.name)
        })
        .unwrap_or_else(|| caller.name.to_string())
}

fn published(json: bool, fleet: &str, versions: &[(String, u64)]) {
    for (user, version) in versions {
        say(
            json,
            &serde_json::json!({ "fleet": fleet, "user": user, "version": version }),
            &format!("fleet {fleet}: {user} is now version {version}"),
        );
    }
}

fn say(json: bool, value: &serde_json::Value, text: &str) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Test and benchmark use only (`agent --simulate DIR`): one agent per
/// fixture root under DIR, each with its own configuration, store and etcd
/// connection, in one process. Not for production: one process failing
/// takes every simulated node with it.
fn simulate(dir: &std::path::Path) -> Result<(), Error> {
    credsync_core::system::linux_audit::turn_off();
    let mut nodes = Vec::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Failure(format!("cannot read {}: {e}", dir.display())))?;
    let store_owner = nix::unistd::geteuid().as_raw();
    for entry in entries {
        let root = entry.map_err(|e| Error::Failure(e.to_string()))?.path();
        let paths = Paths::under(&root);
        let config = Config::load(&paths.config())?;
        let fleet = FleetConfig::load(&paths).map_err(Error::Invalid)?;
        nodes.push(Node::new(paths, config, fleet, store_owner));
    }
    runtime()?.block_on(async {
        let (stop, stopped) = watch::channel(false);
        let tasks: Vec<_> = nodes
            .into_iter()
            .map(|node| tokio::spawn(node.run(stopped.clone())))
            .collect();
        terminated().await;
        let _ = stop.send(true);
        for task in tasks {
            let _ = task.await;
        }
    });
    Ok(())
}
