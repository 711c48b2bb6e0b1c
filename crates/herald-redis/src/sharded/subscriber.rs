//! The cluster reader: subscribes every shard channel, delivers each message that follows the
//! last entry it delivered on its shard, and reads a shard's stream when messages went by unseen.
//! At start and after every disconnection it subscribes again and reads every shard's stream
//! after its last entry before saying the link is up, so what was published meanwhile arrives.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::join_all;
use herald_core::{App, Hub};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, RedisError, RedisResult, Value};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::Shards;
use super::gaps::{self, Step};
use crate::connect::{BACKOFF_MIN, PING_EVERY, back_off};
use crate::cursor::{Cursor, Resume};
use crate::inbound::Inbound;
use crate::state::LinkState;
use crate::stream;

/// Most entries one `XRANGE` returns.
const COUNT: usize = 512;
/// Most `XRANGE`s one fill makes: a shard's stream holds at most `MAX_ENTRIES`.
const MAX_READS: u64 = stream::MAX_ENTRIES / COUNT as u64 + 2;

/// Where this node is in one shard.
struct Shard {
    app: Option<Arc<App>>,
    /// The last entry delivered; `None` until the first resync placed it.
    cursor: Option<Cursor>,
    /// Duplicates are judged per shard: one node's sequence numbers interleave across shards.
    inbound: Inbound,
}

pub(crate) struct Reader {
    client: ClusterClient,
    conn_tx: watch::Sender<Option<ClusterConnection>>,
    pushes: mpsc::Receiver<PushInfo>,
    overflow: Arc<AtomicBool>,
    shards: Arc<Shards>,
    /// Shard of each shard channel name.
    by_channel: HashMap<Vec<u8>, usize>,
    state_of: Vec<Shard>,
    state: Arc<LinkState>,
    hub: Arc<Hub>,
}

impl Reader {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client: ClusterClient,
        conn_tx: watch::Sender<Option<ClusterConnection>>,
        pushes: mpsc::Receiver<PushInfo>,
        overflow: Arc<AtomicBool>,
        node: u64,
        shards: Arc<Shards>,
        apps: HashMap<Arc<str>, Arc<App>>,
        state: Arc<LinkState>,
        hub: Arc<Hub>,
    ) -> Reader {
        let by_channel = shards.keys.iter().enumerate().map(|(i, k)| (k.channel.clone().into_bytes(), i)).collect();
        let state_of = (0..shards.keys.len())
            .map(|i| Shard { app: apps.get(shards.app_of(i)).cloned(), cursor: None, inbound: Inbound::new(node) })
            .collect();
        Reader { client, conn_tx, pushes, overflow, shards, by_channel, state_of, state, hub }
    }

    pub(crate) async fn run(mut self, first: Option<ClusterConnection>, stop: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        let mut conn = match first {
            Some(c) => c,
            None => loop {
                match self.client.get_async_connection().await {
                    Ok(c) => {
                        self.conn_tx.send_replace(Some(c.clone()));
                        break c;
                    }
                    Err(e) => tracing::debug!(error = %e, "scale-out: redis cluster still unreachable"),
                }
                if !back_off(&mut backoff, &stop).await {
                    return;
                }
            },
        };
        let mut resync = true;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A full push queue dropped messages: read the streams for them.
            if std::mem::take(&mut resync) || self.overflow.swap(false, Ordering::AcqRel) {
                if let Err(e) = self.resync(&mut conn).await {
                    self.lost(&e);
                    resync = true;
                    if !back_off(&mut backoff, &stop).await {
                        return;
                    }
                    continue;
                }
                backoff = BACKOFF_MIN;
                if !self.state.subscriber_up.swap(true, Ordering::AcqRel) {
                    tracing::info!("scale-out: redis cluster reader is up; every shard read after its last entry");
                }
            }
            tokio::select! {
                push = self.pushes.recv() => match push {
                    Some(push) => resync = self.on_push(&mut conn, push).await,
                    None => return,
                },
                _ = ping.tick() => {
                    if let Err(e) = redis::cmd("PING").query_async::<()>(&mut conn).await {
                        self.lost(&e);
                        resync = true;
                    }
                }
                () = stop.cancelled() => return,
            }
        }
    }

    fn lost(&self, e: &RedisError) {
        if self.state.subscriber_up.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %e, "scale-out: redis cluster reader lost a master; resubscribing and resuming");
        } else {
            tracing::debug!(error = %e, "scale-out: redis cluster reader still failing");
        }
    }

    /// Handles one push; true when the shards must be resynchronised.
    async fn on_push(&mut self, conn: &mut ClusterConnection, push: PushInfo) -> bool {
        match push.kind {
            PushKind::Disconnection => {
                // The client reconnects and resubscribes by itself; what was published on that
                // master meanwhile is only in the streams.
                self.lost(&RedisError::from((redis::ErrorKind::Io, "connection to a master closed")));
                true
            }
            PushKind::SMessage => {
                let mut data = push.data.into_iter();
                let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) = (data.next(), data.next())
                else {
                    return false;
                };
                let Some(&shard) = self.by_channel.get(&channel) else { return false };
                self.on_message(conn, shard, &payload).await.is_err()
            }
            _ => false,
        }
    }

    async fn on_message(&mut self, conn: &mut ClusterConnection, shard: usize, payload: &[u8]) -> RedisResult<()> {
        let Some(message) = gaps::parse(payload) else {
            tracing::warn!(shard = %self.shards.keys[shard].channel, "scale-out: malformed shard message ignored");
            return Ok(());
        };
        // Not placed yet: the pending resync starts at the stream's end, past this message.
        let Some(cursor) = self.state_of[shard].cursor else { return Ok(()) };
        let step = match gaps::step(cursor.id, &message) {
            Step::Fill => {
                self.fill(conn, shard).await?;
                let last = self.state_of[shard].cursor.map_or(cursor.id, |c| c.id);
                gaps::after_fill(last, &message)
            }
            step => step,
        };
        if step == Step::Deliver {
            self.deliver(shard, message.envelope, false);
            if let Some(c) = self.state_of[shard].cursor.as_mut() {
                c.advance(message.id);
            }
        }
        Ok(())
    }

    /// Subscribes every shard channel again, places each shard's cursor from its stream and
    /// reads every stream after it.
    async fn resync(&mut self, conn: &mut ClusterConnection) -> RedisResult<()> {
        let subscribes = self.shards.keys.iter().map(|k| {
            let mut conn = conn.clone();
            async move { conn.ssubscribe(&k.channel).await }
        });
        join_all(subscribes).await.into_iter().collect::<RedisResult<Vec<()>>>()?;
        let infos = self.shards.keys.iter().map(|k| {
            let mut conn = conn.clone();
            async move { redis::cmd("XINFO").arg("STREAM").arg(&k.log).query_async::<Value>(&mut conn).await }
        });
        let infos = join_all(infos).await;
        for (shard, info) in infos.into_iter().enumerate() {
            let info = match info {
                Ok(v) => Some(stream::parse_info(&v).ok_or_else(|| unexpected("XINFO STREAM"))?),
                Err(e) if e.to_string().to_ascii_lowercase().contains("no such key") => None,
                Err(e) => return Err(e),
            };
            let (cursor, resume) = Cursor::resume(self.state_of[shard].cursor, info.as_ref());
            self.state_of[shard].cursor = Some(cursor);
            self.report(shard, resume);
        }
        for shard in 0..self.shards.keys.len() {
            self.fill(conn, shard).await?;
        }
        Ok(())
    }

    fn report(&self, shard: usize, resume: Resume) {
        let key = &self.shards.keys[shard].log;
        match resume {
            Resume::Fresh | Resume::Continue => {}
            Resume::Gap { missed } => {
                self.state.gaps.fetch_add(1, Ordering::Relaxed);
                self.state.missed.fetch_add(missed, Ordering::Relaxed);
                tracing::warn!(
                    stream = %key, missed,
                    "scale-out: away from the redis cluster longer than the replay window; publications of other \
                     nodes were trimmed before this node read them and are not delivered here"
                );
            }
            Resume::Reset => {
                self.state.resets.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    stream = %key,
                    "scale-out: a shard stream is gone or behind what this node read (its master restarted \
                     without its data?); reading it from its start"
                );
            }
        }
    }

    /// Reads the shard's stream after its cursor, delivering every entry.
    async fn fill(&mut self, conn: &mut ClusterConnection, shard: usize) -> RedisResult<()> {
        for _ in 0..MAX_READS {
            let Some(cursor) = self.state_of[shard].cursor else { return Ok(()) };
            let reply: Value = redis::cmd("XRANGE")
                .arg(&self.shards.keys[shard].log)
                .arg(format!("({}", cursor.id))
                .arg("+")
                .arg("COUNT")
                .arg(COUNT)
                .query_async(conn)
                .await?;
            let Value::Array(entries) = reply else { return Err(unexpected("XRANGE")) };
            let n = entries.len();
            for entry in entries {
                let (id, envelope) = stream::entry(entry).ok_or_else(|| unexpected("XRANGE"))?;
                if let Some(bytes) = envelope {
                    self.deliver(shard, &bytes, true);
                }
                if let Some(c) = self.state_of[shard].cursor.as_mut() {
                    c.advance(id);
                }
            }
            if n < COUNT {
                break;
            }
        }
        Ok(())
    }

    fn deliver(&mut self, shard: usize, bytes: &[u8], replayed: bool) {
        let Shard { app, inbound, .. } = &mut self.state_of[shard];
        let Some(app) = app else { return };
        let verdict = inbound.receive(bytes);
        let source = &*self.shards.keys[shard].channel;
        crate::subscriber::take(verdict, &self.hub, app, &self.state, replayed, source);
    }
}

fn unexpected(what: &'static str) -> RedisError {
    RedisError::from((redis::ErrorKind::Parse, "unexpected answer", what.to_owned()))
}
