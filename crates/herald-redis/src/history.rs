//! The channels' histories as Redis holds them, read for recovering clients.
//!
//! On one Redis, the publications of a channel with history are sequenced by `history.lua`:
//! it keeps the channel's position (epoch, serial) in a hash and each publication, positioned,
//! in the channel's own stream (entry id `{serial}-0`, capped at `max_messages`, both keys
//! expiring after `max_age` without a publication). Every node fills its in-memory history from
//! what it delivers; a node that started later, or lags, asks Redis here for the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use herald_core::Publication;
use herald_core::app::HistoryPolicy;
use herald_core::backend::FetchError;
use herald_core::history::RecoverError;
use herald_protocol::cluster::Envelope;
use redis::aio::MultiplexedConnection;
use redis::{Client, RedisError, Value};
use tokio::sync::Mutex;

use crate::connect::connect_publisher;
use crate::cursor::EntryId;
use crate::{keys, publication};

/// Reads the channels' histories in Redis.
pub(crate) struct SharedHistory {
    client: Client,
    /// One connection, opened on first use and again after it failed.
    conn: Mutex<Option<MultiplexedConnection>>,
    /// Fetches asked for, and those that failed (Redis unreachable, or an answer not understood).
    pub(crate) fetches: AtomicU64,
    pub(crate) failed: AtomicU64,
}

impl std::fmt::Debug for SharedHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedHistory").finish_non_exhaustive()
    }
}

/// One entry of a channel's history stream.
struct Held {
    serial: u64,
    /// Redis time of the append, in ms.
    at_ms: u64,
    envelope: Vec<u8>,
}

impl SharedHistory {
    pub(crate) fn new(client: Client) -> Self {
        Self { client, conn: Mutex::new(None), fetches: AtomicU64::new(0), failed: AtomicU64::new(0) }
    }

    /// Every publication of `channel` (in app `stream`) after `(epoch, serial)`, oldest first.
    ///
    /// # Errors
    /// [`FetchError::Recover`] when Redis does not hold them all, [`FetchError::Unavailable`]
    /// when it cannot be read.
    pub(crate) async fn after(
        &self,
        stream: &str,
        channel: &str,
        policy: HistoryPolicy,
        epoch: &str,
        serial: u64,
    ) -> Result<Vec<Arc<Publication>>, FetchError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let answer = self.read(stream, channel, serial).await;
        let read = match answer {
            Ok(r) => r,
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                *self.conn.lock().await = None;
                return Err(FetchError::Unavailable(e.to_string()));
            }
        };
        let result = judge(read, policy, epoch, serial);
        if matches!(result, Err(FetchError::Unavailable(_))) {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// The channel's position, its entries after `serial` and Redis' time, read atomically.
    async fn read(&self, stream: &str, channel: &str, serial: u64) -> Result<Read, RedisError> {
        let mut conn = {
            let mut guard = self.conn.lock().await;
            match &*guard {
                Some(c) => c.clone(),
                None => {
                    let c = connect_publisher(&self.client).await?;
                    *guard = Some(c.clone());
                    c
                }
            }
        };
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HMGET")
            .arg(keys::history_position(stream, channel))
            .arg("epoch")
            .arg("serial")
            .cmd("XRANGE")
            .arg(keys::history_entries(stream, channel))
            .arg(format!("{}-0", serial.saturating_add(1)))
            .arg("+")
            .cmd("TIME");
        let (position, entries, time): (Position, Value, (u64, u64)) = pipe.query_async(&mut conn).await?;
        Ok(Read { position, entries, now_ms: time.0 * 1000 + time.1 / 1000 })
    }
}

/// A channel's epoch and serial in Redis (both absent: no history there).
type Position = (Option<String>, Option<u64>);

/// What one fetch read.
struct Read {
    position: Position,
    entries: Value,
    now_ms: u64,
}

/// What Redis' answer means for a client that saw `(epoch, serial)`: the same verdicts as a
/// node's own history (`ChannelHistory::after`), so a client cannot tell where it recovered.
fn judge(read: Read, policy: HistoryPolicy, epoch: &str, serial: u64) -> Result<Vec<Arc<Publication>>, FetchError> {
    let recover = |e| Err(FetchError::Recover(e));
    let (Some(current_epoch), Some(current)) = read.position else { return recover(RecoverError::UnknownEpoch) };
    if current_epoch != epoch {
        return recover(RecoverError::UnknownEpoch);
    }
    if serial > current {
        return recover(RecoverError::Ahead);
    }
    let Some(entries) = parse_entries(read.entries) else {
        return Err(FetchError::Unavailable("unexpected XRANGE answer".into()));
    };
    let max_age_ms = u64::try_from(policy.max_age.as_millis()).unwrap_or(u64::MAX);
    let oldest_ms = read.now_ms.saturating_sub(max_age_ms);
    // Older than max_age: no longer held (Redis only trims by count; the key's expiry covers
    // idle channels). What is left must start right after the client's serial, with no hole.
    let kept = entries.into_iter().skip_while(|h| h.at_ms < oldest_ms);
    let mut out = Vec::new();
    let mut next = serial + 1;
    for h in kept {
        if h.serial != next {
            return recover(RecoverError::Gap);
        }
        let Ok(envelope) = Envelope::decode(&h.envelope) else {
            return Err(FetchError::Unavailable(format!("history entry {} is not an envelope", h.serial)));
        };
        let p = publication::decode(envelope);
        if p.position().is_none_or(|pos| pos.serial != h.serial || *pos.epoch != *epoch) {
            return Err(FetchError::Unavailable(format!("history entry {} is not positioned", h.serial)));
        }
        out.push(Arc::new(p));
        next += 1;
    }
    if next <= current {
        return recover(RecoverError::Gap);
    }
    Ok(out)
}

fn parse_entries(value: Value) -> Option<Vec<Held>> {
    let Value::Array(items) = value else { return None };
    items
        .into_iter()
        .map(|item| {
            let Value::Array(pair) = item else { return None };
            let mut it = pair.into_iter();
            let (Some(Value::BulkString(id)), Some(Value::Array(fields)), None) = (it.next(), it.next(), it.next())
            else {
                return None;
            };
            let id = EntryId::parse(&id)?;
            let (mut envelope, mut at_ms) = (None, None);
            let mut f = fields.into_iter();
            while let (Some(Value::BulkString(k)), Some(Value::BulkString(v))) = (f.next(), f.next()) {
                match k.as_slice() {
                    b"e" => envelope = Some(v),
                    b"t" => at_ms = std::str::from_utf8(&v).ok()?.parse().ok(),
                    _ => {}
                }
            }
            Some(Held { serial: id.ms, at_ms: at_ms?, envelope: envelope? })
        })
        .collect()
}
