//! The follower task: applies the cluster's changes that other nodes (and this one) announce on
//! the apps' control channels to the local hub, and rebuilds the hub's view of the cluster
//! (presence members, live cached events) from Redis at start and after each reconnect, since
//! announcements made meanwhile were missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use herald_core::{App, Publication};
use herald_protocol::cluster::Envelope;
use herald_protocol::pusher::channel_name::{Access, ChannelName};
use redis::aio::{MultiplexedConnection, PubSub};
use redis::{Client, Msg, RedisError, RedisResult};
use serde_json::value::RawValue;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::cluster::{BACKOFF_MIN, Context, back_off, command};
use crate::control::Control;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(6);
const PING_EVERY: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

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
pub(crate) async fn run(cx: Context, mut subscribed: Option<PubSub>, stop: CancellationToken) {
    let apps: HashMap<String, Arc<App>> =
        cx.hub.apps().iter().map(|a| (cx.keys().control(&a.config.id), Arc::clone(a))).collect();
    let names: Vec<String> = apps.keys().cloned().collect();
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    loop {
        let pubsub = match subscribed.take() {
            Some(p) => p,
            None => match subscribe(&cx.client, &names).await {
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
                Some(m) => on_message(cx, apps, &m),
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

fn on_message(cx: &Context, apps: &HashMap<String, Arc<App>>, msg: &Msg) {
    let Some(app) = apps.get(msg.get_channel_name()) else { return };
    let hub = &cx.hub;
    match Control::decode(msg.get_payload_bytes(), app.config.max_channel_name_length) {
        Ok(Control::MemberAdded { channel, user, info }) => hub.cluster_member_added(app, &channel, &user, info),
        Ok(Control::MemberRemoved { channel, user }) => hub.cluster_member_removed(app, &channel, &user),
        Ok(Control::Count { channel, count }) => hub.cluster_subscription_count(app, &channel, count),
        Ok(Control::Terminate { user }) => {
            hub.terminate_user(app, &user);
        }
        Err(error) => tracing::warn!(%error, app = %app.config.id, "scale-out: control message ignored"),
    }
}

/// Loads every presence channel's members and every live cached event of every app.
async fn rebuild(cx: &Context) -> RedisResult<()> {
    let mut c = command(&cx.client).await?;
    let keys = cx.keys();
    let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(keys.nodes()).query_async(&mut c).await?;
    for app in cx.hub.apps().iter() {
        let id = &app.config.id;
        let sets: Vec<String> = nodes.iter().map(|n| keys.node_channels(id, n)).collect();
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
    c: &mut MultiplexedConnection,
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
async fn load_cache(cx: &Context, c: &mut MultiplexedConnection, app: &App) -> RedisResult<()> {
    let pattern = cx.keys().cache_pattern(&app.config.id);
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(500).query_async(c).await?;
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
            return Ok(());
        }
        cursor = next;
    }
}
