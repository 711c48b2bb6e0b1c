//! Scale-out over a Redis Cluster: each app's channels are spread over [`keys::SHARDS`] shards,
//! each shard a stream, a last-id key and a sharded pub/sub channel in one slot, so the
//! publication rate grows with the cluster's masters instead of stopping at one Redis.
//!
//! A channel always goes through the same shard (`keys::shard_of`), which keeps per-channel
//! order. Publishing one envelope is one script on the shard's master (`script.lua`): append to
//! the shard stream, swap the last-id key, `SPUBLISH` `<previous id> <id> <envelope>`. Every
//! node `SSUBSCRIBE`s every shard channel of every app on one cluster connection (RESP3; the
//! client resubscribes after reconnects and failovers) and keeps, per shard, the last entry it
//! delivered: a message naming another previous entry shows what went by unseen, which the node
//! reads from the stream (`gaps`). After any disconnection, and at start, it subscribes again and
//! reads every shard's stream after its last entry (`cursor` decides where, as for one Redis:
//! the end for a fresh node, a reset for a stream gone or behind), so a reconnect loses nothing
//! within the replay window. The envelope's (node, seq) still drop a resent batch, per shard.
//!
//! Modules: `keys` (shard choice and key names), `gaps` (messages and what to do with them),
//! `publisher` and `subscriber` (the two tasks, sharing the one connection).

mod gaps;
mod keys;
mod publisher;
mod subscriber;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use herald_core::{App, Hub};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, RedisResult};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::connect::{CONNECT_TIMEOUT, RESPONSE_TIMEOUT};
use crate::link::RunningLink;
use crate::queue::Queued;
use crate::state::LinkState;
use keys::{SHARDS, ShardKeys};

/// Pushes (shard messages, subscription confirmations, disconnections) waiting for the reader.
/// A full queue drops messages: the reader then reads every shard's stream after its last entry.
const PUSHES: usize = 16_384;

/// The shards of every app, in a fixed order: app `i`'s shard `k` is `i * SHARDS + k`.
pub(crate) struct Shards {
    /// App ids, in shard order.
    apps: Vec<Arc<str>>,
    keys: Vec<ShardKeys>,
}

impl Shards {
    pub(crate) fn new(prefix: &str, apps: impl IntoIterator<Item = Arc<str>>) -> Shards {
        let apps: Vec<Arc<str>> = apps.into_iter().collect();
        let keys = apps.iter().flat_map(|a| (0..SHARDS).map(move |k| ShardKeys::new(prefix, a, k))).collect();
        Shards { apps, keys }
    }

    /// The shard of `channel` of the app `app`.
    fn index(&self, app: &str, channel: &str) -> Option<usize> {
        let i = self.apps.iter().position(|a| &**a == app)?;
        Some(i * usize::from(SHARDS) + usize::from(keys::shard_of(channel)))
    }

    fn app_of(&self, shard: usize) -> &Arc<str> {
        &self.apps[shard / usize::from(SHARDS)]
    }
}

/// The cluster side of the link before it runs: the client, the connection when the cluster
/// answered at start, and where the client hands its pushes.
pub(crate) struct Parts {
    client: ClusterClient,
    conn: Option<ClusterConnection>,
    pushes: mpsc::Receiver<PushInfo>,
    overflow: Arc<AtomicBool>,
    shards: Shards,
}

/// Builds the cluster client on the seed `urls` and opens its connection (bounded by the
/// connection timeout); an unreachable cluster is `Ok` with no connection (the reader task
/// keeps trying).
///
/// # Errors
/// When the client refuses the URLs.
pub(crate) async fn connect(urls: &[String], shards: Shards) -> RedisResult<(Parts, Result<(), redis::RedisError>)> {
    let (tx, pushes) = mpsc::channel(PUSHES);
    let overflow = Arc::new(AtomicBool::new(false));
    let full = Arc::clone(&overflow);
    let client = ClusterClientBuilder::new(urls.iter().map(String::as_str))
        .use_protocol(redis::ProtocolVersion::RESP3)
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .push_sender(move |push: PushInfo| {
            if tx.try_send(push).is_err() {
                full.store(true, Ordering::Release);
            }
            Ok::<(), redis::aio::SendError>(())
        })
        .build()?;
    let (conn, result) = match client.get_async_connection().await {
        Ok(c) => (Some(c), Ok(())),
        Err(e) => (None, Err(e)),
    };
    Ok((Parts { client, conn, pushes, overflow, shards }, result))
}

impl Parts {
    /// Starts the publisher and the reader on the cluster connection.
    pub(crate) fn spawn(
        self,
        rx: mpsc::Receiver<Queued>,
        node: u64,
        window: Duration,
        apps: HashMap<Arc<str>, Arc<App>>,
        state: Arc<LinkState>,
        hub: Arc<Hub>,
    ) -> RunningLink {
        let stop = CancellationToken::new();
        let (conn_tx, conn_rx) = watch::channel(self.conn.clone());
        let shards = Arc::new(self.shards);
        let publisher = publisher::Publisher::new(conn_rx, rx, node, window, Arc::clone(&shards), Arc::clone(&state));
        let reader =
            subscriber::Reader::new(self.client, conn_tx, self.pushes, self.overflow, node, shards, apps, state, hub);
        RunningLink::from_tasks(
            stop.clone(),
            tokio::spawn(publisher.run(stop.clone())),
            tokio::spawn(reader.run(self.conn, stop.clone())),
        )
    }
}
