//! The delivering side: per app, one node holds a lease and hands the app's webhook stream, in
//! order, to its webhook delivery; it moves the app's cursor past an entry only once every
//! endpoint settled it. When that node dies its lease runs out, another node takes it and starts
//! again at the cursor: what was not settled is delivered again, nothing is lost.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use herald_core::{App, Receipt};
use redis::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Keys, Leads, codec};
use crate::commands::{Commands, Connector};
use crate::connect::{BACKOFF_MIN, back_off};

/// How long a lease lasts without renewal: a dead node's apps are taken over within it.
pub(crate) const LEASE: Duration = Duration::from_secs(5);
/// Leases are renewed this often.
const TICK: Duration = Duration::from_millis(500);
/// Longest wait of one read for new entries.
const BLOCK_MS: u64 = 200;

/// Takes the lease when free or ours (then renews it); 1 when we hold it.
const LEASE_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0";

/// Moves the cursor (and trims what is behind it) only while we hold the lease.
const COMMIT_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('XTRIM', KEYS[3], 'MINID', ARGV[2])
return 1";

/// Deletes the lease only while we hold it.
const RELEASE_SCRIPT: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// One led app: what was handed over and not yet committed.
struct Led {
    /// The last entry read (the next read starts after it).
    read: String,
    /// Entries handed over, oldest first: (number, entry id, settled).
    out: VecDeque<(u64, String, bool)>,
    /// The newest entry settled in order, not yet written as the cursor.
    commit: Option<String>,
}

/// An app whose lease this node holds.
struct Held {
    /// Which lease taken: receipts of an earlier one are ignored.
    generation: u64,
    /// The [`Lead::epoch`] it was taken for: another one means the app's endpoints were rebuilt.
    epoch: u64,
    /// Its keys, kept for releasing the lease of an app that left.
    keys: Keys,
    led: Led,
}

/// One app the node may deliver for.
#[derive(Clone)]
pub(crate) struct Lead {
    pub(crate) app: Arc<App>,
    pub(crate) keys: Keys,
    /// Changes when the app's endpoints are rebuilt: the leader then starts the app again at
    /// its cursor, as a node taking the lease over would, so that nothing the replaced endpoints
    /// could not send stays unsettled ahead of the cursor.
    pub(crate) epoch: u64,
}

/// The leader task of this node.
pub(crate) struct Leader {
    pub(crate) connector: Connector,
    pub(crate) node: String,
    pub(crate) apps: Arc<Leads>,
}

/// A settled (or abandoned) entry: app id, lease generation, entry number, settled.
type Settled = (Arc<str>, u64, u64, bool);

impl Leader {
    #[expect(
        clippy::too_many_lines,
        reason = "one loop: lease, commit, read, hand over; split, it needs its state passed around"
    )]
    pub(crate) async fn run(self, stop: CancellationToken) {
        let (settled_tx, mut settled_rx) = mpsc::unbounded_channel::<Settled>();
        // A new generation per lease taken: receipts of an earlier lease are ignored.
        let mut generation = 0u64;
        let mut led: HashMap<Arc<str>, Held> = HashMap::new();
        let mut next = 0u64;
        let mut backoff = BACKOFF_MIN;
        let mut last_tick = tokio::time::Instant::now() - TICK;
        let lease_script = redis::Script::new(LEASE_SCRIPT);
        let commit_script = redis::Script::new(COMMIT_SCRIPT);
        let release_script = redis::Script::new(RELEASE_SCRIPT);
        'connect: loop {
            // No app has webhooks (yet): no connection to Redis either.
            while self.apps.snapshot().is_empty() {
                tokio::select! {
                    () = tokio::time::sleep(TICK) => {}
                    () = stop.cancelled() => return,
                }
            }
            // Its response timeout (5 s) is well above an `XREAD`'s block.
            let mut conn: Commands = match self.connector.connect().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "webhooks: redis unreachable for delivery");
                    if back_off(&mut backoff, &stop).await {
                        continue;
                    }
                    return;
                }
            };
            backoff = BACKOFF_MIN;
            loop {
                if stop.is_cancelled() {
                    break 'connect;
                }
                while let Ok((id, g, n, ok)) = settled_rx.try_recv() {
                    if let Some(h) = led.get_mut(&id)
                        && h.generation == g
                    {
                        settle(&mut h.led, n, ok);
                    }
                }
                // The apps change while herald runs: read once per round.
                let apps = self.apps.snapshot();
                if last_tick.elapsed() >= TICK {
                    last_tick = tokio::time::Instant::now();
                    // Apps gone (or without webhooks now), and apps whose endpoints were rebuilt:
                    // what was settled moves the cursor; a gone app's lease is given back.
                    let stale: Vec<Arc<str>> = (led.iter())
                        .filter(|(id, h)| apps.get(&***id).is_none_or(|lead| lead.epoch != h.epoch))
                        .map(|(id, _)| Arc::clone(id))
                        .collect();
                    for id in stale {
                        let Some(h) = led.remove(&id) else { continue };
                        if let Some(at) = &h.led.commit {
                            let _ = commit(&commit_script, &mut conn, &h.keys, &self.node, at).await;
                        }
                        if !apps.contains_key(&*id) {
                            let _ = release(&release_script, &mut conn, &h.keys, &self.node).await;
                            tracing::info!(app = %id, "webhooks: the app has no webhooks here any more; lease given back");
                        }
                    }
                    for (id, lead) in apps.iter() {
                        let held: redis::RedisResult<i64> = lease_script
                            .key(&*lead.keys.lease)
                            .arg(&self.node)
                            .arg(LEASE.as_millis() as u64)
                            .invoke_async(&mut conn)
                            .await;
                        match held {
                            Ok(1) if !led.contains_key(id.as_str()) => {
                                let cursor: redis::RedisResult<Option<String>> =
                                    redis::cmd("GET").arg(&*lead.keys.cursor).query_async(&mut conn).await;
                                let Ok(cursor) = cursor else { continue 'connect };
                                generation += 1;
                                let read = cursor.unwrap_or_else(|| "0-0".into());
                                tracing::info!(app = %id, from = %read, "webhooks: this node delivers the app's webhooks");
                                let led_app = Led { read, out: VecDeque::new(), commit: None };
                                let held =
                                    Held { generation, epoch: lead.epoch, keys: lead.keys.clone(), led: led_app };
                                led.insert(id.as_str().into(), held);
                            }
                            Ok(1) => {}
                            Ok(_) => {
                                if led.remove(id.as_str()).is_some() {
                                    tracing::warn!(app = %id, "webhooks: another node took over the app's webhooks");
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "webhooks: redis lost; reconnecting");
                                continue 'connect;
                            }
                        }
                    }
                }
                // The cursor follows what was settled at once: a node that dies right after a
                // delivery leaves as little as possible to send again.
                for h in led.values_mut() {
                    let Some(id) = h.led.commit.take() else { continue };
                    if commit(&commit_script, &mut conn, &h.keys, &self.node, &id).await.is_err() {
                        h.led.commit = Some(id);
                    }
                }
                if led.is_empty() {
                    tokio::select! {
                        () = tokio::time::sleep(TICK) => {}
                        () = stop.cancelled() => break 'connect,
                    }
                    continue;
                }
                // Read only what every endpoint can queue now: the rest waits in Redis.
                let room: Vec<(Arc<str>, usize)> = (led.keys())
                    .filter_map(|id| apps.get(&**id).map(|lead| (Arc::clone(id), self.apps.consumer.room(&lead.app))))
                    .filter(|(_, room)| *room > 0)
                    .collect();
                let Some(count) = room.iter().map(|(_, r)| *r).min() else {
                    tokio::time::sleep(Duration::from_millis(BLOCK_MS)).await;
                    continue;
                };
                // One `XREAD` for every app on one Redis; on a cluster the app streams live in
                // different slots: one read per app, all at once.
                let streams: Vec<&Held> = room.iter().filter_map(|(id, _)| led.get(id)).collect();
                let groups: Vec<Vec<&Held>> =
                    if conn.is_cluster() { streams.iter().map(|&h| vec![h]).collect() } else { vec![streams] };
                let reads = groups.iter().map(|group| {
                    let mut cmd = redis::cmd("XREAD");
                    cmd.arg("COUNT").arg(count.min(512)).arg("BLOCK").arg(BLOCK_MS).arg("STREAMS");
                    for h in group {
                        cmd.arg(&*h.keys.stream);
                    }
                    for h in group {
                        cmd.arg(&h.led.read);
                    }
                    let mut c = conn.clone();
                    async move { cmd.query_async::<Value>(&mut c).await }
                });
                let mut read = Vec::new();
                for reply in futures_util::future::join_all(reads).await {
                    let Ok(reply) = reply else {
                        tracing::warn!("webhooks: reading from redis failed; reconnecting");
                        continue 'connect;
                    };
                    read.extend(entries_of(&reply));
                }
                for (key, entries) in read {
                    let Some((id, h)) = led.iter_mut().find(|(_, h)| *h.keys.stream == *key) else { continue };
                    let Some(lead) = apps.get(&**id) else { continue };
                    let app = &lead.app;
                    for (entry, bytes) in entries {
                        next += 1;
                        let n = next;
                        h.led.read.clone_from(&entry);
                        h.led.out.push_back((n, entry, false));
                        let Some((event, at_ms)) = codec::decode(&bytes, app.config.max_channel_name_length) else {
                            tracing::warn!(app = %app.config.id, "webhooks: damaged entry skipped");
                            settle(&mut h.led, n, true);
                            continue;
                        };
                        let (tx, g, id) = (settled_tx.clone(), h.generation, Arc::clone(id));
                        let receipt = Receipt::new(move |ok| {
                            let _ = tx.send((Arc::clone(&id), g, n, ok));
                        });
                        self.apps.consumer.offer(app, event, at_ms, &receipt);
                        receipt.complete();
                    }
                }
            }
        }
        // Stopping (the delivery stopped first, settling what it sent): move each cursor past
        // what was settled, then let the next leader start at once instead of waiting for the
        // lease to run out.
        while let Ok((id, g, n, ok)) = settled_rx.try_recv() {
            if let Some(h) = led.get_mut(&id)
                && h.generation == g
            {
                settle(&mut h.led, n, ok);
            }
        }
        let Ok(mut conn) = self.connector.connect().await else { return };
        for h in led.into_values() {
            if let Some(id) = h.led.commit {
                let _ = commit(&commit_script, &mut conn, &h.keys, &self.node, &id).await;
            }
            let _ = release(&release_script, &mut conn, &h.keys, &self.node).await;
        }
    }
}

/// Gives the app's lease back if `node` holds it, so another node takes it at once.
async fn release<C: redis::aio::ConnectionLike>(
    script: &redis::Script,
    conn: &mut C,
    keys: &Keys,
    node: &str,
) -> redis::RedisResult<i64> {
    script.key(&*keys.lease).arg(node).invoke_async(conn).await
}

/// Moves the app's cursor to entry `id` (and trims what is behind it), if `node` still holds
/// the lease.
async fn commit<C: redis::aio::ConnectionLike>(
    script: &redis::Script,
    conn: &mut C,
    keys: &Keys,
    node: &str,
    id: &str,
) -> redis::RedisResult<i64> {
    script.key(&*keys.lease).key(&*keys.cursor).key(&*keys.stream).arg(node).arg(id).invoke_async(conn).await
}

/// Marks entry `n` settled (or abandoned) and notes how far the cursor may move.
fn settle(l: &mut Led, n: u64, ok: bool) {
    if !ok {
        // Abandoned: the cursor stays before it, for the next leader.
        return;
    }
    if let Some(e) = l.out.iter_mut().find(|e| e.0 == n) {
        e.2 = true;
    }
    while l.out.front().is_some_and(|e| e.2) {
        if let Some((_, id, _)) = l.out.pop_front() {
            l.commit = Some(id);
        }
    }
}

/// One stream's entries in an `XREAD` reply: its key, and each entry's id and field `e`.
type StreamEntries = (String, Vec<(String, Vec<u8>)>);

/// The entries of an `XREAD` reply.
fn entries_of(reply: &Value) -> Vec<StreamEntries> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let streams: Vec<(&Value, &Value)> = match reply {
        Value::Array(items) => items
            .iter()
            .filter_map(|s| match s {
                Value::Array(kv) if kv.len() == 2 => Some((&kv[0], &kv[1])),
                _ => None,
            })
            .collect(),
        Value::Map(kv) => kv.iter().map(|(k, v)| (k, v)).collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for (key, entries) in streams {
        let Some(key) = text(key) else { continue };
        let Value::Array(entries) = entries else { continue };
        let mut list = Vec::new();
        for entry in entries {
            let Value::Array(parts) = entry else { continue };
            let (Some(id), Some(Value::Array(fields))) = (parts.first().and_then(text), parts.get(1)) else { continue };
            let field = fields.chunks(2).find_map(|kv| match kv {
                [k, Value::BulkString(v)] if text(k).as_deref() == Some("e") => Some(v.clone()),
                _ => None,
            });
            list.push((id, field.unwrap_or_default()));
        }
        out.push((key, list));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_moves_past_entries_settled_in_order_only() {
        let mut l = Led { read: "0-0".into(), out: VecDeque::new(), commit: None };
        for (n, id) in [(1, "1-0"), (2, "2-0"), (3, "3-0")] {
            l.out.push_back((n, id.into(), false));
        }
        settle(&mut l, 2, true);
        assert_eq!(l.commit, None, "entry 1 is still out");
        settle(&mut l, 1, true);
        assert_eq!(l.commit.as_deref(), Some("2-0"));
        settle(&mut l, 3, false);
        assert_eq!(l.out.len(), 1, "an abandoned entry holds the cursor");
    }

    #[test]
    fn xread_replies_read_in_both_protocols() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = Value::Array(vec![bulk("5-1"), Value::Array(vec![bulk("e"), bulk("{}")])]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("k"), Value::Array(vec![entry.clone()])])]);
        let resp3 = Value::Map(vec![(bulk("k"), Value::Array(vec![entry]))]);
        for reply in [resp2, resp3] {
            assert_eq!(entries_of(&reply), vec![("k".to_owned(), vec![("5-1".to_owned(), b"{}".to_vec())])]);
        }
        assert!(entries_of(&Value::Nil).is_empty());
    }
}
