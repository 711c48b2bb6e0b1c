//! The link's lifecycle: its two tasks, the publisher on the command connection that publishes
//! this node's publications and the subscriber on the connection that delivers the other nodes',
//! are built with the backend, spawned once the hub exists and stopped with a bounded flush.
//! Opening the connections is `connect`'s job.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{App, Hub};
use redis::Client;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::connect::{CONNECT_TIMEOUT, FLUSH_GRACE};
use crate::publisher::Publisher;
use crate::queue::Queued;
use crate::state::LinkState;
use crate::subscriber::{Reader, Subscriber};

/// The link's tasks before they run: built with the backend, spawned once the hub exists.
pub struct RedisLink {
    pub(crate) client: Client,
    pub(crate) node: u64,
    pub(crate) rx: mpsc::Receiver<Queued>,
    pub(crate) publisher: Option<MultiplexedConnection>,
    pub(crate) subscriber: Option<Reader>,
    /// Age beyond which stream entries are trimmed.
    pub(crate) window: Duration,
    /// The Redis stream of each app id.
    pub(crate) channels: HashMap<String, Arc<str>>,
    pub(crate) state: Arc<LinkState>,
    /// The Redis Cluster side, which replaces both tasks when the node shares a cluster.
    pub(crate) sharded: Option<crate::sharded::Parts>,
    /// The shared channel and user state's tasks (`cluster`).
    pub(crate) shared: Option<crate::cluster::Pending>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink").field("node", &self.node).field("state", &self.state).finish_non_exhaustive()
    }
}

/// The running link; [`RunningLink::stop`] flushes the queue (bounded) and ends both tasks.
#[derive(Debug)]
pub struct RunningLink {
    stop: CancellationToken,
    publisher: JoinHandle<()>,
    subscriber: JoinHandle<()>,
    shared: Option<crate::cluster::Running>,
}

impl RedisLink {
    /// The HTTP API's channel and user queries, answered from Redis; `None` when the nodes do
    /// not share channel state.
    pub fn queries(&self) -> Option<Arc<crate::ClusterQueries>> {
        self.shared.as_ref().map(crate::cluster::Pending::queries)
    }

    /// Keeps `window` of publications in Redis (60 s unless set), for nodes that lose their
    /// link to read once back. Set before [`RedisLink::spawn`].
    #[must_use]
    pub fn with_replay_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Starts the publisher and subscriber tasks; the subscriber delivers into `hub`.
    pub fn spawn(self, hub: Arc<Hub>) -> RunningLink {
        let stop = CancellationToken::new();
        let apps: HashMap<Arc<str>, Arc<App>> =
            self.channels.iter().filter_map(|(id, ch)| hub.app_by_id(id).map(|a| (Arc::clone(ch), a))).collect();
        if let Some(parts) = self.sharded {
            let apps = apps.into_values().map(|a| (Arc::from(a.config.id.as_str()), a)).collect();
            let mut running = parts.spawn(self.rx, self.node, self.window, apps, self.state, Arc::clone(&hub));
            // Stopped with the cluster side's tasks, by its token.
            running.shared = self.shared.map(|s| s.spawn(hub, &running.stop));
            return running;
        }
        let publisher = Publisher::new(
            self.client.clone(),
            self.publisher,
            self.rx,
            self.node,
            self.window,
            Arc::clone(&self.state),
        );
        let shared = self.shared.map(|s| s.spawn(Arc::clone(&hub), &stop));
        let subscriber = Subscriber::new(self.client, self.node, apps, self.state, hub);
        RunningLink {
            publisher: tokio::spawn(publisher.run(stop.clone())),
            subscriber: tokio::spawn(subscriber.run(self.subscriber, stop.clone())),
            shared,
            stop,
        }
    }
}

impl RunningLink {
    pub(crate) fn from_tasks(stop: CancellationToken, publisher: JoinHandle<()>, subscriber: JoinHandle<()>) -> Self {
        RunningLink { stop, publisher, subscriber, shared: None }
    }

    /// Hands what is still queued to Redis (at most [`FLUSH_GRACE`]) and stops both tasks.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = timeout(FLUSH_GRACE + CONNECT_TIMEOUT, self.publisher).await;
        let _ = self.subscriber.await;
        if let Some(shared) = self.shared {
            shared.stopped().await;
        }
    }
}
