//! The tracker task: applies this node's changes to the shared state in the order the hub made
//! them, and emits the cluster's changes (see `cluster`). A change that fails on a live
//! connection is retried after reconnecting, so the order holds through an outage; while Redis
//! is away the queue fills, and what it cannot hold is made good by re-registering the node's
//! share from the hub (`reconcile`).

use std::collections::HashSet;
use std::time::Duration;

use herald_core::{App, Event};
use herald_protocol::pusher::channel_name::{Access, ChannelName};
use redis::RedisResult;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::cluster::{BACKOFF_MIN, Context, Tracked, back_off, command};
use crate::commands::Commands;
use crate::script::{Lua, MEMBER, SUBS};

/// Attempts at one change on a live connection before it is given up (a script error that
/// retrying cannot fix); the next reconcile repairs what it would have written.
const ATTEMPTS: u32 = 3;
/// How long a stopping node keeps handing its last changes to Redis.
const FLUSH_GRACE: Duration = Duration::from_secs(2);
/// Most changes applied in one pipeline: under churn the tracker keeps up by sending what queued
/// up meanwhile in one round trip instead of one round trip each.
const BATCH: usize = 256;

/// What the tracker does next.
enum Work {
    Batch(Vec<Tracked>),
    Reconcile,
}

pub(crate) async fn run(cx: Context, mut rx: mpsc::Receiver<Tracked>, stop: CancellationToken) {
    let mut conn: Option<Commands> = None;
    let mut backoff = BACKOFF_MIN;
    // At start: registers what the hub holds already (nothing, normally) and tidies a share an
    // earlier process with this id left (none: ids are random).
    let mut work = Some(Work::Reconcile);
    let mut attempts = 0;
    loop {
        let current = match work.take() {
            Some(w) => w,
            None => tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = cx.shared.resync.notified() => Work::Reconcile,
                item = rx.recv() => match item {
                    Some(item) => {
                        let mut batch = vec![item];
                        while batch.len() < BATCH {
                            let Ok(item) = rx.try_recv() else { break };
                            batch.push(item);
                        }
                        Work::Batch(batch)
                    }
                    None => break,
                },
            },
        };
        let c = match &mut conn {
            Some(c) => c,
            None => match command(&cx.connector).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    tracing::debug!(error = %e, "scale-out: redis unreachable for channel state");
                    work = Some(current);
                    if back_off(&mut backoff, &stop).await {
                        continue;
                    }
                    break;
                }
            },
        };
        let result = match &current {
            Work::Batch(items) => apply_batch(&cx, c, items).await,
            Work::Reconcile => reconcile(&cx, c).await,
        };
        match result {
            Ok(()) => {
                backoff = BACKOFF_MIN;
                attempts = 0;
            }
            Err(e) => {
                attempts += 1;
                conn = None;
                if attempts < ATTEMPTS {
                    tracing::debug!(error = %e, "scale-out: channel state change failed; retrying");
                    work = Some(current);
                } else {
                    tracing::warn!(error = %e, "scale-out: channel state change given up; re-registering");
                    attempts = 0;
                    work = Some(Work::Reconcile);
                }
                if !back_off(&mut backoff, &stop).await {
                    break;
                }
            }
        }
    }
    flush(&cx, conn, &mut rx).await;
}

/// At shutdown: the drained sessions' last changes, bounded; then the lease goes, so another
/// node reaps whatever did not make it at once.
async fn flush(cx: &Context, conn: Option<Commands>, rx: &mut mpsc::Receiver<Tracked>) {
    let deadline = Instant::now() + FLUSH_GRACE;
    let work = async {
        let mut c = match conn {
            Some(c) => c,
            None => command(&cx.connector).await?,
        };
        while let Ok(item) = rx.try_recv() {
            apply(cx, &mut c, &item).await?;
        }
        redis::cmd("DEL").arg(cx.keys().lease(cx.node())).query_async::<()>(&mut c).await
    };
    match timeout_at(deadline, work).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "scale-out: channel state not flushed; other nodes reap it"),
        Err(_) => tracing::warn!("scale-out: channel state flush timed out; other nodes reap it"),
    }
}

/// What one answer of a batch's pipeline is about.
enum Answer<'a> {
    /// A subscription count: `(total before, total after)`.
    Count(&'a App, &'a ChannelName),
    /// A member script's answer, `Some(user_info)` for a join.
    Member(&'a App, &'a ChannelName, &'a str, Option<&'a str>),
    /// An online script's answer.
    Online(&'a App, &'a str, bool),
    /// No command: an event of this node only, emitted in its place among the others.
    Pass(&'a App, &'a Event),
}

/// Applies `items` in order: on one Redis in one pipeline (one round trip for the scripts, one
/// for what the nodes are told), emitting the cluster's events in the items' order; on a Redis
/// Cluster, whose pipelines must stay in one slot, one change after the other. Every script is
/// idempotent, so a batch that failed is applied again whole.
async fn apply_batch(cx: &Context, c: &mut Commands, items: &[Tracked]) -> RedisResult<()> {
    if c.is_cluster() || items.len() == 1 {
        for item in items {
            apply(cx, c, item).await?;
        }
        return Ok(());
    }
    let node = cx.node();
    let (subs, member) = (SUBS.sha(c).await?, MEMBER.sha(c).await?);
    let mut pipe = redis::pipe();
    let mut answers = Vec::with_capacity(items.len());
    // One snapshot for the batch: the answers borrow its apps.
    let apps = cx.hub.apps();
    for item in items {
        let (app, event) = match item {
            Tracked::Cache { app, publication, ttl } => {
                let bytes = crate::publication::encode(0, 0, publication);
                let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
                pipe.cmd("SET")
                    .arg(cx.keys().cache(app, publication.channel.as_str()))
                    .arg(bytes)
                    .arg("PX")
                    .arg(ms)
                    .ignore();
                continue;
            }
            Tracked::Change { app, event } => match apps.by_id(app) {
                Some(app) => (&**app, event),
                None => continue,
            },
        };
        let id = &app.config.id;
        match event {
            Event::ChannelOccupied { channel }
            | Event::ChannelVacated { channel }
            | Event::SubscriptionCount { channel, .. } => {
                let n = match event {
                    Event::ChannelOccupied { .. } => 1,
                    Event::SubscriptionCount { count, .. } => *count,
                    _ => 0,
                };
                let key = cx.keys().subs(id, channel.as_str());
                pipe.add_command(Lua::cmd(&subs, &[&key], &[node, &n.to_string()]));
                pipe.cmd(if n > 0 { "SADD" } else { "SREM" })
                    .arg(cx.keys().node_channels(id, node))
                    .arg(channel.as_str())
                    .ignore();
                answers.push(Answer::Count(app, channel));
            }
            Event::MemberAdded { channel, user_id, .. } | Event::MemberRemoved { channel, user_id } => {
                let join = match event {
                    Event::MemberAdded { info, .. } => Some(info.as_deref().unwrap_or("")),
                    _ => None,
                };
                let ch = channel.as_str();
                let keys = [cx.keys().users(id, ch), cx.keys().node_members(id, ch, node), cx.keys().info(id, ch)];
                let op = if join.is_some() { "+" } else { "-" };
                pipe.add_command(Lua::cmd(
                    &member,
                    &[&keys[0], &keys[1], &keys[2]],
                    &[user_id, op, join.unwrap_or("")],
                ));
                answers.push(Answer::Member(app, channel, user_id, join));
            }
            Event::UserOnline { user_id } | Event::UserOffline { user_id } => {
                let on = matches!(event, Event::UserOnline { .. });
                let keys = [cx.keys().online(id), cx.keys().node_online(id, node)];
                pipe.add_command(Lua::cmd(&member, &[&keys[0], &keys[1]], &[user_id, if on { "+" } else { "-" }, ""]));
                answers.push(Answer::Online(app, user_id, on));
            }
            Event::ClientEvent { .. } | Event::CacheMiss { .. } => answers.push(Answer::Pass(app, event)),
        }
    }
    let values: Vec<redis::Value> = match pipe.query_async(c).await {
        Ok(values) => values,
        Err(e) => {
            if e.code() == Some("NOSCRIPT") {
                // A restarted or flushed Redis: loaded again on the retry.
                SUBS.forget();
                MEMBER.forget();
            }
            return Err(e);
        }
    };
    let mut values = values.into_iter();
    let mut next = || values.next().unwrap_or(redis::Value::Nil);
    let mut tell = redis::pipe();
    let mut told = false;
    for answer in answers {
        let msg = match answer {
            Answer::Count(app, channel) => {
                let (before, after): (usize, usize) = redis::FromRedisValue::from_redis_value(next())?;
                cx.count_changed(app, channel, before, after).map(|m| (app, m))
            }
            Answer::Member(app, channel, user, join) => {
                let changed: i64 = redis::FromRedisValue::from_redis_value(next())?;
                cx.member_changed(app, channel, user, join, changed).map(|m| (app, m))
            }
            Answer::Online(app, user, on) => {
                let changed: i64 = redis::FromRedisValue::from_redis_value(next())?;
                cx.online_changed(app, user, on, changed);
                None
            }
            Answer::Pass(app, event) => {
                cx.emit(app, event.clone());
                None
            }
        };
        if let Some((app, msg)) = msg {
            tell.cmd(c.publish()).arg(cx.keys().control(&app.config.id)).arg(msg.encode()).ignore();
            told = true;
        }
    }
    if told {
        tell.query_async::<()>(c).await?;
    }
    Ok(())
}

async fn apply(cx: &Context, c: &mut Commands, item: &Tracked) -> RedisResult<()> {
    let node = cx.node();
    match item {
        Tracked::Cache { app, publication, ttl } => {
            let bytes = crate::publication::encode(0, 0, publication);
            let key = cx.keys().cache(app, publication.channel.as_str());
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            redis::cmd("SET").arg(key).arg(bytes).arg("PX").arg(ms).query_async(c).await
        }
        Tracked::Change { app, event } => {
            let Some(app) = cx.hub.app_by_id(app) else { return Ok(()) };
            let app = &*app;
            match event {
                Event::ChannelOccupied { channel } => cx.subs(c, app, channel, node, 1).await,
                Event::ChannelVacated { channel } => cx.subs(c, app, channel, node, 0).await,
                Event::SubscriptionCount { channel, count } => cx.subs(c, app, channel, node, *count).await,
                Event::MemberAdded { channel, user_id, info } => {
                    cx.member(c, app, channel, node, user_id, Some(info.as_deref().unwrap_or(""))).await
                }
                Event::MemberRemoved { channel, user_id } => cx.member(c, app, channel, node, user_id, None).await,
                Event::UserOnline { user_id } => cx.online(c, app, node, user_id, true).await,
                Event::UserOffline { user_id } => cx.online(c, app, node, user_id, false).await,
                // Seen by one node only: already the cluster's.
                Event::ClientEvent { .. } | Event::CacheMiss { .. } => {
                    cx.emit(app, event.clone());
                    Ok(())
                }
            }
        }
    }
}

/// Makes this node's share in Redis what the hub holds: each channel's subscriptions and
/// members here, and the users signed in here. Every step is idempotent, and the changes still
/// queued behind it apply on top.
pub(crate) async fn reconcile(cx: &Context, c: &mut Commands) -> RedisResult<()> {
    let node = cx.node().to_owned();
    for app in cx.hub.apps().iter() {
        reconcile_app(cx, c, app, &node).await?;
    }
    Ok(())
}

async fn reconcile_app(cx: &Context, c: &mut Commands, app: &App, node: &str) -> RedisResult<()> {
    let id = &app.config.id;
    let snapshot = cx.hub.local_snapshot(app);
    let listed: Vec<String> = redis::cmd("SMEMBERS").arg(cx.keys().node_channels(id, node)).query_async(c).await?;
    let here: HashSet<&str> = snapshot.channels.iter().map(|(ch, _, _)| ch.as_str()).collect();
    for name in listed.iter().filter(|n| !here.contains(n.as_str())) {
        match ChannelName::parse(name, usize::MAX) {
            Ok(channel) => cx.reap_channel(c, app, &channel, node).await?,
            Err(_) => redis::cmd("SREM").arg(cx.keys().node_channels(id, node)).arg(name).query_async(c).await?,
        }
    }
    for (channel, count, members) in &snapshot.channels {
        cx.subs(c, app, channel, node, *count).await?;
        if channel.kind().access != Access::Presence {
            continue;
        }
        let key = cx.keys().node_members(id, channel.as_str(), node);
        let registered: Vec<String> = redis::cmd("HKEYS").arg(key).query_async(c).await?;
        for user in registered.iter().filter(|u| !members.iter().any(|(m, _)| **m == ***u)) {
            cx.member(c, app, channel, node, user, None).await?;
        }
        for (user, info) in members.iter().filter(|(m, _)| !registered.iter().any(|u| **u == **m)) {
            cx.member(c, app, channel, node, user, Some(info.as_deref().unwrap_or(""))).await?;
        }
    }
    let registered: Vec<String> = redis::cmd("HKEYS").arg(cx.keys().node_online(id, node)).query_async(c).await?;
    for user in registered.iter().filter(|u| !snapshot.users.iter().any(|m| **m == ***u)) {
        cx.online(c, app, node, user, false).await?;
    }
    for user in snapshot.users.iter().filter(|m| !registered.iter().any(|u| **u == ***m)) {
        cx.online(c, app, node, user, true).await?;
    }
    Ok(())
}
