//! The liveness task: this node's lease, and the reaping of nodes whose lease ran out.
//!
//! A node renews `{prefix}:node:<id>` (5 s) every second. A node that dies (`kill -9`, a lost
//! host) stops renewing; within a second of its lease running out one of the others wins
//! `{prefix}:reap:<id>` and takes its share back with the reap script, which deletes what it
//! reaps: the dead node's members leave the cluster exactly once, wherever it happens.
//!
//! The same tick watches Redis's `run_id` (on a Redis Cluster, every master's): a new one is a
//! Redis that restarted (empty, without persistence) or a master replaced by a replica (which
//! may have missed the last writes), and this node registers its share again. So does a node that finds its own
//! lease gone (Redis was out of reach for longer than the lease: it may have been reaped).

use std::time::Duration;

use herald_protocol::pusher::channel_name::ChannelName;
use redis::RedisResult;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Context, command};
use crate::commands::Commands;

/// How long a lease lives without renewal.
pub(crate) const LEASE: Duration = Duration::from_secs(5);
/// Renewal and reaping period.
const TICK: Duration = Duration::from_secs(1);
/// How long a reaper holds a dead node (more than a reap takes; a reaper that dies lets
/// another one finish after it).
const REAP_HOLD: Duration = Duration::from_secs(30);

pub(crate) async fn run(cx: Context, stop: CancellationToken) {
    let mut conn: Option<Commands> = None;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let c = match &mut conn {
            Some(c) => c,
            None => match command(&cx.connector).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::debug!(error = %e, "scale-out: redis unreachable for the node lease");
                    continue;
                }
            },
        };
        match beat(&cx, c, first).await {
            Ok(()) => first = false,
            Err(e) => {
                tracing::debug!(error = %e, "scale-out: lease or reaping failed; reconnecting");
                conn = None;
            }
        }
    }
}

/// Renews the lease, watches `run_id`, reaps dead nodes.
async fn beat(cx: &Context, c: &mut Commands, first: bool) -> RedisResult<()> {
    let keys = cx.keys();
    let me = cx.node();
    let ms = LEASE.as_millis() as u64;
    let renewed: Option<String> =
        redis::cmd("SET").arg(keys.lease(me)).arg(1).arg("PX").arg(ms).arg("XX").query_async(c).await?;
    if renewed.is_none() {
        redis::cmd("SET").arg(keys.lease(me)).arg(1).arg("PX").arg(ms).query_async::<()>(c).await?;
        redis::cmd("SADD").arg(keys.nodes()).arg(me).query_async::<()>(c).await?;
        if !first {
            tracing::warn!("scale-out: this node's lease had run out; registering its channels again");
            cx.shared.resync.notify_one();
        }
    }
    let run_id = run_ids(c.info_server().await?);
    let restarted = {
        let mut known = cx.shared.run_id.lock();
        let restarted = known.is_some() && *known != run_id;
        *known = run_id;
        restarted
    };
    if restarted {
        tracing::warn!("scale-out: redis restarted; registering this node's channels again");
        cx.shared.resync.notify_one();
    }
    let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(keys.nodes()).query_async(c).await?;
    for node in nodes.iter().filter(|n| n.as_str() != me) {
        let alive: bool = redis::cmd("EXISTS").arg(keys.lease(node)).query_async(c).await?;
        if alive {
            continue;
        }
        let won: Option<String> = redis::cmd("SET")
            .arg(keys.reap(node))
            .arg(me)
            .arg("NX")
            .arg("PX")
            .arg(REAP_HOLD.as_millis() as u64)
            .query_async(c)
            .await?;
        if won.is_some() {
            reap(cx, c, node).await?;
        }
    }
    Ok(())
}

/// The `run_id` of every master, in address order: on a cluster, any master that restarts
/// (or a replica taking over, which may have missed the last writes) changes it.
fn run_ids(mut masters: Vec<(String, String)>) -> Option<String> {
    masters.sort();
    let ids: Option<Vec<String>> = masters
        .iter()
        .map(|(addr, info)| {
            let id = info.lines().find_map(|l| l.strip_prefix("run_id:"))?;
            Some(format!("{addr}={}", id.trim()))
        })
        .collect();
    ids.map(|ids| ids.join(","))
}

/// Takes the dead `node`'s share of every app back, then forgets the node.
pub(crate) async fn reap(cx: &Context, c: &mut Commands, node: &str) -> RedisResult<()> {
    tracing::info!(node, "scale-out: node lease ran out; removing its members and subscriptions");
    let keys = cx.keys();
    for app in cx.hub.apps().iter() {
        let id = &app.config.id;
        let channels: Vec<String> = redis::cmd("SMEMBERS").arg(keys.node_channels(id, node)).query_async(c).await?;
        for name in &channels {
            if let Ok(channel) = ChannelName::parse(name, usize::MAX) {
                cx.reap_channel(c, app, &channel, node).await?;
            }
        }
        cx.reap_online(c, app, node).await?;
        redis::cmd("DEL").arg(keys.node_channels(id, node)).query_async::<()>(c).await?;
    }
    redis::cmd("SREM").arg(keys.nodes()).arg(node).query_async(c).await
}
