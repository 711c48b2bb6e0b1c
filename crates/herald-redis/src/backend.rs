//! The [`Backend`] half of the Redis link: what the hub calls. It opens both connections and
//! hands the link's tasks their end of the queue and the shared [`LinkState`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use herald_core::app::history::policy_for;
use herald_core::backend::{FetchError, HistoryFetch, Unavailable};
use herald_core::history::RecoverError;
use herald_core::{App, AppRegistry, Backend, Event, EventSink, Publication};
use herald_protocol::pusher::channel_name::ChannelName;
use redis::Client;
use tokio::sync::mpsc;

use crate::cluster::{self, Tracked};
use crate::commands::Connector;
use crate::connect::connect_publisher;
use crate::history::SharedHistory;
use crate::link::RedisLink;
use crate::queue::Queued;
use crate::state::LinkState;
use crate::subscriber;
use crate::url::{UrlError, redact_url};

/// Publications waiting for Redis. At a few hundred bytes each this bounds the memory an
/// outage can take; beyond it, publications are delivered locally only (and counted).
const QUEUE: usize = 16_384;
/// Free queue slots below which the HTTP API refuses publishes (503): one maximal batch
/// request (10 events × 100 channels by default) always fits once admitted.
const HEADROOM: usize = 1_024;

/// The hub's [`Backend`] when nodes share a Redis: queues each publication for the link.
pub struct RedisBackend {
    /// This node's random id, written in every envelope.
    node: u64,
    /// The Redis stream of each app id.
    channels: HashMap<String, Arc<str>>,
    /// Into the publisher task.
    tx: mpsc::Sender<Queued>,
    state: Arc<LinkState>,
    /// `redis` or `redis-cluster`, for `/health` and refusals.
    name: &'static str,
    /// Into the tracker task: this node's channel and user changes (`cluster`), on one Redis and
    /// on a Redis Cluster alike.
    cluster: cluster::Handle,
    /// The channels' histories in Redis, on one Redis only (a Redis Cluster keeps none yet:
    /// history with `redis_cluster` is refused at startup).
    history: Option<Arc<SharedHistory>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend").field("node", &self.node).field("state", &self.state).finish_non_exhaustive()
    }
}

impl Backend for RedisBackend {
    fn broadcast(&self, app: &App, publication: &Arc<Publication>) {
        if publication.channel.kind().cache {
            // Kept in Redis for nodes that start after it was published.
            let ttl = std::time::Duration::from_secs(app.config.cache_ttl.into());
            let (app, publication) = (app.config.id.as_str().into(), Arc::clone(publication));
            self.cluster.queue(Tracked::Cache { app, publication, ttl });
        }
        let Some(channel) = self.channels.get(&app.config.id) else { return };
        let history =
            if self.history.is_some() { policy_for(&app.config.history, publication.channel.as_str()) } else { None };
        let queued = Queued { channel: Arc::clone(channel), publication: Arc::clone(publication), history };
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
            return Err(Unavailable::LinkDown(self.name));
        }
        if self.tx.capacity() < HEADROOM {
            return Err(Unavailable::QueueFull(self.name));
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        self.name
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut counters = self.state.counters();
        // Changes the tracker could not keep up with: the node's share is registered again
        // from the hub, and the cluster events between are not emitted.
        counters.push(("state_changes_dropped", self.cluster.shared.dropped.load(Ordering::Relaxed)));
        if let Some(h) = &self.history {
            // Recoveries this node could not serve from memory, answered from Redis.
            counters.push(("history_fetches", h.fetches.load(Ordering::Relaxed)));
            counters.push(("history_fetches_failed", h.failed.load(Ordering::Relaxed)));
        }
        counters
    }

    fn shares_state(&self) -> bool {
        true
    }

    /// Queued for the tracker, which emits the cluster's change to `events` (through the hub's
    /// sink, the same one) once the shared state says there is one.
    fn changed(&self, app: &App, change: Event, events: &dyn EventSink) {
        // Seen on one node only, they change no shared state: queued (to keep their order among
        // the channel's other events) only when the sink wants them.
        if matches!(change, Event::ClientEvent { .. } | Event::CacheMiss { .. }) && !events.wants(app, change.kind()) {
            return;
        }
        self.cluster.queue(Tracked::Change { app: app.config.id.as_str().into(), event: change });
    }

    /// On one Redis, every channel with history: `history.lua` positions its publications and
    /// every node delivers them as it reads them back.
    fn sequences(&self, app: &App, channel: &ChannelName) -> bool {
        self.history.is_some() && policy_for(&app.config.history, channel.as_str()).is_some()
    }

    fn history_after(&self, app: &App, channel: &ChannelName, epoch: &str, serial: u64) -> HistoryFetch {
        let policy = policy_for(&app.config.history, channel.as_str());
        let (Some(history), Some(stream), Some(policy)) = (&self.history, self.channels.get(&app.config.id), policy)
        else {
            return Box::pin(std::future::ready(Err(FetchError::Recover(RecoverError::NoHistory))));
        };
        let (history, stream) = (Arc::clone(history), Arc::clone(stream));
        let (channel, epoch) = (channel.as_str().to_owned(), epoch.to_owned());
        Box::pin(async move { history.after(&stream, &channel, policy, &epoch, serial).await })
    }
}

impl RedisBackend {
    /// Opens both connections to the Redis at `url` (each bounded by a short timeout) and
    /// returns the backend for the hub and the link to [`RedisLink::spawn`] once the hub exists.
    /// Each app of `apps` is the Redis stream `{prefix}:{app_id}`.
    ///
    /// Connecting before the hub exists means that a node started while Redis is up reads
    /// every publication made after it accepts its first client (it starts at the streams' end).
    ///
    /// # Errors
    /// [`UrlError::Refused`] when the client refuses the URL. An unreachable Redis is not an
    /// error: the node starts with the link down and keeps reconnecting.
    pub async fn connect(
        url: &str,
        prefix: &str,
        apps: &AppRegistry,
    ) -> Result<(Arc<dyn Backend>, RedisLink), UrlError> {
        let client = Client::open(url).map_err(UrlError::Refused)?;
        let node = rand::random::<u64>();
        let channels: HashMap<String, Arc<str>> =
            apps.iter().map(|a| (a.config.id.clone(), Arc::from(format!("{prefix}:{}", a.config.id)))).collect();
        let names: Vec<Arc<str>> = channels.values().cloned().collect();
        let state = Arc::new(LinkState::default());
        let publisher = connect_publisher(&client).await;
        let subscriber = subscriber::open(&client, node, &names, &HashMap::new()).await.map(|(reader, _)| reader);
        let url = redact_url(url);
        match (&publisher, &subscriber) {
            // The node id in hex, as refusals of other nodes' envelopes name it.
            (Ok(_), Ok(_)) => {
                tracing::info!(node = %format_args!("{node:016x}"), %url, "scale-out: connected to redis")
            }
            (Err(e), _) | (_, Err(e)) => tracing::warn!(
                %url, error = %e,
                "scale-out: redis unreachable at start; HTTP publishes get 503 until it is back"
            ),
        }
        state.publisher_up.store(publisher.is_ok(), Ordering::Release);
        state.subscriber_up.store(subscriber.is_ok(), Ordering::Release);
        let (tx, rx) = mpsc::channel(QUEUE);
        let app_ids: Vec<String> = apps.iter().map(|a| a.config.id.clone()).collect();
        let (cluster, shared) =
            cluster::new(Connector::Single(client.clone()), prefix, node, &app_ids).await.map_err(UrlError::Refused)?;
        let history = Some(Arc::new(SharedHistory::new(client.clone())));
        let backend =
            Arc::new(RedisBackend { node, channels, tx, state: Arc::clone(&state), name: "redis", cluster, history });
        let link = RedisLink {
            client,
            node,
            rx,
            publisher: publisher.ok(),
            subscriber: subscriber.ok(),
            window: crate::stream::DEFAULT_REPLAY_WINDOW,
            channels: backend.channels.clone(),
            state,
            sharded: None,
            shared: Some(shared),
        };
        Ok((backend, link))
    }

    /// Like [`RedisBackend::connect`] for a Redis Cluster reached through the seed `urls`: each
    /// app's channels are spread over shards of `{prefix}:{app_id:k}` keys (see `sharded`).
    /// `prefix` must not contain `{` or `}`.
    ///
    /// # Errors
    /// [`UrlError::Refused`] when the cluster client refuses the URLs. An unreachable cluster
    /// is not an error: the node starts with the link down and keeps reconnecting.
    pub async fn connect_cluster(
        urls: &[String],
        prefix: &str,
        apps: &AppRegistry,
    ) -> Result<(Arc<dyn Backend>, RedisLink), UrlError> {
        let first = urls.first().map_or("", String::as_str);
        // Kept for the link's fields; the cluster side never uses it.
        let client = Client::open(first).map_err(UrlError::Refused)?;
        let node = rand::random::<u64>();
        // In cluster mode a queued publication names its app; the shard follows from the channel.
        let channels: HashMap<String, Arc<str>> =
            apps.iter().map(|a| (a.config.id.clone(), Arc::from(a.config.id.as_str()))).collect();
        let shards = crate::sharded::Shards::new(prefix, channels.values().cloned());
        let (parts, connected) = crate::sharded::connect(urls, shards).await.map_err(UrlError::Refused)?;
        let seeds = urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>().join(",");
        match &connected {
            Ok(()) => tracing::info!(
                node = %format_args!("{node:016x}"), %seeds, "scale-out: connected to the redis cluster"
            ),
            Err(e) => tracing::warn!(
                %seeds, error = %e,
                "scale-out: redis cluster unreachable at start; HTTP publishes get 503 until it is back"
            ),
        }
        // Up once the tasks have subscribed and pinged (the reader reads every shard first).
        let state = Arc::new(LinkState::default());
        let (tx, rx) = mpsc::channel(QUEUE);
        let app_ids: Vec<String> = apps.iter().map(|a| a.config.id.clone()).collect();
        let connector = Connector::cluster(urls).map_err(UrlError::Refused)?;
        let (cluster, shared) = cluster::new(connector, prefix, node, &app_ids).await.map_err(UrlError::Refused)?;
        let backend = Arc::new(RedisBackend {
            node,
            channels,
            tx,
            state: Arc::clone(&state),
            name: "redis-cluster",
            cluster,
            history: None,
        });
        let link = RedisLink {
            client,
            node,
            rx,
            publisher: None,
            subscriber: None,
            window: crate::stream::DEFAULT_REPLAY_WINDOW,
            channels: backend.channels.clone(),
            state,
            sharded: Some(parts),
            shared: Some(shared),
        };
        Ok((backend, link))
    }
}
