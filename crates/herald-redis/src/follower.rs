//! The follower task: applies the cluster's changes that other nodes (and this one) announce on
//! the apps' control channels to the local hub, and rebuilds the hub's view of the cluster
//! (presence members, live cached events) from Redis at start and after each reconnect, since
//! announcements made meanwhile were missed.
//!
//! On one Redis the control channels are classic pub/sub on a dedicated connection. On a Redis
//! Cluster they are sharded pub/sub (`SSUBSCRIBE`; each channel carries the app's hash tag, so a
//! message goes to one shard instead of over the cluster bus to every node) on a RESP3 cluster
//! connection whose client resubscribes by itself after a reconnect or a failover; the
//! disconnection it reports makes the follower rebuild once the cluster answers again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use herald_core::{App, Publication};
use herald_protocol::cluster::Envelope;
use herald_protocol::pusher::channel_name::{Access, ChannelName};
use redis::aio::PubSub;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Client, PushInfo, PushKind, RedisError, RedisResult, Value};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::cluster::{BACKOFF_MIN, Context, back_off, command};
use crate::commands::{Commands, Connector};
use crate::control::Control;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(6);
const PING_EVERY: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Control messages (and disconnections) waiting for the follower on a cluster. A full queue
/// drops them: the follower then rebuilds from Redis.
const PUSHES: usize = 16_384;

/// The control channels' subscription, opened before the node takes its first client.
pub(crate) enum Listening {
    /// One Redis: the subscription when Redis answered at start.
    Single(Option<PubSub>),
    /// A cluster: its client (which hands its pushes to `pushes`) and the subscribed connection
    /// when the cluster answered at start.
    Cluster {
        client: Box<ClusterClient>,
        conn: Option<ClusterConnection>,
        pushes: mpsc::Receiver<PushInfo>,
        overflow: Arc<AtomicBool>,
    },
}

/// Subscribes to the control channels `names` through `connector`; an unreachable Redis is a
/// subscription still to open (the follower keeps trying).
///
/// # Errors
/// When the cluster client refuses the seed URLs.
pub(crate) async fn listen(connector: &Connector, names: &[String]) -> RedisResult<Listening> {
    match connector {
        Connector::Single(client) => Ok(Listening::Single(subscribe(client, names).await.ok())),
        Connector::Cluster(_, urls) => {
            let (tx, pushes) = mpsc::channel(PUSHES);
            let overflow = Arc::new(AtomicBool::new(false));
            let full = Arc::clone(&overflow);
            let client = ClusterClientBuilder::new(urls.iter().map(String::as_str))
                .use_protocol(redis::ProtocolVersion::RESP3)
                .connection_timeout(crate::connect::CONNECT_TIMEOUT)
                .response_timeout(crate::connect::RESPONSE_TIMEOUT)
                .push_sender(move |push: PushInfo| {
                    if tx.try_send(push).is_err() {
                        full.store(true, Ordering::Release);
                    }
                    Ok::<(), redis::aio::SendError>(())
                })
                .build()?;
            let conn = subscribe_cluster(&client, names).await.ok();
            Ok(Listening::Cluster { client: Box::new(client), conn, pushes, overflow })
        }
    }
}

/// Opens the cluster connection and subscribes to the sharded control channels `names`.
async fn subscribe_cluster(client: &ClusterClient, names: &[String]) -> RedisResult<ClusterConnection> {
    let subscribed = timeout(CONNECT_TIMEOUT, async {
        let mut conn = client.get_async_connection().await?;
        for name in names {
            conn.ssubscribe(name).await?;
        }
        RedisResult::Ok(conn)
    })
    .await;
    subscribed.unwrap_or_else(|_| Err(RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))))
}

/// Subscribes to the control channels `names` (bounded by a timeout).
pub(crate) async fn subscribe(client: &Client, names: &[String]) -> RedisResult<PubSub> {
    let subscribed = timeout(CONNECT_TIMEOUT, async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(names).await?;
        RedisResult::Ok(pubsub)
    })
    .await;
    subscribed.unwrap_or_else(|_| Err(RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))))
}

/// Runs until `stop`; `subscribed` is the subscription opened at start, before the node took
/// its first client (a termination or announcement sent right after cannot slip past it).
pub(crate) async fn run(cx: Context, listening: Listening, stop: CancellationToken) {
    let apps: HashMap<String, Arc<App>> =
        cx.hub.apps().iter().map(|a| (cx.keys().control(&a.config.id), Arc::clone(a))).collect();
    match listening {
        Listening::Single(subscribed) => run_single(cx, apps, subscribed, stop).await,
        Listening::Cluster { client, conn, pushes, overflow } => {
            let cluster = ClusterFollower { cx, apps, client: *client, pushes, overflow };
            cluster.run(conn, stop).await;
        }
    }
}

async fn run_single(
    cx: Context,
    apps: HashMap<String, Arc<App>>,
    mut subscribed: Option<PubSub>,
    stop: CancellationToken,
) {
    let Connector::Single(client) = &cx.connector else { return };
    let client = client.clone();
    let names: Vec<String> = apps.keys().cloned().collect();
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    loop {
        let pubsub = match subscribed.take() {
            Some(p) => p,
            None => match subscribe(&client, &names).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(error = %e, "scale-out: redis control channel unreachable");
                    if back_off(&mut backoff, &stop).await {
                        continue;
                    }
                    return;
                }
            },
        };
        // Subscribed first: an announcement made during the rebuild is applied after it.
        if let Err(e) = rebuild(&cx).await {
            tracing::warn!(error = %e, "scale-out: could not load the cluster's members; retrying");
            if back_off(&mut backoff, &stop).await {
                continue;
            }
            return;
        }
        if !first {
            tracing::info!("scale-out: redis control channel is back");
        }
        first = false;
        backoff = BACKOFF_MIN;
        if pump(&cx, &apps, pubsub, &stop).await {
            return;
        }
        tracing::warn!("scale-out: redis control channel lost; reconnecting");
    }
}

/// Applies messages until the connection ends (false) or `stop` fires (true).
async fn pump(cx: &Context, apps: &HashMap<String, Arc<App>>, pubsub: PubSub, stop: &CancellationToken) -> bool {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => match msg {
                Some(m) => on_message(cx, apps, m.get_channel_name(), m.get_payload_bytes()),
                None => return false,
            },
            _ = ping.tick() => {
                if !matches!(timeout(RESPONSE_TIMEOUT, sink.ping::<redis::Value>()).await, Ok(Ok(_))) {
                    return false;
                }
            }
            () = stop.cancelled() => return true,
        }
    }
}

fn on_message(cx: &Context, apps: &HashMap<String, Arc<App>>, channel: &str, payload: &[u8]) {
    let Some(app) = apps.get(channel) else { return };
    let hub = &cx.hub;
    match Control::decode(payload, app.config.max_channel_name_length) {
        Ok(Control::MemberAdded { channel, user, info }) => hub.cluster_member_added(app, &channel, &user, info),
        Ok(Control::MemberRemoved { channel, user }) => hub.cluster_member_removed(app, &channel, &user),
        Ok(Control::Count { channel, count }) => hub.cluster_subscription_count(app, &channel, count),
        Ok(Control::Terminate { user }) => {
            hub.terminate_user(app, &user);
        }
        Err(error) => tracing::warn!(%error, app = %app.config.id, "scale-out: control message ignored"),
    }
}

/// The follower on a Redis Cluster.
struct ClusterFollower {
    cx: Context,
    apps: HashMap<String, Arc<App>>,
    client: ClusterClient,
    pushes: mpsc::Receiver<PushInfo>,
    overflow: Arc<AtomicBool>,
}

impl ClusterFollower {
    async fn run(mut self, first: Option<ClusterConnection>, stop: CancellationToken) {
        let names: Vec<String> = self.apps.keys().cloned().collect();
        let mut backoff = BACKOFF_MIN;
        let mut conn = first;
        // What was announced while the subscription was away is only in Redis.
        let mut stale = true;
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let c = match &mut conn {
                Some(c) => c,
                None => match subscribe_cluster(&self.client, &names).await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        tracing::debug!(error = %e, "scale-out: redis cluster control channels unreachable");
                        if back_off(&mut backoff, &stop).await {
                            continue;
                        }
                        return;
                    }
                },
            };
            if std::mem::take(&mut stale) || self.overflow.swap(false, Ordering::AcqRel) {
                // The ping reaches every master, so the client has reconnected (and
                // resubscribed) wherever it had lost a connection before the members load.
                let ready = redis::cmd("PING").query_async::<()>(c).await;
                if let Err(e) = ready.and(rebuild(&self.cx).await) {
                    tracing::warn!(error = %e, "scale-out: could not load the cluster's members; retrying");
                    stale = true;
                    if back_off(&mut backoff, &stop).await {
                        continue;
                    }
                    return;
                }
                backoff = BACKOFF_MIN;
            }
            tokio::select! {
                push = self.pushes.recv() => match push {
                    Some(push) => stale = self.on_push(push),
                    None => return,
                },
                _ = ping.tick() => {
                    if let Err(e) = redis::cmd("PING").query_async::<()>(c).await {
                        tracing::debug!(error = %e, "scale-out: redis cluster control connection failing");
                        stale = true;
                    }
                }
                () = stop.cancelled() => return,
            }
        }
    }

    /// Applies one push; true when announcements may have been missed.
    fn on_push(&self, push: PushInfo) -> bool {
        match push.kind {
            PushKind::Disconnection => {
                tracing::warn!("scale-out: redis cluster control connection lost a master; reloading once back");
                true
            }
            PushKind::SMessage => {
                let mut data = push.data.into_iter();
                if let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) = (data.next(), data.next())
                    && let Ok(channel) = std::str::from_utf8(&channel)
                {
                    on_message(&self.cx, &self.apps, channel, &payload);
                }
                false
            }
            _ => false,
        }
    }
}

/// Loads every presence channel's members and every live cached event of every app.
async fn rebuild(cx: &Context) -> RedisResult<()> {
    let mut c = command(&cx.connector).await?;
    let keys = cx.keys();
    let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(keys.nodes()).query_async(&mut c).await?;
    for app in cx.hub.apps().iter() {
        let id = &app.config.id;
        let sets: Vec<String> = nodes.iter().map(|n| keys.node_channels(id, n)).collect();
        // The sets share the app's hash tag: one slot on a cluster.
        let channels: Vec<String> =
            if sets.is_empty() { Vec::new() } else { redis::cmd("SUNION").arg(&sets).query_async(&mut c).await? };
        for name in channels {
            let Ok(channel) = ChannelName::parse(&name, usize::MAX) else { continue };
            if channel.kind().access == Access::Presence {
                let members = members(cx, &mut c, id, &channel).await?;
                cx.hub.cluster_members_reset(app, &channel, members);
            }
        }
        load_cache(cx, &mut c, app).await?;
    }
    Ok(())
}

/// A presence channel's members across the cluster, with their `user_info` where known.
pub(crate) async fn members(
    cx: &Context,
    c: &mut Commands,
    app: &str,
    channel: &ChannelName,
) -> RedisResult<Vec<(Box<str>, Option<Box<RawValue>>)>> {
    let users: Vec<String> = redis::cmd("HKEYS").arg(cx.keys().users(app, channel.as_str())).query_async(c).await?;
    let info: HashMap<String, String> =
        redis::cmd("HGETALL").arg(cx.keys().info(app, channel.as_str())).query_async(c).await?;
    Ok(users
        .into_iter()
        .map(|u| {
            let i = info.get(&u).and_then(|j| RawValue::from_string(j.clone()).ok());
            (u.into_boxed_str(), i)
        })
        .collect())
}

/// Puts each live cached event of `app` in the hub's cache, with its remaining TTL.
async fn load_cache(cx: &Context, c: &mut Commands, app: &App) -> RedisResult<()> {
    let pattern = cx.keys().cache_pattern(&app.config.id);
    for (master, _) in c.info_server().await? {
        let mut cursor: u64 = 0;
        loop {
            let (next, found) = c.scan(&master, cursor, &pattern).await?;
            for key in found {
                let (bytes, ttl): (Option<Vec<u8>>, i64) =
                    redis::pipe().cmd("GET").arg(&key).cmd("PTTL").arg(&key).query_async(c).await?;
                let (Some(bytes), Ok(ms)) = (bytes, u64::try_from(ttl)) else { continue };
                match Envelope::decode(&bytes) {
                    Ok(envelope) => {
                        let publication: Publication = crate::publication::decode(envelope);
                        cx.hub.cache_put(app, Arc::new(publication), Duration::from_millis(ms));
                    }
                    Err(error) => tracing::warn!(%error, key, "scale-out: cached event ignored"),
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}
