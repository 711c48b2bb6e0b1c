//! Channel and user state shared by the nodes: what turns this node's changes into the
//! cluster's, and the tasks that keep it right when nodes come and go.
//!
//! The hub reports each change of this node (first subscriber here, a user's last socket
//! here...) to [`RedisBackend::changed`](crate::RedisBackend), which queues it for the `tracker`
//! task. The tracker applies the changes in order, each with one atomic Lua script (`script`),
//! to counters shared in Redis (`keys`): the scripts say when a change is one of the cluster
//! (the channel's first subscriber anywhere, a user's last node), and the tracker emits exactly
//! those to the app's event sink and tells every node through the app's control channel
//! (`control`), where the `follower` task applies them to the local hub. The `liveness` task
//! keeps this node's lease and reaps the share of nodes whose lease ran out.
//!
//! Every write a node makes is about its own share (its subscriptions, its members), and
//! repeating one is harmless: after anything that may have lost writes (a full queue, a lease
//! that ran out, a Redis that restarted empty) the tracker re-registers the node's share from
//! the hub's snapshot (`reconcile`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use herald_core::{App, Event, Hub, Publication};
use herald_protocol::pusher::channel_name::{Access, ChannelName};
use parking_lot::Mutex;
use redis::RedisResult;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::commands::{Commands, Connector};
use crate::control::Control;
use crate::follower::Listening;
use crate::keys::Keys;
use crate::queries::ClusterQueries;
use crate::script::{MEMBER, REAP, SUBS};

/// Changes waiting for the tracker. Beyond it the node's share is re-registered from the hub
/// once Redis keeps up again.
const QUEUE: usize = 16_384;
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// One item for the tracker.
#[derive(Debug)]
pub(crate) enum Tracked {
    /// A change of this node, from the hub.
    Change { app: Arc<str>, event: Event },
    /// A cache channel's event broadcast from this node: the one a node started later serves.
    Cache { app: Arc<str>, publication: Arc<Publication>, ttl: Duration },
}

/// What the backend and the tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) keys: Keys,
    /// This node's id, as written in Redis (hex).
    pub(crate) node: String,
    /// Asks the tracker to re-register this node's share.
    pub(crate) resync: Notify,
    /// Changes dropped because the tracker's queue was full.
    pub(crate) dropped: AtomicU64,
    /// Redis's `run_id` when last seen: a new one means a restarted (empty) Redis.
    pub(crate) run_id: Mutex<Option<String>>,
}

/// The backend's end: queues changes for the tracker without waiting.
#[derive(Debug)]
pub(crate) struct Handle {
    tx: mpsc::Sender<Tracked>,
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    pub(crate) fn queue(&self, item: Tracked) {
        if self.tx.try_send(item).is_err() {
            let n = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "redis state queue full: this node's share is registered again later");
            }
            self.shared.resync.notify_one();
        }
    }
}

/// The tasks before they run: built with the backend, spawned once the hub exists.
pub(crate) struct Pending {
    connector: Connector,
    /// The control channels' subscription, opened at start.
    control: Listening,
    rx: mpsc::Receiver<Tracked>,
    shared: Arc<Shared>,
    queries: Arc<ClusterQueries>,
}

/// The running tasks.
#[derive(Debug)]
pub(crate) struct Running {
    tracker: JoinHandle<()>,
    follower: JoinHandle<()>,
    liveness: JoinHandle<()>,
}

/// What each task needs to act on the shared state.
#[derive(Clone)]
pub(crate) struct Context {
    pub(crate) connector: Connector,
    pub(crate) shared: Arc<Shared>,
    pub(crate) hub: Arc<Hub>,
}

/// The queue and the tasks' pending half for node `node`; subscribes to the control channels
/// of `apps` (an unreachable Redis is not an error: the follower keeps trying).
///
/// # Errors
/// When the cluster client refuses the seed URLs.
pub(crate) async fn new(
    connector: Connector,
    prefix: &str,
    node: u64,
    apps: &[String],
) -> RedisResult<(Handle, Pending)> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let keys = Keys::new(prefix);
    let shared = Arc::new(Shared {
        keys: keys.clone(),
        node: format!("{node:016x}"),
        resync: Notify::new(),
        dropped: AtomicU64::new(0),
        run_id: Mutex::new(None),
    });
    let queries = Arc::new(ClusterQueries::new(connector.clone(), keys.clone()));
    let names: Vec<String> = apps.iter().map(|a| keys.control(a)).collect();
    let control = crate::follower::listen(&connector, &names).await?;
    Ok((Handle { tx, shared: Arc::clone(&shared) }, Pending { connector, control, rx, shared, queries }))
}

impl Pending {
    pub(crate) fn queries(&self) -> Arc<ClusterQueries> {
        Arc::clone(&self.queries)
    }

    pub(crate) fn spawn(self, hub: Arc<Hub>, stop: &CancellationToken) -> Running {
        let cx = Context { connector: self.connector, shared: self.shared, hub };
        Running {
            tracker: tokio::spawn(crate::tracker::run(cx.clone(), self.rx, stop.clone())),
            follower: tokio::spawn(crate::follower::run(cx.clone(), self.control, stop.clone())),
            liveness: tokio::spawn(crate::liveness::run(cx, stop.clone())),
        }
    }
}

impl Running {
    /// Waits for the tasks once their stop token fired (the tracker flushes, bounded).
    pub(crate) async fn stopped(self) {
        let _ = self.tracker.await;
        let _ = self.follower.await;
        let _ = self.liveness.await;
    }
}

/// A command connection with short timeouts.
pub(crate) async fn command(connector: &Connector) -> RedisResult<Commands> {
    connector.connect().await
}

/// Sleeps for the current backoff (doubling it) unless `stop` fires first; false on stop.
pub(crate) async fn back_off(backoff: &mut Duration, stop: &CancellationToken) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stop.cancelled() => false,
    }
}

impl Context {
    pub(crate) fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    pub(crate) fn node(&self) -> &str {
        &self.shared.node
    }

    /// Hands one event of the cluster to the app's sink.
    pub(crate) fn emit(&self, app: &App, event: Event) {
        let sink = self.hub.events();
        if sink.wants(app, event.kind()) {
            sink.emit(app, event);
        }
    }

    /// Tells every node (this one included).
    pub(crate) async fn tell(&self, c: &mut Commands, app: &App, msg: &Control) -> RedisResult<()> {
        redis::cmd(c.publish()).arg(self.keys().control(&app.config.id)).arg(msg.encode()).query_async(c).await
    }

    /// `node` has `n` subscriptions to `channel` now.
    pub(crate) async fn subs(
        &self,
        c: &mut Commands,
        app: &App,
        channel: &ChannelName,
        node: &str,
        n: usize,
    ) -> RedisResult<()> {
        let id = &app.config.id;
        let key = self.keys().subs(id, channel.as_str());
        // The node's channel set is kept in the same round trip (it lists and reaps the node).
        let mut set = redis::cmd(if n > 0 { "SADD" } else { "SREM" });
        set.arg(self.keys().node_channels(id, node)).arg(channel.as_str());
        let (before, after): (usize, usize) = SUBS.run_then(c, &[&key], &[node, &n.to_string()], &set).await?;
        self.counted(c, app, channel, before, after).await
    }

    /// The events of a channel whose cluster total went from `before` to `after`.
    async fn counted(
        &self,
        c: &mut Commands,
        app: &App,
        channel: &ChannelName,
        before: usize,
        after: usize,
    ) -> RedisResult<()> {
        if let Some(msg) = self.count_changed(app, channel, before, after) {
            self.tell(c, app, &msg).await?;
        }
        Ok(())
    }

    /// Emits the events of a channel whose cluster total went from `before` to `after`, and
    /// returns what the nodes must be told.
    pub(crate) fn count_changed(
        &self,
        app: &App,
        channel: &ChannelName,
        before: usize,
        after: usize,
    ) -> Option<Control> {
        if before == 0 && after > 0 {
            self.emit(app, Event::ChannelOccupied { channel: channel.clone() });
        }
        let mut tell = None;
        if before != after && channel.kind().access != Access::Presence {
            self.emit(app, Event::SubscriptionCount { channel: channel.clone(), count: after });
            if app.config.enable_subscription_count && after > 0 {
                tell = Some(Control::Count { channel: channel.clone(), count: after });
            }
        }
        if before > 0 && after == 0 {
            self.emit(app, Event::ChannelVacated { channel: channel.clone() });
        }
        tell
    }

    /// Emits what a member script's answer `changed` means (1: the user's first or last node)
    /// and returns what the nodes must be told.
    pub(crate) fn member_changed(
        &self,
        app: &App,
        channel: &ChannelName,
        user: &str,
        join: Option<&str>,
        changed: i64,
    ) -> Option<Control> {
        if changed != 1 {
            return None;
        }
        let (channel, user_id) = (channel.clone(), Box::<str>::from(user));
        Some(if let Some(info) = join {
            let text = (!info.is_empty()).then(|| Box::<str>::from(info));
            self.emit(app, Event::MemberAdded { channel: channel.clone(), user_id: user_id.clone(), info: text });
            let info = serde_json::value::RawValue::from_string(info.to_owned()).ok();
            Control::MemberAdded { channel, user: user_id, info }
        } else {
            self.emit(app, Event::MemberRemoved { channel: channel.clone(), user_id: user_id.clone() });
            Control::MemberRemoved { channel, user: user_id }
        })
    }

    /// Emits what an online script's answer `changed` means.
    pub(crate) fn online_changed(&self, app: &App, user: &str, on: bool, changed: i64) {
        if changed == 1 {
            let user_id = user.into();
            self.emit(app, if on { Event::UserOnline { user_id } } else { Event::UserOffline { user_id } });
        }
    }

    /// A user's first socket on `node` in presence `channel` (`join` is its `user_info` JSON,
    /// `""` for none), or its last one (`join` is `None`).
    pub(crate) async fn member(
        &self,
        c: &mut Commands,
        app: &App,
        channel: &ChannelName,
        node: &str,
        user: &str,
        join: Option<&str>,
    ) -> RedisResult<()> {
        let (id, ch) = (&app.config.id, channel.as_str());
        let keys = [self.keys().users(id, ch), self.keys().node_members(id, ch, node), self.keys().info(id, ch)];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let op = if join.is_some() { "+" } else { "-" };
        let changed: i64 = MEMBER.run(c, &keys, &[user, op, join.unwrap_or("")]).await?;
        match self.member_changed(app, channel, user, join, changed) {
            Some(msg) => self.tell(c, app, &msg).await,
            None => Ok(()),
        }
    }

    /// A signed-in user's first (`on`) or last connection on `node`.
    pub(crate) async fn online(
        &self,
        c: &mut Commands,
        app: &App,
        node: &str,
        user: &str,
        on: bool,
    ) -> RedisResult<()> {
        let id = &app.config.id;
        let keys = [self.keys().online(id), self.keys().node_online(id, node)];
        let changed: i64 = MEMBER.run(c, &[&keys[0], &keys[1]], &[user, if on { "+" } else { "-" }, ""]).await?;
        self.online_changed(app, user, on, changed);
        Ok(())
    }

    /// Takes `node`'s whole share of `channel` back (a dead node, or this one re-registering).
    pub(crate) async fn reap_channel(
        &self,
        c: &mut Commands,
        app: &App,
        channel: &ChannelName,
        node: &str,
    ) -> RedisResult<()> {
        let (id, ch) = (&app.config.id, channel.as_str());
        let k = self.keys();
        let keys = [k.users(id, ch), k.node_members(id, ch, node), k.info(id, ch), k.subs(id, ch)];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let (before, after, removed): (usize, usize, Vec<String>) = REAP.run(c, &keys, &[node]).await?;
        for user in removed {
            self.emit(app, Event::MemberRemoved { channel: channel.clone(), user_id: user.as_str().into() });
            self.tell(c, app, &Control::MemberRemoved { channel: channel.clone(), user: user.into() }).await?;
        }
        redis::cmd("SREM").arg(k.node_channels(id, node)).arg(ch).query_async::<()>(c).await?;
        self.counted(c, app, channel, before, after).await
    }

    /// Takes `node`'s signed-in users back.
    pub(crate) async fn reap_online(&self, c: &mut Commands, app: &App, node: &str) -> RedisResult<()> {
        let id = &app.config.id;
        let keys = [self.keys().online(id), self.keys().node_online(id, node)];
        let (_, _, removed): (usize, usize, Vec<String>) = REAP.run(c, &[&keys[0], &keys[1]], &[node]).await?;
        for user in removed {
            self.emit(app, Event::UserOffline { user_id: user.into() });
        }
        Ok(())
    }
}
