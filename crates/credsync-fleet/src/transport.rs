//! What the fleet needs from its store of desired state, and etcd's answer.
//!
//! The agent and the conductor speak only to [`Transport`]: a prefix read at
//! one revision, a prefix watch resumed from a revision, a compare-and-set
//! put on a key's `mod_revision`, and a node report kept alive by a lease.
//! Another engine can be added beside [`Etcd`] without touching the apply
//! path.
#![forbid(unsafe_code)]

use crate::config::FleetConfig;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    LeaseKeeper, PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions, WatchStream,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One key as read.
#[derive(Clone)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

/// A value may hold hashes: never in `Debug` output.
impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("key", &self.key)
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .field("mod_revision", &self.mod_revision)
            .finish()
    }
}

/// A prefix as of one revision.
#[derive(Debug)]
pub struct Snapshot {
    pub revision: i64,
    pub kvs: Vec<Kv>,
}

#[derive(Debug)]
pub enum Change {
    Put(Kv),
    Delete(String),
}

/// What a watch delivers next.
#[derive(Debug)]
pub enum Watched {
    /// Changes up to `revision`.
    Changes { revision: i64, changes: Vec<Change> },
    /// The revision asked for was compacted away: read the prefix again.
    Compacted,
}

/// The outcome of a compare-and-set put.
#[derive(Debug)]
pub enum Put {
    /// Written at this revision.
    Done(i64),
    /// The key moved on: this is what it holds now (`None`: deleted).
    Conflict(Option<Kv>),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

impl From<etcd_client::Error> for TransportError {
    fn from(e: etcd_client::Error) -> Self {
        TransportError(match e {
            etcd_client::Error::GRpcStatus(status) => {
                format!("etcd refused: {}", status.message())
            }
            other => format!("etcd: {other}"),
        })
    }
}

pub trait Transport {
    type Watch: Watch;
    fn read_prefix(
        &mut self,
        prefix: &str,
    ) -> impl Future<Output = Result<Snapshot, TransportError>> + Send;
    fn read(
        &mut self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Kv>, TransportError>> + Send;
    /// Watches `prefix` from `revision` on (inclusive).
    fn watch_prefix(
        &mut self,
        prefix: &str,
        revision: i64,
    ) -> impl Future<Output = Result<Self::Watch, TransportError>> + Send;
    /// Puts every `(key, value, expected)` in one transaction, only if each
    /// key's `mod_revision` is still `expected` (0: the key does not exist).
    fn put_all_if(
        &mut self,
        writes: Vec<(String, String, i64)>,
    ) -> impl Future<Output = Result<Put, TransportError>> + Send;
    /// Writes a node's report under a lease of `ttl` (renewed when a
    /// quarter of it has passed, granted anew when it lapsed) and, when
    /// given, its unleased copy, in one transaction.
    fn report(
        &mut self,
        report: (&str, String),
        seen: Option<(&str, String)>,
        ttl: Duration,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
}

pub trait Watch: Send {
    fn next(&mut self) -> impl Future<Output = Result<Option<Watched>, TransportError>> + Send;
}

/// etcd v3 over TLS, as the identity of the configuration's certificate
/// (etcd takes the certificate's CN as the user, and applies its roles).
pub struct Etcd {
    client: Client,
    lease: Option<Lease>,
}

impl Etcd {
    pub async fn connect(config: &FleetConfig) -> Result<Etcd, TransportError> {
        let read = |path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| TransportError(format!("cannot read {}: {e}", path.display())))
        };
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(&config.ca)?))
            .identity(Identity::from_pem(read(&config.cert)?, read(&config.key)?));
        let options = ConnectOptions::new()
            .with_tls(tls)
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
        // One member at a time, starting from a different one in each
        // process: the client's own balancing over several endpoints fails
        // requests sent to a dead member instead of moving on. A lost
        // connection makes the agent connect again, to the next member up.
        let count = config.endpoints.len();
        static CONNECTS: AtomicUsize = AtomicUsize::new(0);
        let turn = CONNECTS.fetch_add(1, Ordering::Relaxed);
        let start = (usize::try_from(std::process::id()).unwrap_or(0) + turn) % count;
        let mut last = TransportError("no etcd endpoint configured".into());
        for i in 0..count {
            let endpoint = &config.endpoints[(start + i) % count];
            let attempt = async {
                let mut client = Client::connect([endpoint], Some(options.clone())).await?;
                client.status().await?;
                Ok::<_, etcd_client::Error>(client)
            };
            match attempt.await {
                Ok(client) => {
                    return Ok(Etcd {
                        client,
                        lease: None,
                    });
                }
                Err(e) => last = TransportError::from(e),
            }
        }
        Err(TransportError(format!(
            "no etcd member answers ({})",
            last.0
        )))
    }

    /// The report's lease: renewed once a quarter of its time to live has
    /// passed since the last renewal (not at every report), granted anew
    /// when it lapsed.
    async fn renew(&mut self, ttl: Duration) -> Result<i64, TransportError> {
        if let Some(lease) = &mut self.lease {
            if lease.renewed.elapsed() < ttl / 4 {
                return Ok(lease.id);
            }
            lease.keeper.keep_alive().await?;
            if let Some(answer) = lease.answers.message().await?
                && answer.ttl() > 0
            {
                lease.renewed = Instant::now();
                return Ok(lease.id);
            }
        }
        let seconds = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let id = self.client.lease_grant(seconds, None).await?.id();
        let (keeper, answers) = self.client.lease_keep_alive(id).await?;
        self.lease = Some(Lease {
            id,
            keeper,
            answers,
            renewed: Instant::now(),
        });
        Ok(id)
    }
}

/// The lease a node's report lives under.
struct Lease {
    id: i64,
    keeper: LeaseKeeper,
    answers: etcd_client::LeaseKeepAliveStream,
    renewed: Instant,
}

fn kv(kv: &etcd_client::KeyValue) -> Kv {
    Kv {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
    }
}

fn revision(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.map_or(0, etcd_client::ResponseHeader::revision)
}

impl Transport for Etcd {
    type Watch = EtcdWatch;

    async fn read_prefix(&mut self, prefix: &str) -> Result<Snapshot, TransportError> {
        let answer = self
            .client
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await?;
        Ok(Snapshot {
            revision: revision(answer.header()),
            kvs: answer.kvs().iter().map(kv).collect(),
        })
    }

    async fn read(&mut self, key: &str) -> Result<Option<Kv>, TransportError> {
        Ok(self.client.get(key, None).await?.kvs().first().map(kv))
    }

    async fn watch_prefix(&mut self, prefix: &str, from: i64) -> Result<EtcdWatch, TransportError> {
        let options = WatchOptions::new().with_prefix().with_start_revision(from);
        let stream = self.client.watch(prefix, Some(options)).await?;
        Ok(EtcdWatch { stream })
    }

    async fn put_all_if(
        &mut self,
        writes: Vec<(String, String, i64)>,
    ) -> Result<Put, TransportError> {
        let compares: Vec<Compare> = writes
            .iter()
            .map(|(key, _, expected)| {
                Compare::mod_revision(key.as_str(), CompareOp::Equal, *expected)
            })
            .collect();
        let reads: Vec<TxnOp> = writes
            .iter()
            .map(|(key, _, _)| TxnOp::get(key.as_str(), None))
            .collect();
        let expected: Vec<i64> = writes.iter().map(|(_, _, e)| *e).collect();
        let puts: Vec<TxnOp> = writes
            .into_iter()
            .map(|(key, value, _)| TxnOp::put(key, value, None))
            .collect();
        let answer = self
            .client
            .txn(Txn::new().when(compares).and_then(puts).or_else(reads))
            .await?;
        if answer.succeeded() {
            return Ok(Put::Done(revision(answer.header())));
        }
        // The first key that moved on, as it is now.
        for (expected, op) in expected.iter().zip(answer.op_responses()) {
            if let TxnOpResponse::Get(get) = op {
                let now = get.kvs().first().map(kv);
                if now.as_ref().map_or(0, |kv| kv.mod_revision) != *expected {
                    return Ok(Put::Conflict(now));
                }
            }
        }
        Ok(Put::Conflict(None))
    }

    async fn report(
        &mut self,
        (report_key, report): (&str, String),
        seen: Option<(&str, String)>,
        ttl: Duration,
    ) -> Result<(), TransportError> {
        let lease = self.renew(ttl).await?;
        let mut puts = vec![TxnOp::put(
            report_key,
            report,
            Some(PutOptions::new().with_lease(lease)),
        )];
        if let Some((seen_key, seen)) = seen {
            puts.push(TxnOp::put(seen_key, seen, None));
        }
        let txn = Txn::new().and_then(puts);
        self.client.txn(txn).await?;
        Ok(())
    }
}

pub struct EtcdWatch {
    stream: WatchStream,
}

impl Watch for EtcdWatch {
    async fn next(&mut self) -> Result<Option<Watched>, TransportError> {
        loop {
            let Some(answer) = self.stream.message().await? else {
                return Ok(None);
            };
            if answer.compact_revision() > 0 {
                return Ok(Some(Watched::Compacted));
            }
            if answer.canceled() {
                return Err(TransportError(format!(
                    "etcd ended the watch: {}",
                    answer.cancel_reason()
                )));
            }
            if answer.events().is_empty() {
                continue;
            }
            let changes = answer
                .events()
                .iter()
                .filter_map(|event| {
                    let kv = kv(event.kv()?);
                    Some(match event.event_type() {
                        EventType::Put => Change::Put(kv),
                        EventType::Delete => Change::Delete(kv.key),
                    })
                })
                .collect();
            // The last event's revision, not the header's: etcd may send a
            // long catch-up in several responses, each headed by its current
            // revision.
            let last = answer
                .events()
                .iter()
                .filter_map(|event| event.kv().map(etcd_client::KeyValue::mod_revision))
                .max()
                .unwrap_or_else(|| revision(answer.header()));
            return Ok(Some(Watched::Changes {
                revision: last,
                changes,
            }));
        }
    }
}
