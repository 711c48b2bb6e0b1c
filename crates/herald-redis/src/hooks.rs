//! Webhooks in a cluster: each event is sent once, by one node, in order, and survives the node
//! that saw it.
//!
//! The cluster's events (a channel vacated on every node, a member's last socket anywhere) are
//! emitted once, by the node whose change made them; [`HookQueue::sink`] appends them to the
//! app's webhook stream in Redis (`writer`) instead of delivering them itself. One node per app
//! holds a lease and delivers from that stream through the same webhook delivery a single node
//! uses (`leader`), moving the app's cursor past an event once every endpoint settled it. A node
//! that dies mid-batch leaves its events after the cursor: the next lease holder sends them.
//! Delivery is therefore at least once, as Pusher's is; order per app, and so per channel, is
//! the stream's.
//!
//! Apps gain, change and lose webhooks while herald runs: [`HookApps`] tells the queue, which
//! then appends the events of an app that gained them and leads it, and gives back the lease of
//! an app that lost them.
//!
//! Modules: `codec` (an event as a stream entry), `writer` (appending), `leader` (lease, read,
//! cursor).

mod codec;
mod leader;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use herald_core::{App, Event, EventKind, EventSink, Receipt};
use parking_lot::RwLock;
use redis::Client;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::commands::Connector;
use crate::connect::{CONNECT_TIMEOUT, FLUSH_GRACE};
use crate::url::UrlError;

/// Entries kept per app stream: a dead endpoint can hold this many events in Redis, no more.
pub(crate) const MAX_ENTRIES: u64 = 100_000;
/// Events waiting to be appended on this node; beyond it they are dropped and counted.
const QUEUE: usize = 16_384;

/// Where a node hands the events it delivers: the webhook delivery of `herald-server`.
pub trait HookConsumer: Send + Sync + 'static {
    /// Whether any endpoint of `app` wants events of `kind`.
    fn wants(&self, app: &App, kind: EventKind) -> bool;
    /// Events every endpoint of `app` can take now.
    fn room(&self, app: &App) -> usize;
    /// Takes `event`, which happened at `at_ms` (Unix ms); each endpoint settles its copy of
    /// `receipt` once done with it.
    fn offer(&self, app: &App, event: Event, at_ms: u64, receipt: &Receipt);
}

/// The Redis keys of one app's webhooks.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    stream: Arc<str>,
    lease: Arc<str>,
    cursor: Arc<str>,
}

impl Keys {
    /// `{prefix}:hooks:{app}` and its `:lease` and `:cursor`; on a Redis Cluster the app id is
    /// a hash tag (`{prefix}:hooks:{{app}}`), so the three share a slot and the commit script
    /// runs on one master (one Redis keeps the names it always had).
    fn new(prefix: &str, app: &str, cluster: bool) -> Self {
        let base = if cluster { format!("{prefix}:hooks:{{{app}}}") } else { format!("{prefix}:hooks:{app}") };
        Self { lease: format!("{base}:lease").into(), cursor: format!("{base}:cursor").into(), stream: base.into() }
    }
}

/// One event on its way to Redis.
pub(crate) struct Written {
    key: Arc<str>,
    entry: Vec<u8>,
}

/// The apps with webhooks, by id: what the sink appends for and the leader leads. Swapped whole
/// on a change; read on every event.
pub(crate) struct Leads {
    prefix: String,
    cluster: bool,
    pub(crate) consumer: Arc<dyn HookConsumer>,
    apps: RwLock<Arc<HashMap<String, leader::Lead>>>,
    /// The last [`leader::Lead::epoch`] given.
    epochs: AtomicU64,
}

impl Leads {
    pub(crate) fn snapshot(&self) -> Arc<HashMap<String, leader::Lead>> {
        Arc::clone(&self.apps.read())
    }

    fn has_webhooks(&self, app: &App) -> bool {
        EventKind::ALL.into_iter().any(|k| self.consumer.wants(app, k))
    }

    /// Leads `app` (its current version) when it has webhooks, else forgets it; a new epoch when
    /// it is new or `restart`.
    fn update(&self, app: &Arc<App>, restart: bool) {
        let id = &app.config.id;
        if !self.has_webhooks(app) {
            self.remove(id);
            return;
        }
        let mut apps = self.apps.write();
        let mut next = HashMap::clone(&apps);
        let epoch = match next.get(id) {
            Some(lead) if !restart => lead.epoch,
            _ => self.epochs.fetch_add(1, Ordering::Relaxed) + 1,
        };
        let keys = Keys::new(&self.prefix, id, self.cluster);
        next.insert(id.clone(), leader::Lead { app: Arc::clone(app), keys, epoch });
        *apps = Arc::new(next);
    }

    fn remove(&self, id: &str) {
        let mut apps = self.apps.write();
        if apps.contains_key(id) {
            let mut next = HashMap::clone(&apps);
            next.remove(id);
            *apps = Arc::new(next);
        }
    }
}

/// Tells the queue that an app's webhooks changed; cheap to clone.
#[derive(Clone)]
pub struct HookApps(Arc<Leads>);

impl std::fmt::Debug for HookApps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookApps").field("apps", &self.0.snapshot().len()).finish()
    }
}

impl HookApps {
    /// `app` was added or changed, and the consumer already has its endpoints: its events are
    /// appended from now on when it has webhooks, and this node competes for its lease. With
    /// `restart` (its endpoints were rebuilt) a lease this node holds starts again at the app's
    /// cursor: entries handed to the replaced endpoints and not settled are delivered again.
    pub fn update(&self, app: &Arc<App>, restart: bool) {
        self.0.update(app, restart);
    }

    /// App `id` is gone (or has no webhooks): its events are no longer appended, and a lease
    /// this node holds is given back, its cursor moved past what was settled.
    pub fn remove(&self, id: &str) {
        self.0.remove(id);
    }
}

/// The cluster's webhook queue, before it runs.
pub struct HookQueue {
    connector: Connector,
    node: String,
    leads: Arc<Leads>,
    sink: Arc<RedisHookSink>,
    rx: mpsc::Receiver<Written>,
}

impl std::fmt::Debug for HookQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookQueue").field("node", &self.node).finish_non_exhaustive()
    }
}

/// What the hub's backend emits to: appends each wanted event to its app's stream.
pub struct RedisHookSink {
    /// The apps with webhooks, and their streams.
    leads: Arc<Leads>,
    tx: mpsc::Sender<Written>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for RedisHookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHookSink").field("dropped", &self.dropped).finish_non_exhaustive()
    }
}

impl EventSink for RedisHookSink {
    fn wants(&self, app: &App, kind: EventKind) -> bool {
        self.leads.consumer.wants(app, kind)
    }

    fn emit(&self, app: &App, event: Event) {
        let Some(key) = self.leads.apps.read().get(&app.config.id).map(|l| Arc::clone(&l.keys.stream)) else {
            return;
        };
        let entry = codec::encode(&event, now_ms());
        if self.tx.try_send(Written { key, entry }).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "webhooks: redis queue full; events dropped");
            }
        }
    }
}

impl HookQueue {
    /// The queue for the apps of `apps` that have webhooks (`consumer.wants` any kind), on the
    /// Redis at `url` under `prefix`.
    ///
    /// # Errors
    /// [`UrlError::Refused`] when the client refuses the URL.
    pub fn new(url: &str, prefix: &str, apps: &[Arc<App>], consumer: Arc<dyn HookConsumer>) -> Result<Self, UrlError> {
        let client = Client::open(url).map_err(UrlError::Refused)?;
        Ok(Self::build(Connector::Single(client), prefix, apps, consumer))
    }

    /// Like [`HookQueue::new`], on the Redis Cluster reached through the seed `urls`.
    ///
    /// # Errors
    /// [`UrlError::Refused`] when the cluster client refuses the URLs.
    pub fn new_cluster(
        urls: &[String],
        prefix: &str,
        apps: &[Arc<App>],
        consumer: Arc<dyn HookConsumer>,
    ) -> Result<Self, UrlError> {
        let connector = Connector::cluster(urls).map_err(UrlError::Refused)?;
        Ok(Self::build(connector, prefix, apps, consumer))
    }

    fn build(connector: Connector, prefix: &str, apps: &[Arc<App>], consumer: Arc<dyn HookConsumer>) -> Self {
        let cluster = matches!(connector, Connector::Cluster(..));
        let node = format!("{:016x}", rand::random::<u64>());
        let leads = Arc::new(Leads {
            prefix: prefix.to_owned(),
            cluster,
            consumer,
            apps: RwLock::default(),
            epochs: AtomicU64::new(0),
        });
        for app in apps {
            leads.update(app, false);
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let sink = Arc::new(RedisHookSink { leads: Arc::clone(&leads), tx, dropped: AtomicU64::new(0) });
        Self { connector, node, leads, sink, rx }
    }

    /// The sink to install in the hub.
    pub fn sink(&self) -> Arc<dyn EventSink> {
        Arc::clone(&self.sink) as Arc<dyn EventSink>
    }

    /// What to tell when an app's webhooks change while the queue runs.
    pub fn apps(&self) -> HookApps {
        HookApps(Arc::clone(&self.leads))
    }

    /// Starts the writer and the leader.
    pub fn spawn(self) -> RunningHooks {
        let stop = CancellationToken::new();
        let leader = leader::Leader { connector: self.connector.clone(), node: self.node, apps: self.leads };
        RunningHooks {
            writer: tokio::spawn(writer::run(self.connector, self.rx, stop.clone())),
            leader: tokio::spawn(leader.run(stop.clone())),
            stop,
        }
    }
}

/// The running writer and leader.
#[derive(Debug)]
pub struct RunningHooks {
    stop: CancellationToken,
    writer: JoinHandle<()>,
    leader: JoinHandle<()>,
}

impl RunningHooks {
    /// Appends what is queued (bounded), stops delivering and gives up the leases, so another
    /// node takes over at once.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(FLUSH_GRACE + CONNECT_TIMEOUT, self.writer).await;
        let _ = tokio::time::timeout(FLUSH_GRACE + CONNECT_TIMEOUT, self.leader).await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
