//! The cluster publisher: drains the backend's queue into the shards, one pipeline of script
//! calls per shard and batch (a pipeline must stay in one slot), the shards' pipelines in
//! parallel on their masters. A shard whose pipeline failed keeps its envelopes, in order, for
//! the next try; the others go on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::join_all;
use redis::cluster_async::ClusterConnection;
use redis::{RedisError, Script};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::Shards;
use crate::connect::{BACKOFF_MIN, FLUSH_GRACE, PING_EVERY, back_off};
use crate::publication;
use crate::queue::Queued;
use crate::state::LinkState;
use crate::stream;

/// Most publications sent in one round of pipelines.
const BATCH: usize = 1_024;

/// The publish script (see `script.lua`).
pub(crate) const SCRIPT: &str = include_str!("script.lua");

/// An encoded envelope and its shard.
type Outgoing = (usize, Vec<u8>);

pub(crate) struct Publisher {
    conn: watch::Receiver<Option<ClusterConnection>>,
    rx: mpsc::Receiver<Queued>,
    node: u64,
    seq: u64,
    window: Duration,
    shards: Arc<Shards>,
    script: Script,
    state: Arc<LinkState>,
}

impl Publisher {
    pub(crate) fn new(
        conn: watch::Receiver<Option<ClusterConnection>>,
        rx: mpsc::Receiver<Queued>,
        node: u64,
        window: Duration,
        shards: Arc<Shards>,
        state: Arc<LinkState>,
    ) -> Publisher {
        Publisher { conn, rx, node, seq: 0, window, shards, script: Script::new(SCRIPT), state }
    }

    pub(crate) async fn run(mut self, stop: CancellationToken) {
        // The reader task opens the connection when the cluster was down at start.
        let conn = tokio::select! {
            c = self.conn.wait_for(Option::is_some) => c.ok().and_then(|c| c.clone()),
            () = stop.cancelled() => None,
        };
        let Some(mut conn) = conn else { return };
        let mut pending: Vec<Outgoing> = Vec::new();
        let mut backoff = BACKOFF_MIN;
        loop {
            if pending.is_empty() {
                // Down: ping at the backoff pace, so the flag (and the HTTP API) comes back soon.
                let every = if self.state.publisher_up.load(Ordering::Acquire) { PING_EVERY } else { backoff };
                tokio::select! {
                    q = self.rx.recv() => match q {
                        Some(q) => self.encode(&q, &mut pending),
                        None => break,
                    },
                    () = tokio::time::sleep(every) => {
                        // Also what brings the flag back after an outage with nothing to send
                        // (the HTTP API refuses publishes until then).
                        match redis::cmd("PING").query_async::<()>(&mut conn).await {
                            Ok(()) => {
                                self.up();
                                backoff = BACKOFF_MIN;
                            }
                            Err(e) => {
                                self.lost(&e);
                                backoff = (backoff * 2).min(PING_EVERY);
                            }
                        }
                        continue;
                    }
                    () = stop.cancelled() => break,
                }
            }
            while pending.len() < BATCH {
                let Ok(q) = self.rx.try_recv() else { break };
                self.encode(&q, &mut pending);
            }
            if self.send(&mut conn, &mut pending).await {
                backoff = BACKOFF_MIN;
            } else if !back_off(&mut backoff, &stop).await {
                break;
            }
        }
        self.rx.close();
        while let Ok(q) = self.rx.try_recv() {
            self.encode(&q, &mut pending);
        }
        let total = pending.len();
        let flushed = timeout(FLUSH_GRACE, async {
            let mut backoff = BACKOFF_MIN;
            while !pending.is_empty() {
                if !self.send(&mut conn, &mut pending).await {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        })
        .await;
        if flushed.is_err() {
            tracing::warn!(
                publications = total,
                "scale-out: redis cluster unreachable at shutdown; queued publications not forwarded"
            );
        }
    }

    fn encode(&mut self, q: &Queued, pending: &mut Vec<Outgoing>) {
        let Some(shard) = self.shards.index(&q.channel, q.publication.channel.as_str()) else { return };
        self.seq += 1;
        pending.push((shard, publication::encode(self.node, self.seq, &q.publication)));
    }

    fn up(&self) {
        if !self.state.publisher_up.swap(true, Ordering::AcqRel) {
            tracing::info!("scale-out: redis cluster publisher is up");
        }
    }

    fn lost(&self, e: &RedisError) {
        if self.state.publisher_up.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %e, "scale-out: redis cluster publisher lost a master; retrying");
        } else {
            tracing::debug!(error = %e, "scale-out: redis cluster publisher still failing");
        }
    }

    /// Sends `pending`, one pipeline per shard; keeps (in order) what must be retried and
    /// returns false when anything is left.
    async fn send(&self, conn: &mut ClusterConnection, pending: &mut Vec<Outgoing>) -> bool {
        let mut groups: BTreeMap<usize, Vec<&[u8]>> = BTreeMap::new();
        for (shard, bytes) in pending.iter() {
            groups.entry(*shard).or_default().push(bytes);
        }
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let now_ms = u64::try_from(now_ms).unwrap_or(u64::MAX);
        let sends = groups.iter().map(|(&shard, envelopes)| {
            let mut conn = conn.clone();
            async move {
                let mut result = self.send_shard(&mut conn, shard, envelopes, now_ms, true).await;
                // A master that does not know the script yet (new, restarted, flushed) gets it
                // whole; it caches it for the next batches.
                if matches!(&result, Err(e) if e.code() == Some("NOSCRIPT")) {
                    result = self.send_shard(&mut conn, shard, envelopes, now_ms, false).await;
                }
                (shard, envelopes.len(), result)
            }
        });
        let mut failed = Vec::new();
        let mut sent = 0;
        for (shard, n, result) in join_all(sends).await {
            match result {
                Ok(()) => sent += n,
                Err(e) => {
                    self.state.retried.fetch_add(n as u64, Ordering::Relaxed);
                    self.lost(&e);
                    failed.push(shard);
                }
            }
        }
        self.state.sent.fetch_add(sent as u64, Ordering::Relaxed);
        pending.retain(|(shard, _)| failed.contains(shard));
        if failed.is_empty() {
            self.up();
        }
        pending.is_empty()
    }

    async fn send_shard(
        &self,
        conn: &mut ClusterConnection,
        shard: usize,
        envelopes: &[&[u8]],
        now_ms: u64,
        by_hash: bool,
    ) -> Result<(), RedisError> {
        let keys = &self.shards.keys[shard];
        let mut pipe = redis::pipe();
        for envelope in envelopes {
            let cmd =
                if by_hash { pipe.cmd("EVALSHA").arg(self.script.get_hash()) } else { pipe.cmd("EVAL").arg(SCRIPT) };
            cmd.arg(3).arg(&keys.log).arg(&keys.last).arg(&keys.channel).arg(stream::MAX_ENTRIES).arg(*envelope);
            cmd.ignore();
        }
        stream::xtrim(&mut pipe, &keys.log, now_ms, self.window);
        pipe.query_async::<()>(conn).await
    }
}
