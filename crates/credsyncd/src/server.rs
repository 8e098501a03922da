//! Connections: accepted up to `[api] max_connections` (one more is answered
//! `Busy` and closed), and up to `max_connections_per_user` for one ordinary
//! user (neither root nor in `[api] groups`), so that no local user can take
//! them all; each is served by its own task, one call at a time as
//! varlink orders replies. A request longer than `max_request_bytes` is
//! answered `InvalidArgument` and its connection closed; a connection that
//! leaves a message unfinished, or sends nothing, for `idle_timeout_secs` is
//! closed, and so is a `Monitor` stream its client stops reading. No client
//! can hold up another: the slow one waits alone in its own task.
//!
//! The service exits after `exit_idle_secs` with no connection (socket
//! activation starts it again at the next one), and on SIGTERM or SIGINT it
//! stops accepting, lets every call in progress finish and send its reply,
//! then exits.
#![forbid(unsafe_code)]

use crate::interface::{self, Refusal};
use crate::monitor::Event;
use crate::peer::{Peer, Role};
use crate::service::{Answer, Service};
use crate::wire::{self, Call, Params, ReadError, Reader};
use credsync_core::config::ApiConfig;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, broadcast, watch};
use tokio::time::timeout;

/// How long a stopping service waits for the calls in progress.
const DRAIN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// For an ordinary user: neither root nor in `[api] groups`.
    pub per_user: usize,
    pub max_request_bytes: usize,
    pub idle: Duration,
    /// `None`: never exit for want of clients.
    pub exit_idle: Option<Duration>,
}

impl From<&ApiConfig> for Limits {
    fn from(api: &ApiConfig) -> Limits {
        Limits {
            max_connections: api.max_connections,
            per_user: api.max_connections_per_user,
            max_request_bytes: api.max_request_bytes,
            idle: Duration::from_secs(api.idle_timeout_secs.max(1)),
            exit_idle: (api.exit_idle_secs > 0).then(|| Duration::from_secs(api.exit_idle_secs)),
        }
    }
}

/// Why the service stopped serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Idle,
    Signal,
}

pub async fn serve(listener: UnixListener, service: Arc<Service>, limits: Limits) -> Stop {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let quotas = Quotas::default();
    let (stopping, stop_seen) = watch::channel(false);
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        _ => {
            eprintln!("credsyncd: cannot handle SIGTERM; serving without a graceful stop");
            return Stop::Signal;
        }
    };
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    // When the last connection ended (each one notes it as it goes).
    let last_busy = Arc::new(Mutex::new(Instant::now()));
    let stop = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    accept(stream, &slots, &quotas, &service, limits, &stop_seen, &last_busy);
                }
                // Out of descriptors, or the peer went away first: carry on.
                Err(e) => {
                    eprintln!("credsyncd: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = term.recv() => break Stop::Signal,
            _ = int.recv() => break Stop::Signal,
            _ = ticks.tick() => {
                let idle_since = *last_busy.lock().unwrap_or_else(PoisonError::into_inner);
                if slots.available_permits() == limits.max_connections
                    && limits.exit_idle.is_some_and(|idle| idle_since.elapsed() >= idle)
                {
                    break Stop::Idle;
                }
            }
        }
    };
    drop(listener);
    let _ = stopping.send(true);
    // Every connection gives its slot back when it's done.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = timeout(DRAIN, slots.acquire_many(all)).await;
    stop
}

fn accept(
    stream: UnixStream,
    slots: &Arc<Semaphore>,
    quotas: &Quotas,
    service: &Arc<Service>,
    limits: Limits,
    stopping: &watch::Receiver<bool>,
    last_busy: &Arc<Mutex<Instant>>,
) {
    let Ok(slot) = Arc::clone(slots).try_acquire_owned() else {
        tokio::spawn(refuse(
            stream,
            Refusal::busy("too many connections; try again"),
        ));
        return;
    };
    let Ok(peer) = Peer::of(&stream) else {
        return;
    };
    let service = Arc::clone(service);
    let stopping = stopping.clone();
    let last_busy = Arc::clone(last_busy);
    let quotas = quotas.clone();
    tokio::spawn(async move {
        // An ordinary user's connections count against their own quota too.
        let who = Arc::clone(&service);
        let ordinary = !matches!(
            tokio::task::spawn_blocking(move || who.role(&peer)).await,
            Ok(Ok(Role::Root | Role::Application(_)))
        );
        let _quota = if ordinary {
            match quotas.take(peer.uid, limits.per_user) {
                Some(quota) => Some(quota),
                None => {
                    refuse(
                        stream,
                        Refusal::busy("you have too many connections open; close one"),
                    )
                    .await;
                    *last_busy.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
                    drop(slot);
                    return;
                }
            }
        } else {
            None
        };
        Connection {
            service,
            peer,
            limits,
            stopping,
        }
        .serve(stream)
        .await;
        *last_busy.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        drop(slot);
    });
}

/// How many connections each ordinary user holds.
#[derive(Clone, Default)]
struct Quotas(Arc<Mutex<HashMap<u32, usize>>>);

/// One connection counted in its user's quota, until dropped.
struct Quota {
    quotas: Quotas,
    uid: u32,
}

impl Quotas {
    fn take(&self, uid: u32, limit: usize) -> Option<Quota> {
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let held = counts.entry(uid).or_insert(0);
        if *held >= limit {
            return None;
        }
        *held += 1;
        Some(Quota {
            quotas: self.clone(),
            uid,
        })
    }
}

impl Drop for Quota {
    fn drop(&mut self) {
        let mut counts = self.quotas.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = counts.get_mut(&self.uid) {
            *held -= 1;
            if *held == 0 {
                counts.remove(&self.uid);
            }
        }
    }
}

/// Answers one error, then closes.
async fn refuse(stream: UnixStream, refusal: Refusal) {
    let (_, mut writer) = stream.into_split();
    let message = wire::error(&refusal.name, &refusal.parameters);
    let _ = timeout(Duration::from_secs(1), wire::send(&mut writer, &message)).await;
}

struct Connection {
    service: Arc<Service>,
    peer: Peer,
    limits: Limits,
    stopping: watch::Receiver<bool>,
}

/// What a call turned into.
enum Reply {
    One(Answer),
    /// `Monitor`: events for everyone (`None`) or for one user.
    Stream {
        only: Option<String>,
        initial: bool,
    },
}

impl Connection {
    async fn serve(mut self, stream: UnixStream) {
        let (mut reader_half, mut writer) = stream.into_split();
        let mut reader = Reader::new(self.limits.max_request_bytes);
        loop {
            if *self.stopping.borrow() {
                return;
            }
            let read = tokio::select! {
                read = timeout(self.limits.idle, reader.next(&mut reader_half)) => read,
                _ = self.stopping.changed() => return,
            };
            let message = match read {
                Ok(Ok(Some(message))) => message,
                Ok(Err(ReadError::TooLarge { limit })) => {
                    let refusal = Refusal::invalid_argument(&format!(
                        "the request is larger than {limit} bytes"
                    ));
                    let _ = self.send_refusal(&mut writer, &refusal).await;
                    return;
                }
                // Closed, idle or unfinished for too long, or broken.
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => return,
            };
            let call = match wire::decode(message) {
                Ok(call) => call,
                Err(e) => {
                    let refusal = Refusal::invalid_argument(&e.to_string());
                    let _ = self.send_refusal(&mut writer, &refusal).await;
                    return;
                }
            };
            let oneway = call.oneway;
            let more = call.more;
            let reply = self.dispatch(&call).await;
            let sent = match reply {
                Reply::One(answer) => {
                    if !answer.delay.is_zero() {
                        tokio::time::sleep(answer.delay).await;
                    }
                    if oneway {
                        Ok(())
                    } else {
                        self.send_answer(&mut writer, answer.result).await
                    }
                }
                Reply::Stream { .. } if !more => {
                    self.send_refusal(&mut writer, &Refusal::expected_more())
                        .await
                }
                Reply::Stream { only, initial } => {
                    self.stream_events(&mut reader_half, &mut writer, only, initial)
                        .await;
                    return;
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }

    async fn dispatch(&self, call: &Call<'_>) -> Reply {
        if call.upgrade {
            return Reply::One(answer(Err(Refusal::method_not_implemented(&call.method))));
        }
        let params = match Params::parse(call.parameters) {
            Ok(params) => params,
            Err(e) => return Reply::One(answer(Err(e.into()))),
        };
        let (interface, method) = call.method.rsplit_once('.').unwrap_or(("", &call.method));
        let peer = self.peer;
        let service = &self.service;
        let result = match (interface, method) {
            (interface::NAME, "Verify") => return Reply::One(service.verify(peer, &params).await),
            (interface::NAME, "ChangePassword") => {
                return Reply::One(service.change_password(peer, &params).await);
            }
            (interface::NAME, "SetPassword") => {
                return Reply::One(service.set_password(peer, &params).await);
            }
            (interface::NAME, "GetStatus") => {
                return Reply::One(service.get_status(peer, &params).await);
            }
            (interface::NAME, "Monitor") => match service.monitor_scope(peer, &params).await {
                Ok((only, initial)) => return Reply::Stream { only, initial },
                Err(refusal) => Err(refusal),
            },
            (interface::NAME, _) => Err(Refusal::method_not_found(&call.method)),
            ("org.varlink.service", "GetInfo") => Ok(info()),
            ("org.varlink.service", "GetInterfaceDescription") => describe(&params),
            ("org.varlink.service", _) => Err(Refusal::method_not_found(&call.method)),
            (other, _) => Err(Refusal::interface_not_found(other)),
        };
        Reply::One(answer(result))
    }

    async fn send_answer(
        &self,
        writer: &mut OwnedWriteHalf,
        result: Result<Value, Refusal>,
    ) -> Result<(), ()> {
        match result {
            Ok(parameters) => self.send(writer, &wire::reply(&parameters, false)).await,
            Err(refusal) => self.send_refusal(writer, &refusal).await,
        }
    }

    async fn send_refusal(&self, writer: &mut OwnedWriteHalf, refusal: &Refusal) -> Result<(), ()> {
        self.send(writer, &wire::error(&refusal.name, &refusal.parameters))
            .await
    }

    /// Sends one message; a client that doesn't take it within the idle
    /// timeout is dropped.
    async fn send(&self, writer: &mut OwnedWriteHalf, message: &[u8]) -> Result<(), ()> {
        match timeout(self.limits.idle, wire::send(writer, message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// `Monitor`: the visible accounts' current epochs first (if asked),
    /// then every event, until the client hangs up or the service stops.
    /// A client too slow for the events it missed gets every account's
    /// current epoch again, so it never misses a revocation.
    async fn stream_events(
        &mut self,
        reader: &mut OwnedReadHalf,
        writer: &mut OwnedWriteHalf,
        only: Option<String>,
        initial: bool,
    ) {
        let mut events = self.service.monitor.subscribe();
        let visible = |event: &Event| only.as_ref().is_none_or(|user| &event.user == user);
        if initial {
            for event in self.service.monitor.latest().iter().filter(|e| visible(e)) {
                if self.send_event(writer, event).await.is_err() {
                    return;
                }
            }
        }
        let mut byte = [0u8; 1];
        loop {
            let received = tokio::select! {
                received = events.recv() => received,
                // The client hung up (or broke protocol by talking over the stream).
                _ = reader.read(&mut byte) => return,
                _ = self.stopping.changed() => return,
            };
            let batch = match received {
                Ok(event) => vec![event],
                Err(broadcast::error::RecvError::Lagged(_)) => self.service.monitor.latest(),
                Err(broadcast::error::RecvError::Closed) => return,
            };
            for event in batch.iter().filter(|e| visible(e)) {
                if self.send_event(writer, event).await.is_err() {
                    return;
                }
            }
        }
    }

    async fn send_event(&self, writer: &mut OwnedWriteHalf, event: &Event) -> Result<(), ()> {
        self.send(writer, &wire::reply(&json!({ "event": event }), true))
            .await
    }
}

fn answer(result: Result<Value, Refusal>) -> Answer {
    Answer {
        result,
        delay: Duration::ZERO,
    }
}

fn info() -> Value {
    json!({
        "vendor": "credsync",
        "product": "credsyncd",
        "version": env!("CARGO_PKG_VERSION"),
        "url": "man:credsyncd(8)",
        "interfaces": ["org.varlink.service", interface::NAME],
    })
}

/// varlink's own interface, as every service describes it (varlink.org).
const VARLINK_SERVICE: &str = "\
# The Varlink Service Interface is provided by every varlink service. It
# describes the service and the interfaces it implements.
interface org.varlink.service

method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

method GetInterfaceDescription(interface: string) -> (description: string)

error InterfaceNotFound (interface: string)
error MethodNotFound (method: string)
error MethodNotImplemented (method: string)
error InvalidParameter (parameter: string)
error PermissionDenied ()
error ExpectedMore ()
";

fn describe(params: &Params<'_>) -> Result<Value, Refusal> {
    params.only(&["interface"])?;
    let interface: String = params.required("interface")?;
    match interface.as_str() {
        interface::NAME => Ok(json!({ "description": interface::DESCRIPTION })),
        "org.varlink.service" => Ok(json!({ "description": VARLINK_SERVICE })),
        other => Err(Refusal::interface_not_found(other)),
    }
}
