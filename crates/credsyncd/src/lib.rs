//! credsyncd: the varlink service `io.credsync.Credentials`, through which an
//! appliance's GUI, PCLI and API backends verify and change passwords and
//! hear of every change. It is a thin async shell over `credsync-core`: the
//! same rules, locks and stores as the command line and the PAM module.
//!
//! - `wire`: the varlink framing, bounded and wiped;
//! - `interface`: the IDL and its errors;
//! - `peer`: who is calling (`SO_PEERCRED`) and what they may do;
//! - `service`: the methods;
//! - `monitor`: the events, from watching both stores;
//! - `server`: connections, limits, idle exit and graceful stop;
//! - `activation`: the socket from systemd, or bound here.

pub mod activation;
pub mod interface;
pub mod monitor;
pub mod peer;
pub mod server;
pub mod service;
pub mod wire;

use clap::Parser;
use credsync_core::config::Config;
use credsync_core::system::{Paths, linux_audit, syslog};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The socket's path under the root.
pub const SOCKET: &str = "run/credsync/io.credsync.Credentials";

#[derive(Parser)]
#[command(
    name = "credsyncd",
    version,
    about = "Serve io.credsync.Credentials: verify and change passwords for the appliance's applications"
)]
struct Args {
    /// Work on the system under DIR (an image or a test fixture), as `credsync --root`
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Bind this socket instead of the default (ignored when systemd passes one)
    #[arg(long, value_name = "PATH")]
    listen: Option<PathBuf>,
}

/// Exit codes: 0 after an idle exit or a graceful stop, 2 for a usage
/// error, 3 when the service can't start.
pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    syslog::set_identity(c"credsyncd");
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("credsyncd: {}", why.replace('\n', " "));
            ExitCode::from(3)
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let paths = match &args.root {
        Some(dir) => {
            linux_audit::turn_off();
            Paths::under(dir)
        }
        None => Paths::system(),
    };
    let config = Config::load(&paths.config()).map_err(|e| e.to_string())?;
    let listener = match activation::passed()? {
        Some(listener) => listener,
        None => {
            let path = args
                .listen
                .clone()
                .unwrap_or_else(|| paths.under_root(SOCKET));
            activation::bind(&path)?
        }
    };
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot use the socket: {e}"))?;
    raise_descriptor_limit();
    let store_owner = nix::unistd::geteuid().as_raw();
    let monitor = monitor::Monitor::start(paths.clone(), store_owner)
        .map_err(|e| format!("cannot watch the stores: {e}"))?;
    let limits = server::Limits::from(&config.api);
    let service = Arc::new(service::Service::new(paths, config, store_owner, monitor));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("credsyncd")
        .build()
        .map_err(|e| format!("cannot start: {e}"))?;
    runtime.block_on(async {
        let listener = tokio::net::UnixListener::from_std(listener)
            .map_err(|e| format!("cannot use the socket: {e}"))?;
        server::serve(listener, service, limits).await;
        Ok::<(), String>(())
    })?;
    // Blocking work still running (a hash whose client left) is not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}

/// Every connection is a descriptor: the soft limit goes up to the hard one
/// (systemd's default soft limit is 1024).
fn raise_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}
