//! The reader task: reads the app streams after the last entry it delivered and delivers the
//! other nodes' publications into the local hub. After a lost connection (or a Redis restart) it
//! reconnects and resumes from the same entries, so what was published meanwhile still arrives,
//! within the replay window.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use herald_core::{App, Hub};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisResult, Value};
use tokio_util::sync::CancellationToken;

use crate::connect::{BACKOFF_MIN, CONNECT_TIMEOUT, RESPONSE_TIMEOUT, back_off};
use crate::cursor::{Cursor, EntryId, Resume};
use crate::inbound::{Inbound, Verdict};
use crate::state::LinkState;
use crate::stream;

/// Most entries one read returns.
const COUNT: usize = 512;
/// How long one read waits for entries. A read that never answers (a half-open link) fails at
/// the connection's response timeout, so this also paces the liveness check of an idle link.
const BLOCK: Duration = Duration::from_secs(1);

/// The reader's connection, with its position in every app stream.
pub(crate) struct Reader {
    conn: MultiplexedConnection,
    cursors: HashMap<Arc<str>, Cursor>,
}

/// Opens the reader connection (named `herald-reader:{node}` in `CLIENT LIST`, so an operator
/// can tell it from the publisher's) and places a cursor in each of `keys`: `cursors` where
/// this node read before, else at the stream's end.
pub(crate) async fn open(
    client: &Client,
    node: u64,
    keys: &[Arc<str>],
    cursors: &HashMap<Arc<str>, Cursor>,
) -> RedisResult<(Reader, Vec<(Arc<str>, Resume)>)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    let mut pipe = redis::pipe();
    pipe.cmd("CLIENT").arg("SETNAME").arg(format!("herald-reader:{node:016x}")).ignore();
    for key in keys {
        pipe.cmd("XINFO").arg("STREAM").arg(&**key);
    }
    // A stream nobody wrote to yet is an error reply ("no such key"), not a failed pipeline.
    let infos: Vec<RedisResult<Value>> = pipe.ignore_errors().query_async(&mut conn).await?;
    let mut placed = HashMap::with_capacity(keys.len());
    let mut resumed = Vec::with_capacity(keys.len());
    for (key, info) in keys.iter().zip(infos) {
        let info = match info {
            Ok(v) => Some(stream::parse_info(&v).ok_or_else(|| unexpected("XINFO STREAM"))?),
            Err(e) if e.to_string().to_ascii_lowercase().contains("no such key") => None,
            Err(e) => return Err(e),
        };
        let (cursor, resume) = Cursor::resume(cursors.get(key).copied(), info.as_ref());
        placed.insert(Arc::clone(key), cursor);
        resumed.push((Arc::clone(key), resume));
    }
    Ok((Reader { conn, cursors: placed }, resumed))
}

fn unexpected(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Parse, "unexpected answer", what.to_owned()))
}

/// Delivers other nodes' publications into the local hub.
pub(crate) struct Subscriber {
    client: Client,
    node: u64,
    /// App of each stream key.
    apps: HashMap<Arc<str>, Arc<App>>,
    keys: Vec<Arc<str>>,
    inbound: Inbound,
    state: Arc<LinkState>,
    hub: Arc<Hub>,
    /// Entries delivered are counted as replayed until a read comes back short (caught up).
    catching_up: bool,
}

impl Subscriber {
    pub(crate) fn new(
        client: Client,
        node: u64,
        apps: HashMap<Arc<str>, Arc<App>>,
        state: Arc<LinkState>,
        hub: Arc<Hub>,
    ) -> Subscriber {
        let keys = apps.keys().cloned().collect();
        Subscriber { client, node, apps, keys, inbound: Inbound::new(node), state, hub, catching_up: false }
    }

    pub(crate) async fn run(mut self, mut first: Option<Reader>, stop: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        // Kept across connections: where each stream is resumed.
        let mut cursors: HashMap<Arc<str>, Cursor> = HashMap::new();
        loop {
            let mut reader = match first.take() {
                Some(r) => r,
                None => match open(&self.client, self.node, &self.keys, &cursors).await {
                    Ok((r, resumed)) => {
                        self.report(&resumed);
                        r
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "scale-out: redis reader still unreachable");
                        if back_off(&mut backoff, &stop).await {
                            continue;
                        }
                        return;
                    }
                },
            };
            self.state.subscriber_up.store(true, Ordering::Release);
            backoff = BACKOFF_MIN;
            let stopped = self.pump(&mut reader, &stop).await;
            self.state.subscriber_up.store(false, Ordering::Release);
            cursors = reader.cursors;
            if stopped {
                return;
            }
            tracing::warn!("scale-out: redis reader connection lost; reconnecting and resuming");
        }
    }

    /// Logs and counts what resuming found in each stream.
    fn report(&mut self, resumed: &[(Arc<str>, Resume)]) {
        self.catching_up = true;
        for (key, resume) in resumed {
            match resume {
                Resume::Fresh | Resume::Continue => {}
                Resume::Gap { missed } => {
                    self.state.gaps.fetch_add(1, Ordering::Relaxed);
                    self.state.missed.fetch_add(*missed, Ordering::Relaxed);
                    tracing::warn!(
                        stream = %key, missed,
                        "scale-out: away from redis longer than the replay window; publications of other \
                         nodes were trimmed before this node read them and are not delivered here"
                    );
                }
                Resume::Reset => {
                    self.state.resets.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        stream = %key,
                        "scale-out: the redis stream is gone or behind what this node read (redis restarted \
                         without its data?); reading it from its start"
                    );
                }
            }
        }
        tracing::info!("scale-out: redis reader is back; resuming after the last entry delivered");
    }

    /// Delivers entries until the connection fails (false) or `stop` fires (true).
    async fn pump(&mut self, reader: &mut Reader, stop: &CancellationToken) -> bool {
        loop {
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT").arg(COUNT).arg("BLOCK").arg(BLOCK.as_millis() as u64).arg("STREAMS");
            for key in &self.keys {
                cmd.arg(&**key);
            }
            for key in &self.keys {
                cmd.arg(reader.cursors.get(key).map_or(EntryId::ZERO, |c| c.id).to_string());
            }
            let answer = tokio::select! {
                a = cmd.query_async::<Value>(&mut reader.conn) => a,
                () = stop.cancelled() => return true,
            };
            let read = match answer.map(stream::parse_read) {
                Ok(Some(read)) => read,
                Ok(None) => {
                    tracing::warn!("scale-out: unexpected XREAD answer; reconnecting");
                    return false;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "scale-out: redis read failed");
                    return false;
                }
            };
            let mut total = 0;
            for (key, entries) in read {
                let Some((key, app)) = std::str::from_utf8(&key)
                    .ok()
                    .and_then(|k| self.apps.get_key_value(k))
                    .map(|(k, a)| (Arc::clone(k), Arc::clone(a)))
                else {
                    continue;
                };
                total += entries.len();
                for (id, envelope) in entries {
                    if let Some(bytes) = envelope {
                        self.on_entry(&key, &app, &bytes);
                    }
                    if let Some(c) = reader.cursors.get_mut(&key) {
                        c.advance(id);
                    }
                }
            }
            if total < COUNT {
                self.catching_up = false;
            }
        }
    }

    fn on_entry(&mut self, key: &str, app: &App, bytes: &[u8]) {
        let verdict = self.inbound.receive(bytes);
        take(verdict, &self.hub, app, &self.state, self.catching_up, key);
    }
}

/// Acts on what `inbound` made of one envelope read from `source` (a stream or a shard): delivers
/// it into the hub (counted, and counted as replayed while catching up), or says once why not.
pub(crate) fn take(verdict: Verdict, hub: &Hub, app: &App, state: &LinkState, replayed: bool, source: &str) {
    match verdict {
        Verdict::Deliver(publication) => {
            hub.deliver(app, &publication);
            state.received.fetch_add(1, Ordering::Relaxed);
            if replayed {
                state.replayed.fetch_add(1, Ordering::Relaxed);
            }
        }
        Verdict::Own | Verdict::Duplicate => {}
        Verdict::Foreign { error, first } => {
            state.refused_version.fetch_add(1, Ordering::Relaxed);
            // Every envelope of that node would log the same line: once per node and version.
            if first {
                tracing::error!(
                    source,
                    "scale-out: {error}; run one herald version per Redis prefix during a rolling upgrade \
                     (its publications are not delivered on this node)"
                );
            }
        }
        Verdict::Malformed(error) => {
            tracing::warn!(%error, source, "scale-out: envelope ignored");
        }
    }
}
