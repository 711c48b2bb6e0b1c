//! The publisher task: drains the backend's queue into the app streams, in order, resending a
//! failed batch after reconnecting, and gives what is left one bounded chance at shutdown. Each
//! batch also trims the streams it wrote to the replay window.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Client;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

use crate::acked::{Acked, Outgoing, Sequenced};
use crate::commands::Commands;
use crate::connect::{BACKOFF_MIN, FLUSH_GRACE, PING_EVERY, back_off, connect_publisher};
use crate::publication;
use crate::queue::Queued;
use crate::script::{HISTORY, Lua};
use crate::state::LinkState;
use crate::{keys, stream};
use herald_protocol::cluster::envelope::{FLAG_POSITION, FLAGS_OFFSET};

/// Most publications sent in one pipeline.
const BATCH: usize = 256;

/// Drains the queue into Redis.
pub(crate) struct Publisher {
    client: Client,
    conn: Option<MultiplexedConnection>,
    rx: mpsc::Receiver<Queued>,
    node: u64,
    /// Sequence number of the last envelope written.
    seq: u64,
    /// Age beyond which stream entries are trimmed.
    window: Duration,
    /// What Redis acknowledged last, for a Redis that comes back without it.
    acked: Acked,
    /// `run_id` of the Redis instance the connection reaches: a new one is a restart.
    run_id: Option<String>,
    state: Arc<LinkState>,
}

impl Publisher {
    pub(crate) fn new(
        client: Client,
        conn: Option<MultiplexedConnection>,
        rx: mpsc::Receiver<Queued>,
        node: u64,
        window: Duration,
        state: Arc<LinkState>,
    ) -> Publisher {
        Publisher { client, conn, rx, node, seq: 0, window, acked: Acked::default(), run_id: None, state }
    }

    pub(crate) async fn run(mut self, stop: CancellationToken) {
        // Encoded envelopes taken from the queue and not yet confirmed by Redis.
        let mut pending: Vec<Outgoing> = Vec::new();
        let mut backoff = BACKOFF_MIN;
        // Idle links are pinged, so a lost Redis shows in `/health` (and refuses HTTP
        // publishes) before the next publication has to find out.
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if self.conn.is_some() {
            self.identify().await;
        }
        loop {
            // Reconnect even with nothing to send: the HTTP API refuses publishes until then,
            // so waiting for a publication first would never end.
            if self.conn.is_none() {
                if !self.reconnect().await {
                    if back_off(&mut backoff, &stop).await {
                        continue;
                    }
                    break;
                }
                // Before anything newer, so each node's envelopes stay in order in the stream.
                let again = self.acked.restarted();
                if !again.is_empty() {
                    tracing::info!(
                        envelopes = again.len(),
                        "scale-out: redis came back as a new instance; appending the last envelopes it                          acknowledged again (readers drop those they had)"
                    );
                    pending.splice(0..0, again);
                }
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
                self.acked.acked(Instant::now(), pending.drain(..));
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
                if !self.identify().await {
                    return false;
                }
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

    /// Reads the `run_id` of the Redis reached and tells [`Acked`] whether it is the one the
    /// link had; false when the connection failed meanwhile.
    async fn identify(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else { return false };
        let info = match redis::cmd("INFO").arg("server").query_async::<String>(conn).await {
            Ok(info) => info,
            Err(e) => {
                self.link_lost(&e);
                return false;
            }
        };
        let run_id = info.lines().find_map(|l| l.strip_prefix("run_id:")).map(|id| id.trim().to_owned());
        match (&self.run_id, &run_id) {
            (Some(old), Some(new)) if old != new => self.forget_script(),
            _ => self.acked.same_instance(),
        }
        self.run_id = run_id;
        true
    }

    /// Marks the command connection lost (logged once per outage).
    fn link_lost(&mut self, e: &redis::RedisError) {
        self.conn = None;
        self.acked.lost();
        if self.state.publisher_up.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %e, "scale-out: redis publisher connection lost; reconnecting");
        } else {
            tracing::debug!(error = %e, "scale-out: redis publisher still unreachable");
        }
    }

    async fn ping(&mut self) {
        let Some(conn) = self.conn.as_mut() else { return };
        if let Err(e) = redis::cmd("PING").query_async::<()>(conn).await {
            self.link_lost(&e);
        }
    }

    fn encode(&mut self, q: &Queued) -> Outgoing {
        self.seq += 1;
        let sequenced =
            q.history.map(|policy| Sequenced { channel: q.publication.channel.as_str().into(), seq: self.seq, policy });
        Outgoing {
            stream: Arc::clone(&q.channel),
            bytes: publication::encode(self.node, self.seq, &q.publication),
            sequenced,
        }
    }

    /// Sends one batch; false when it must be retried (after reconnecting).
    async fn send(&mut self, batch: &[Outgoing]) -> bool {
        let Some(conn) = self.conn.as_mut() else { return false };
        // Channels with history go through the sequencing script, in the same pipeline as the
        // plain appends: the app stream keeps this node's order.
        let sha = if batch.iter().any(|o| o.sequenced.is_some()) {
            match HISTORY.sha(&mut Commands::Single(conn.clone())).await {
                Ok(sha) => Some(sha),
                Err(e) => {
                    self.link_lost(&e);
                    return false;
                }
            }
        } else {
            None
        };
        let mut pipe = redis::pipe();
        let mut streams: Vec<&str> = Vec::new();
        for o in batch {
            match (&o.sequenced, &sha) {
                (Some(s), Some(sha)) => {
                    pipe.add_command(sequence(sha, &o.stream, &o.bytes, s, self.node)).ignore();
                }
                _ => stream::xadd(&mut pipe, &o.stream, &o.bytes),
            }
            if !streams.contains(&&*o.stream) {
                streams.push(&o.stream);
            }
        }
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let now_ms = u64::try_from(now_ms).unwrap_or(u64::MAX);
        for key in streams {
            stream::xtrim(&mut pipe, key, now_ms, self.window);
        }
        match pipe.query_async::<()>(conn).await {
            Ok(()) => {
                self.state.sent.fetch_add(batch.len() as u64, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.state.retried.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if e.code() == Some("NOSCRIPT") {
                    // Redis forgot the script (flushed): load it again on the retry. The plain
                    // appends of the batch went through and are dropped by readers as resent.
                    HISTORY.forget();
                    return false;
                }
                self.link_lost(&e);
                false
            }
        }
    }

    /// Forgets the sequencing script's SHA1 when the link reaches another Redis instance.
    fn forget_script(&self) {
        HISTORY.forget();
    }

    /// On shutdown: whatever is still queued gets one bounded chance to reach Redis.
    async fn flush(mut self, mut pending: Vec<Outgoing>) {
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
            tracing::warn!(
                publications = total,
                "scale-out: redis unreachable at shutdown; queued publications not forwarded"
            );
        }
    }
}

/// The `EVALSHA` of `history.lua` for one envelope: Redis gives it its channel position, appends
/// it to the app stream and holds it in the channel's history.
pub(crate) fn sequence(sha: &str, stream: &str, envelope: &[u8], s: &Sequenced, node: u64) -> redis::Cmd {
    let position = keys::history_position(stream, &s.channel);
    let entries = keys::history_entries(stream, &s.channel);
    let max_age_ms = u64::try_from(s.policy.max_age.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut cmd = Lua::cmd(sha, &[stream, &position, &entries], &[]);
    cmd.arg(envelope)
        .arg(&*herald_core::history::new_epoch())
        .arg(s.policy.max_messages)
        .arg(max_age_ms)
        .arg(format!("{node:016x}"))
        .arg(s.seq)
        .arg(stream::MAX_ENTRIES)
        .arg(FLAGS_OFFSET + 1)
        .arg(FLAG_POSITION);
    cmd
}
