//! The Redis pub/sub link: one command connection that publishes this node's publications and
//! one subscriber connection that delivers the other nodes' (specs/dependencies.md §7).
//!
//! Each app is one Redis channel, `{prefix}:{app_id}`, subscribed once at start: every node
//! hears every publication of the app and its hub drops those nobody subscribed to locally.
//! Per-channel Redis subscriptions would follow each first subscribe and last unsubscribe,
//! with a window in which a fresh subscriber misses events, and WAMP pattern subscriptions
//! would still need the whole app; one channel per app has neither problem.
//!
//! The hub never waits for Redis: [`RedisBackend::broadcast`] queues into a bounded channel.
//! The publisher task drains it in pipelined batches and keeps a failed batch to resend after
//! reconnecting. A batch may then reach Redis twice, so envelopes carry a per-node sequence
//! number and receivers drop what they have seen; a node drops its own envelopes by node id.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::{MultiplexedConnection, PubSub};
use ::redis::{AsyncConnectionConfig, Client, Msg, RedisResult};
use futures_util::StreamExt;
use herald_core::backend::Unavailable;
use herald_core::{App, AppRegistry, Backend, Hub, Publication};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::{ScaleOutError, envelope};
use crate::config::ScaleOutSettings;

/// Publications waiting for Redis. At a few hundred bytes each this bounds the memory an
/// outage can take; beyond it, publications are delivered locally only (and counted).
const QUEUE: usize = 16_384;
/// Free queue slots below which the HTTP API refuses publishes (503): one maximal batch
/// request (10 events × 100 channels by default) always fits once admitted.
const HEADROOM: usize = 1_024;
/// Most publications sent in one pipeline.
const BATCH: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A subscriber connection that stops answering pings is replaced (half-open TCP links).
const PING_EVERY: Duration = Duration::from_secs(5);
/// How long a stopping node keeps trying to hand its queue to Redis.
const FLUSH_GRACE: Duration = Duration::from_secs(2);
/// Distinct publishing nodes remembered for duplicate detection before the memory is reset.
const MAX_PEERS: usize = 4_096;

/// Link state and counters, shared by the backend, its tasks and `/health`.
#[derive(Debug, Default)]
pub(crate) struct LinkState {
    publisher_up: AtomicBool,
    subscriber_up: AtomicBool,
    /// Publications handed to Redis.
    sent: AtomicU64,
    /// Publications from other nodes delivered here.
    received: AtomicU64,
    /// Publications delivered locally only because the queue was full.
    dropped: AtomicU64,
    /// Publications resent after a failed pipeline.
    retried: AtomicU64,
}

/// The [`Backend`] half: what the hub calls.
pub(crate) struct RedisBackend {
    /// This node's random id, written in every envelope.
    node: u64,
    /// The Redis channel of each app id.
    channels: HashMap<String, Arc<str>>,
    /// Into the publisher task.
    tx: mpsc::Sender<Queued>,
    state: Arc<LinkState>,
}

/// One publication on its way to Redis.
struct Queued {
    channel: Arc<str>,
    publication: Arc<Publication>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend").field("node", &self.node).field("state", &self.state).finish_non_exhaustive()
    }
}

impl Backend for RedisBackend {
    fn broadcast(&self, app: &App, publication: &Arc<Publication>) {
        let Some(channel) = self.channels.get(&app.config.id) else { return };
        let queued = Queued { channel: Arc::clone(channel), publication: Arc::clone(publication) };
        if self.tx.try_send(queued).is_err() {
            let n = self.state.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Powers of two: an outage under load logs a handful of lines, not one per event.
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "redis queue full: publications are delivered on this node only");
            }
        }
    }

    fn available(&self) -> Result<(), Unavailable> {
        let up = |b: &AtomicBool| b.load(Ordering::Acquire);
        if !up(&self.state.publisher_up) || !up(&self.state.subscriber_up) {
            return Err(Unavailable::LinkDown("redis"));
        }
        if self.tx.capacity() < HEADROOM {
            return Err(Unavailable::QueueFull("redis"));
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

impl RedisBackend {
    /// Opens both connections (each bounded by a short timeout) and returns the backend for
    /// the hub and the link to [`RedisLink::spawn`] once the hub exists.
    ///
    /// # Errors
    /// [`ScaleOutError::Url`] when the client refuses the URL. An unreachable Redis is not an
    /// error: the node starts with the link down and keeps reconnecting.
    pub(crate) async fn connect(
        settings: &ScaleOutSettings,
        apps: &AppRegistry,
    ) -> Result<(Arc<dyn Backend>, RedisLink), ScaleOutError> {
        let client = Client::open(settings.redis_url.as_str())
            .map_err(|source| ScaleOutError::Url { url: settings.redacted_url(), source })?;
        let node = rand::random::<u64>();
        let channels: HashMap<String, Arc<str>> = apps
            .iter()
            .map(|a| (a.config.id.clone(), Arc::from(format!("{}:{}", settings.prefix, a.config.id))))
            .collect();
        let names: Vec<Arc<str>> = channels.values().cloned().collect();
        let state = Arc::new(LinkState::default());
        let publisher = connect_publisher(&client).await;
        let subscriber = connect_subscriber(&client, &names).await;
        match (&publisher, &subscriber) {
            (Ok(_), Ok(_)) => tracing::info!(node, url = %settings.redacted_url(), "scale-out: connected to redis"),
            (Err(e), _) | (_, Err(e)) => tracing::warn!(
                url = %settings.redacted_url(), error = %e,
                "scale-out: redis unreachable at start; HTTP publishes get 503 until it is back"
            ),
        }
        state.publisher_up.store(publisher.is_ok(), Ordering::Release);
        state.subscriber_up.store(subscriber.is_ok(), Ordering::Release);
        let (tx, rx) = mpsc::channel(QUEUE);
        let backend = Arc::new(RedisBackend { node, channels, tx, state: Arc::clone(&state) });
        let link = RedisLink {
            client,
            node,
            rx,
            publisher: publisher.ok(),
            subscriber: subscriber.ok(),
            channels: backend.channels.clone(),
            state,
        };
        Ok((backend, link))
    }
}

/// The link's tasks before they run: built with the backend, spawned once the hub exists.
pub(crate) struct RedisLink {
    client: Client,
    node: u64,
    rx: mpsc::Receiver<Queued>,
    publisher: Option<MultiplexedConnection>,
    subscriber: Option<PubSub>,
    channels: HashMap<String, Arc<str>>,
    state: Arc<LinkState>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink").field("node", &self.node).field("state", &self.state).finish_non_exhaustive()
    }
}

/// The running link; [`RunningLink::stop`] flushes the queue (bounded) and ends both tasks.
#[derive(Debug)]
pub(crate) struct RunningLink {
    stop: CancellationToken,
    publisher: JoinHandle<()>,
    subscriber: JoinHandle<()>,
}

impl RedisLink {
    /// Starts the publisher and subscriber tasks; the subscriber delivers into `hub`.
    pub(crate) fn spawn(self, hub: Arc<Hub>) -> RunningLink {
        let stop = CancellationToken::new();
        let apps: HashMap<Arc<str>, Arc<App>> = self
            .channels
            .iter()
            .filter_map(|(id, ch)| hub.apps().by_id(id).map(|a| (Arc::clone(ch), Arc::clone(a))))
            .collect();
        let publisher = Publisher {
            client: self.client.clone(),
            conn: self.publisher,
            rx: self.rx,
            node: self.node,
            seq: 0,
            state: Arc::clone(&self.state),
        };
        let subscriber = Subscriber {
            client: self.client,
            apps,
            node: self.node,
            last_seq: HashMap::new(),
            state: self.state,
            hub,
        };
        RunningLink {
            publisher: tokio::spawn(publisher.run(stop.clone())),
            subscriber: tokio::spawn(subscriber.run(self.subscriber, stop.clone())),
            stop,
        }
    }
}

impl RunningLink {
    /// Hands what is still queued to Redis (at most [`FLUSH_GRACE`]) and stops both tasks.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = timeout(FLUSH_GRACE + CONNECT_TIMEOUT, self.publisher).await;
        let _ = self.subscriber.await;
    }
}

async fn connect_publisher(client: &Client) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    client.get_multiplexed_async_connection_with_config(&config).await
}

async fn connect_subscriber(client: &Client, names: &[Arc<str>]) -> RedisResult<PubSub> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        let names: Vec<&str> = names.iter().map(|n| &**n).collect();
        pubsub.subscribe(names).await?;
        Ok(pubsub)
    };
    timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT, connect)
        .await
        .unwrap_or_else(|_| Err(::redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))))
}

/// Sleeps for the current backoff (doubling it) unless `stop` fires first; false on stop.
async fn back_off(backoff: &mut Duration, stop: &CancellationToken) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stop.cancelled() => false,
    }
}

/// Drains the queue into Redis, in order, resending a failed batch after reconnecting.
struct Publisher {
    client: Client,
    conn: Option<MultiplexedConnection>,
    rx: mpsc::Receiver<Queued>,
    node: u64,
    /// Sequence number of the last envelope written.
    seq: u64,
    state: Arc<LinkState>,
}

impl Publisher {
    async fn run(mut self, stop: CancellationToken) {
        // Encoded envelopes taken from the queue and not yet confirmed by Redis.
        let mut pending: Vec<(Arc<str>, Vec<u8>)> = Vec::new();
        let mut backoff = BACKOFF_MIN;
        // Idle links are pinged, so a lost Redis shows in `/health` (and refuses HTTP
        // publishes) before the next publication has to find out.
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Reconnect even with nothing to send: the HTTP API refuses publishes until then,
            // so waiting for a publication first would never end.
            if self.conn.is_none() && !self.reconnect().await {
                if back_off(&mut backoff, &stop).await {
                    continue;
                }
                break;
            }
            if pending.is_empty() {
                tokio::select! {
                    q = self.rx.recv() => match q {
                        Some(q) => pending.push(self.encode(&q)),
                        None => break,
                    },
                    _ = ping.tick() => {
                        self.ping().await;
                        continue;
                    }
                    () = stop.cancelled() => break,
                }
            }
            while pending.len() < BATCH {
                let Ok(q) = self.rx.try_recv() else { break };
                pending.push(self.encode(&q));
            }
            if self.send(&pending).await {
                pending.clear();
                backoff = BACKOFF_MIN;
            } else if !back_off(&mut backoff, &stop).await {
                break;
            }
        }
        self.flush(pending).await;
    }

    /// Opens the command connection; true when the link is up again.
    async fn reconnect(&mut self) -> bool {
        match connect_publisher(&self.client).await {
            Ok(c) => {
                self.conn = Some(c);
                if !self.state.publisher_up.swap(true, Ordering::AcqRel) {
                    tracing::info!("scale-out: redis publisher connection is up");
                }
                true
            }
            Err(e) => {
                self.link_lost(&e);
                false
            }
        }
    }

    /// Marks the command connection lost (logged once per outage).
    fn link_lost(&mut self, e: &::redis::RedisError) {
        self.conn = None;
        if self.state.publisher_up.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %e, "scale-out: redis publisher connection lost; reconnecting");
        } else {
            tracing::debug!(error = %e, "scale-out: redis publisher still unreachable");
        }
    }

    async fn ping(&mut self) {
        let Some(conn) = self.conn.as_mut() else { return };
        if let Err(e) = ::redis::cmd("PING").query_async::<()>(conn).await {
            self.link_lost(&e);
        }
    }

    fn encode(&mut self, q: &Queued) -> (Arc<str>, Vec<u8>) {
        self.seq += 1;
        (Arc::clone(&q.channel), envelope::encode(self.node, self.seq, &q.publication))
    }

    /// Sends one batch; false when it must be retried (after reconnecting).
    async fn send(&mut self, batch: &[(Arc<str>, Vec<u8>)]) -> bool {
        let Some(conn) = self.conn.as_mut() else { return false };
        let mut pipe = ::redis::pipe();
        for (channel, bytes) in batch {
            pipe.cmd("PUBLISH").arg(&**channel).arg(bytes.as_slice()).ignore();
        }
        match pipe.query_async::<()>(conn).await {
            Ok(()) => {
                self.state.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.state.retried.fetch_add(batch.len() as u64, Ordering::Relaxed);
                self.link_lost(&e);
                false
            }
        }
    }

    /// On shutdown: whatever is still queued gets one bounded chance to reach Redis.
    async fn flush(mut self, mut pending: Vec<(Arc<str>, Vec<u8>)>) {
        self.rx.close();
        while let Ok(q) = self.rx.try_recv() {
            pending.push(self.encode(&q));
        }
        if pending.is_empty() {
            return;
        }
        let total = pending.len();
        let sent = timeout(FLUSH_GRACE, async {
            for batch in pending.chunks(BATCH) {
                if self.conn.is_none() && !self.reconnect().await {
                    return false;
                }
                if !self.send(batch).await {
                    return false;
                }
            }
            true
        })
        .await;
        if sent != Ok(true) {
            tracing::warn!(publications = total, "scale-out: redis unreachable at shutdown; queued publications not forwarded");
        }
    }
}

/// Reads the app channels and delivers other nodes' publications into the local hub.
struct Subscriber {
    client: Client,
    /// App of each Redis channel.
    apps: HashMap<Arc<str>, Arc<App>>,
    node: u64,
    /// Highest sequence number delivered per publishing node.
    last_seq: HashMap<u64, u64>,
    state: Arc<LinkState>,
    hub: Arc<Hub>,
}

impl Subscriber {
    async fn run(mut self, mut first: Option<PubSub>, stop: CancellationToken) {
        let names: Vec<Arc<str>> = self.apps.keys().cloned().collect();
        let mut backoff = BACKOFF_MIN;
        loop {
            let pubsub = match first.take() {
                Some(p) => p,
                None => match connect_subscriber(&self.client, &names).await {
                    Ok(p) => {
                        tracing::info!("scale-out: redis subscription is back");
                        p
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "scale-out: redis subscriber still unreachable");
                        if back_off(&mut backoff, &stop).await {
                            continue;
                        }
                        return;
                    }
                },
            };
            self.state.subscriber_up.store(true, Ordering::Release);
            backoff = BACKOFF_MIN;
            let stopped = self.pump(pubsub, &stop).await;
            self.state.subscriber_up.store(false, Ordering::Release);
            if stopped {
                return;
            }
            tracing::warn!("scale-out: redis subscription lost; reconnecting");
        }
    }

    /// Delivers messages until the connection ends (false) or `stop` fires (true).
    async fn pump(&mut self, pubsub: PubSub, stop: &CancellationToken) -> bool {
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(m) => self.on_message(&m),
                    None => return false,
                },
                _ = ping.tick() => {
                    let answer = timeout(RESPONSE_TIMEOUT, sink.ping::<::redis::Value>()).await;
                    if !matches!(answer, Ok(Ok(_))) {
                        return false;
                    }
                }
                () = stop.cancelled() => return true,
            }
        }
    }

    fn on_message(&mut self, msg: &Msg) {
        let Some(app) = self.apps.get(msg.get_channel_name()) else { return };
        let received = match envelope::decode(msg.get_payload_bytes()) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, channel = msg.get_channel_name(), "scale-out: envelope ignored");
                return;
            }
        };
        if received.node == self.node {
            return;
        }
        if self.last_seq.len() >= MAX_PEERS && !self.last_seq.contains_key(&received.node) {
            // Restarted nodes leave stale entries; forgetting them all risks one duplicate at most.
            self.last_seq.clear();
        }
        let last = self.last_seq.entry(received.node).or_insert(0);
        if received.seq <= *last {
            return;
        }
        *last = received.seq;
        self.hub.deliver(app, &Arc::new(received.publication));
        self.state.received.fetch_add(1, Ordering::Relaxed);
    }
}
