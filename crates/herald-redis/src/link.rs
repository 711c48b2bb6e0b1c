//! The link's two Redis connections and their lifecycle: one command connection that publishes
//! this node's publications, one subscriber connection that delivers the other nodes'.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{App, Hub};
use redis::aio::{MultiplexedConnection, PubSub};
use redis::{AsyncConnectionConfig, Client, RedisResult};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::inbound::Inbound;
use crate::publisher::Publisher;
use crate::queue::Queued;
use crate::state::LinkState;
use crate::subscriber::Subscriber;

pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that stops answering pings is replaced (half-open TCP links).
pub(crate) const PING_EVERY: Duration = Duration::from_secs(5);
/// How long a stopping node keeps trying to hand its queue to Redis.
pub(crate) const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// The link's tasks before they run: built with the backend, spawned once the hub exists.
pub struct RedisLink {
    pub(crate) client: Client,
    pub(crate) node: u64,
    pub(crate) rx: mpsc::Receiver<Queued>,
    pub(crate) publisher: Option<MultiplexedConnection>,
    pub(crate) subscriber: Option<PubSub>,
    /// The Redis channel of each app id.
    pub(crate) channels: HashMap<String, Arc<str>>,
    pub(crate) state: Arc<LinkState>,
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
}

impl RedisLink {
    /// Starts the publisher and subscriber tasks; the subscriber delivers into `hub`.
    pub fn spawn(self, hub: Arc<Hub>) -> RunningLink {
        let stop = CancellationToken::new();
        let apps: HashMap<Arc<str>, Arc<App>> = self
            .channels
            .iter()
            .filter_map(|(id, ch)| hub.apps().by_id(id).map(|a| (Arc::clone(ch), Arc::clone(a))))
            .collect();
        let publisher =
            Publisher::new(self.client.clone(), self.publisher, self.rx, self.node, Arc::clone(&self.state));
        let subscriber =
            Subscriber { client: self.client, apps, inbound: Inbound::new(self.node), state: self.state, hub };
        RunningLink {
            publisher: tokio::spawn(publisher.run(stop.clone())),
            subscriber: tokio::spawn(subscriber.run(self.subscriber, stop.clone())),
            stop,
        }
    }
}

impl RunningLink {
    /// Hands what is still queued to Redis (at most [`FLUSH_GRACE`]) and stops both tasks.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = timeout(FLUSH_GRACE + CONNECT_TIMEOUT, self.publisher).await;
        let _ = self.subscriber.await;
    }
}

/// Opens the command connection.
pub(crate) async fn connect_publisher(client: &Client) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    client.get_multiplexed_async_connection_with_config(&config).await
}

/// Opens the subscriber connection and subscribes to `names`.
pub(crate) async fn connect_subscriber(client: &Client, names: &[Arc<str>]) -> RedisResult<PubSub> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        let names: Vec<&str> = names.iter().map(|n| &**n).collect();
        pubsub.subscribe(names).await?;
        Ok(pubsub)
    };
    timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT, connect)
        .await
        .unwrap_or_else(|_| Err(redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))))
}

/// Sleeps for the current backoff (doubling it) unless `stop` fires first; false on stop.
pub(crate) async fn back_off(backoff: &mut Duration, stop: &CancellationToken) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stop.cancelled() => false,
    }
}
