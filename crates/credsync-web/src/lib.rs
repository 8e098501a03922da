//! credsync-web: the self-service page (Profile → Change Password) for the
//! accounts credsync manages.
//!
//! An unprivileged program: it runs as its own system user, a member of
//! credsync.toml's `[api] groups`, and reaches the credentials only through
//! credsyncd's varlink socket (`api`). It never opens /etc/shadow or the
//! store. Sessions are held here (`sessions`), ended when the service's
//! `Monitor` stream says their user's password changed (`follow_changes`).
//!
//! Exit codes: 0 after SIGTERM or SIGINT, 2 for a bad command line or
//! config, 3 when it cannot listen or is started as root.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
mod form;
pub mod pages;
pub mod server;
pub mod sessions;
mod throttle;

use clap::Parser;
use config::Config;
use pages::App;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "credsync-web",
    version,
    about = "The self-service password page over credsyncd"
)]
struct Args {
    /// Address and port to listen on [default: 127.0.0.1:8088].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// credsyncd's socket [default: /run/credsync/io.credsync.Credentials].
    #[arg(long, value_name = "PATH")]
    api: Option<PathBuf>,
    /// The config file [default: /etc/credsync/web.toml].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let args = Args::parse();
    let named = args.config.is_some();
    let path = args
        .config
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let mut config = match Config::load(&path, named) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("credsync-web: {message}");
            return ExitCode::from(2);
        }
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(api) = args.api {
        config.api = api;
    }
    if nix::unistd::geteuid().is_root() {
        eprintln!(
            "credsync-web: refusing to run as root; run it as its own user (credsync-web.service does), a member of credsync.toml's [api] groups"
        );
        return ExitCode::from(3);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("credsync-web: cannot start: {e}");
            return ExitCode::from(3);
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    let server = match server::Server::bind(&config).await {
        Ok(server) => server,
        Err(message) => {
            eprintln!("credsync-web: {message}");
            return ExitCode::from(3);
        }
    };
    let app = Arc::new(App::new(&config));
    let scheme = if config.tls() { "https" } else { "http" };
    match server.local_addr() {
        Ok(addr) => eprintln!(
            "credsync-web: listening on {scheme}://{addr}/ (credsyncd at {})",
            config.api.display()
        ),
        Err(_) => eprintln!("credsync-web: listening"),
    }
    tokio::spawn(follow_changes(Arc::clone(&app)));
    let router = pages::router(Arc::clone(&app));
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(e) => {
                eprintln!("credsync-web: cannot handle SIGTERM: {e}");
                return ExitCode::from(3);
            }
        };
    tokio::select! {
        _ = server.serve(router) => {}
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}

/// The initial events come in one burst; this long without one ends it.
const INITIAL_BURST: Duration = Duration::from_millis(100);

/// Follows credsyncd's `Monitor` stream for as long as the page runs,
/// reconnecting after a break; while it is down, requests ask the service
/// for their user's epoch themselves (`pages::logged_in`).
async fn follow_changes(app: Arc<App>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match app.api.monitor().await {
            Ok(mut monitor) => {
                // Read on a task of its own, so that waiting for the end of
                // the initial burst cancels nothing half read.
                let (events, mut received) = tokio::sync::mpsc::channel(1024);
                let reader = tokio::spawn(async move {
                    while let Ok(Some(event)) = monitor.next().await {
                        if events.send(event).await.is_err() {
                            break;
                        }
                    }
                });
                let mut live = false;
                loop {
                    let next = if live {
                        received.recv().await
                    } else {
                        match tokio::time::timeout(INITIAL_BURST, received.recv()).await {
                            Ok(next) => next,
                            Err(_) => {
                                // Every account's current epoch is in: from
                                // now on the stream is the whole truth.
                                app.monitor_live.store(true, Ordering::Release);
                                live = true;
                                backoff = Duration::from_millis(200);
                                continue;
                            }
                        }
                    };
                    let Some(event) = next else { break };
                    app.revocations
                        .heard(&event.user, event.session_epoch, &event.source);
                }
                reader.abort();
                app.monitor_live.store(false, Ordering::Release);
                eprintln!("credsync-web: credsyncd's Monitor stream ended; reconnecting");
            }
            Err(e) => {
                app.monitor_live.store(false, Ordering::Release);
                if backoff >= Duration::from_secs(5) {
                    eprintln!("credsync-web: cannot reach credsyncd: {e}");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
