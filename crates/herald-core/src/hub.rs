//! The hub: every subscription, publication, presence change and user event goes through here.
//!
//! The hub owns the live state of every app (`AppState`, in `hub/app_state.rs`): its channels
//! with their presence members, signed-in users, cached events, WAMP pattern subscriptions and
//! dealer. Callers name an app by its [`App`], which carries a handle on that state; the hub
//! also holds the registry of apps, which can change while it runs (`hub/apps.rs`).
//!
//! All operations are synchronous and never await: they take a shard lock, push encoded frames
//! into outboxes with `try`-semantics and return. Frames that must reach one connection in a
//! given order relative to publications (the subscription acknowledgement, the cached event)
//! are pushed while the channel's lock is held, so no publication can overtake them.

pub(crate) mod app_state;
mod apps;
pub mod cache;
pub(crate) mod channels;
mod cluster;
pub mod dealer;
mod history;
pub(crate) mod pattern;
pub mod presence;
mod queries;
pub mod retained;
pub(crate) mod users;
mod wamp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::pusher::channel_name::{Access, ChannelName};
use herald_protocol::pusher::server_msg;
use herald_protocol::pusher::socket_auth::PresenceMember;
use herald_protocol::ws;
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::app::{App, AppRegistry};
use crate::backend::Backend;
use crate::conn::{Conn, ConnId, ConnIds};
use crate::events::{Event, EventKind, EventSink, NoEvents};
use crate::history::{HistoryBudget, JoinedHistory};
use crate::outbox::{CloseRequest, OutboxLimits};
use crate::publication::{Position, Publication};
use crate::stats::{HubStats, Protocol};
use crate::wire::Wire;
use app_state::AppState;
pub use apps::AppChange;
use channels::{Channel, Subscriber};
pub use cluster::{LocalMember, LocalSnapshot};
pub use history::HistoryTotals;
use presence::Presence;
pub use queries::ChannelSummary;

/// Why a subscription was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The connection is already subscribed to this channel.
    #[error("Existing subscription to channel {0}")]
    AlreadySubscribed(ChannelName),
    /// The presence channel already has `max_presence_members` distinct users.
    #[error("Presence channel {0} is full")]
    PresenceFull(ChannelName),
}

/// Why a sign-in was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// The connection already signed in as a different user.
    #[error("Connection is already signed in as another user")]
    OtherUser,
}

/// What a new subscriber sees at the moment it joins, for its acknowledgement.
#[derive(Debug)]
pub struct Joined<'a> {
    /// The members, on presence channels (including the joining user).
    pub presence: Option<&'a Presence>,
    /// The live cached event, on cache channels.
    pub cached: Option<Arc<Publication>>,
    /// The channel's WAMP v2 subscription id.
    pub subscription: u64,
    /// Where [`Joined::retained`] reads the channel's retained event.
    retained: (&'a Mutex<retained::RetainedStore>, &'a ChannelName),
    /// On channels with history: their position, and the replay a recovering subscriber asked
    /// for. The adapter queues the replay right after its acknowledgement.
    pub history: Option<JoinedHistory>,
}

/// The hub of one herald process.
///
/// Every method that takes an [`App`] works on the live state the app carries: normally one of
/// [`Hub::apps`], or an earlier version of one (a session keeps the version it connected to).
pub struct Hub {
    /// The apps served; a change swaps in a new registry (`hub/apps.rs`).
    apps: parking_lot::RwLock<Arc<AppRegistry>>,
    backend: Arc<dyn Backend>,
    /// Where the app's events (webhooks) go, through the backend.
    events: Arc<dyn EventSink>,
    ids: ConnIds,
    outbox_limits: OutboxLimits,
    /// Every open connection, so a shutdown can reach each one.
    live: Box<[LiveShard]>,
    /// Connection counters for metrics.
    stats: HubStats,
    /// Whether the backend shares channel state across nodes: the cluster then decides when a
    /// member is added or removed and what a channel's subscription count is.
    shared: bool,
    /// The memory budget shared by every channel history.
    history_budget: HistoryBudget,
    /// Set by [`Hub::close_all`]: connections made afterwards are asked to close at once, so
    /// a session upgraded during a drain cannot slip past it.
    closing: std::sync::OnceLock<()>,
}

/// One shard of the live-connection set.
type LiveShard = Mutex<HashMap<ConnId, Arc<Conn>>>;

/// Shards of the live-connection set; connects and disconnects rarely meet on one lock.
const LIVE_SHARDS: usize = 16;

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("apps", &self.apps).finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub serving `apps`, handing publications to `backend` for other nodes.
    pub fn new(apps: AppRegistry, backend: Arc<dyn Backend>, outbox_limits: OutboxLimits) -> Self {
        let live = (0..LIVE_SHARDS).map(|_| Mutex::new(HashMap::new())).collect();
        let (stats, closing) = (HubStats::default(), std::sync::OnceLock::new());
        let events: Arc<dyn EventSink> = Arc::new(NoEvents);
        let shared = backend.shares_state();
        let history_budget = HistoryBudget::default();
        let ids = ConnIds::new();
        let apps = parking_lot::RwLock::new(Arc::new(apps));
        Self { apps, backend, events, ids, outbox_limits, live, stats, shared, history_budget, closing }
    }

    /// This hub, holding at most about `bytes` of channel history across apps.
    #[must_use]
    pub fn with_history_budget(mut self, bytes: usize) -> Self {
        self.history_budget = HistoryBudget::new(bytes);
        self
    }

    /// This hub, reporting the changes of its channels and users to `events` (webhooks).
    #[must_use]
    pub fn with_events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Where events go: the backend emits the cluster's changes here.
    pub fn events(&self) -> &Arc<dyn EventSink> {
        &self.events
    }

    /// Hands a change of this node to the backend, built only when someone takes it: a backend
    /// that shares state across nodes, or a sink that wants the kind. Called under the lock of
    /// the channel concerned, so one channel's changes keep their order.
    fn report(&self, app: &App, kind: EventKind, build: impl FnOnce() -> Event) {
        if self.backend.shares_state() || self.events.wants(app, kind) {
            self.backend.changed(app, build(), &*self.events);
        }
    }

    /// The live state of `app`: carried by the app, no lookup on any hub operation.
    #[expect(clippy::unused_self, reason = "the hub owns the state; the app only carries it")]
    fn state<'a>(&self, app: &'a App) -> &'a AppState {
        app.state()
    }

    /// A handle for a new connection speaking `wire`, registered until [`Hub::disconnect`].
    pub fn connect(&self, wire: Wire) -> Arc<Conn> {
        let (id, socket_id) = self.ids.next();
        let conn = Arc::new(Conn::new(id, socket_id, wire, self.outbox_limits));
        self.live_shard(id).lock().insert(id, Arc::clone(&conn));
        self.stats.opened.add(Protocol::from(wire), 1);
        // Read after the insert: `close_all` sets the flag before sweeping, so either the
        // sweep sees this connection or this read sees the flag.
        if self.closing.get().is_some() {
            conn.outbox.request_close(CloseRequest::Shutdown);
        }
        conn
    }

    /// Forgets a connection whose socket has closed (its subscriptions must be gone already).
    pub fn disconnect(&self, conn: &Conn) {
        if self.live_shard(conn.id).lock().remove(&conn.id).is_some() {
            self.stats.closed.add(Protocol::from(conn.wire), 1);
        }
    }

    /// Asks every open connection to say its protocol's shutdown goodbye; returns how many were
    /// asked.
    ///
    /// Connections made afterwards are asked to close as soon as they connect.
    pub fn close_all(&self) -> usize {
        let _ = self.closing.set(());
        let mut n = 0;
        for shard in &self.live {
            for conn in shard.lock().values() {
                conn.outbox.request_close(CloseRequest::Shutdown);
                n += 1;
            }
        }
        n
    }

    /// The backend publications are handed to (health reports, HTTP API admission).
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// The limits of every connection's outbox (a replay must fit in them).
    pub fn outbox_limits(&self) -> OutboxLimits {
        self.outbox_limits
    }

    /// Connection counters, for metrics.
    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    /// Occupied channels and subscriptions of `app` (walks every shard: for metrics, not hot paths).
    pub fn subscription_totals(&self, app: &App) -> (usize, usize) {
        let mut channels = 0;
        let mut subscriptions = 0;
        for shard in self.state(app).channels.all() {
            let shard = shard.read();
            channels += shard.values().filter(|ch| !ch.subscribers.is_empty()).count();
            subscriptions += shard.values().map(|ch| ch.subscribers.len()).sum::<usize>();
        }
        (channels, subscriptions)
    }

    /// Number of open connections across apps.
    pub fn connection_count(&self) -> usize {
        self.live.iter().map(|s| s.lock().len()).sum()
    }

    fn live_shard(&self, id: ConnId) -> &LiveShard {
        // Ids are sequential, so the low bits spread connections evenly.
        &self.live[(id.0 as usize) % LIVE_SHARDS]
    }

    /// Subscribes `conn` to `channel`, as `member` on presence channels.
    ///
    /// `on_joined` runs under the channel's lock, before any later publication can reach
    /// `conn`: it is where the adapter queues its acknowledgement.
    ///
    /// # Errors
    /// [`SubscribeError`] when already subscribed or the presence channel is full.
    pub fn subscribe(
        &self,
        app: &App,
        conn: &Arc<Conn>,
        channel: &ChannelName,
        member: Option<PresenceMember>,
        on_joined: impl FnOnce(Joined<'_>),
    ) -> Result<(), SubscribeError> {
        self.subscribe_recovering(app, conn, channel, member, None, on_joined)
    }

    /// Subscribes as [`Hub::subscribe`]; on a channel with history, `recover` (an epoch and
    /// the last serial the client saw) asks for the publications it missed. They are in
    /// [`Joined::history`], taken under the same lock as the subscription: every later
    /// publication reaches `conn` after them, none of them twice.
    ///
    /// # Errors
    /// As [`Hub::subscribe`].
    pub fn subscribe_recovering(
        &self,
        app: &App,
        conn: &Arc<Conn>,
        channel: &ChannelName,
        member: Option<PresenceMember>,
        recover: Option<(&str, u64)>,
        on_joined: impl FnOnce(Joined<'_>),
    ) -> Result<(), SubscribeError> {
        self.subscribe_replayed(app, conn, channel, member, recover, None, on_joined)
    }

    /// Subscribes as [`Hub::subscribe_recovering`]; `replayed` says that the publications of
    /// its epoch up to its serial were replayed to `conn` from elsewhere (the backend's shared
    /// history): those this node delivers later are skipped for `conn`, never sent twice.
    ///
    /// # Errors
    /// As [`Hub::subscribe`].
    #[allow(clippy::too_many_arguments)]
    pub fn subscribe_replayed(
        &self,
        app: &App,
        conn: &Arc<Conn>,
        channel: &ChannelName,
        member: Option<PresenceMember>,
        recover: Option<(&str, u64)>,
        replayed: Option<Position>,
        on_joined: impl FnOnce(Joined<'_>),
    ) -> Result<(), SubscribeError> {
        let kind = channel.kind();
        let state = self.state(app);
        let mut shard = state.channels.shard(channel.as_str()).write();
        // A channel may be known here with no subscriber: its members on other nodes.
        let occupies = shard.get(channel.as_str()).is_none_or(|ch| ch.subscribers.is_empty());
        let ch = shard.entry(channel.clone()).or_insert_with(Channel::new);
        if ch.subscribers.contains_key(&conn.id) {
            return Err(SubscribeError::AlreadySubscribed(channel.clone()));
        }
        let user_id = member.as_ref().map(|m| Box::<str>::from(m.user_id.as_str()));
        let mut first_here = false;
        if let Some(m) = member {
            let presence = ch.presence.get_or_insert_with(Presence::default);
            if !presence.contains(&m.user_id) && presence.count() >= app.config.max_presence_members {
                if ch.is_idle() {
                    shard.remove(channel.as_str());
                }
                return Err(SubscribeError::PresenceFull(channel.clone()));
            }
            let change = presence.join(&m.user_id, m.user_info);
            first_here = change.local;
            // With shared state the cluster says when a user is new (`cluster_member_added`).
            if change.listed && !self.shared {
                let info = presence.iter().last().and_then(|(_, info)| info);
                let frame = ws::encode_text(&server_msg::member_added(channel.as_str(), &m.user_id, info));
                ch.push_pusher(&frame);
            }
        }
        ch.subscribers.insert(conn.id, Subscriber { conn: Arc::clone(conn), user_id, replayed });
        let cached = if kind.cache { state.cache.lock().get(channel.as_str(), Instant::now()) } else { None };
        let missed = kind.cache && cached.is_none();
        let retained = (&state.retained, channel);
        let history = self.joined_history(app, state, channel, recover);
        on_joined(Joined {
            presence: ch.presence.as_ref(),
            cached: cached.map(|(p, _)| p),
            subscription: ch.wamp_id,
            retained,
            history,
        });
        let count = ch.subscribers.len();
        if app.config.enable_subscription_count && kind.access != Access::Presence && !self.shared {
            ch.send_subscription_count(channel, count);
        }
        // Still under the channel's lock: the changes of one channel are reported in order.
        if occupies {
            self.report(app, EventKind::ChannelOccupied, || Event::ChannelOccupied { channel: channel.clone() });
        }
        if first_here && let Some(user_id) = ch.subscribers.get(&conn.id).and_then(|s| s.user_id.clone()) {
            self.report(app, EventKind::MemberAdded, || {
                let info = ch.presence.as_ref().and_then(|p| p.info_of(&user_id)).map(|i| i.get().into());
                Event::MemberAdded { channel: channel.clone(), user_id, info }
            });
        }
        self.report(app, EventKind::SubscriptionCount, || Event::SubscriptionCount { channel: channel.clone(), count });
        if missed {
            self.report(app, EventKind::CacheMiss, || Event::CacheMiss { channel: channel.clone() });
        }
        Ok(())
    }

    /// Removes `conn` from `channel`; false when it was not subscribed.
    pub fn unsubscribe(&self, app: &App, conn: &Conn, channel: &ChannelName) -> bool {
        let mut shard = self.state(app).channels.shard(channel.as_str()).write();
        let Some(ch) = shard.get_mut(channel.as_str()) else { return false };
        let Some(sub) = ch.subscribers.remove(&conn.id) else { return false };
        if let (Some(presence), Some(user_id)) = (ch.presence.as_mut(), sub.user_id) {
            let change = presence.leave(&user_id);
            if change.listed && !self.shared {
                let frame = ws::encode_text(&server_msg::member_removed(channel.as_str(), &user_id));
                ch.push_pusher(&frame);
            }
            if change.local {
                self.report(app, EventKind::MemberRemoved, || Event::MemberRemoved {
                    channel: channel.clone(),
                    user_id,
                });
            }
        }
        let count = ch.subscribers.len();
        if count > 0
            && app.config.enable_subscription_count
            && channel.kind().access != Access::Presence
            && !self.shared
        {
            ch.send_subscription_count(channel, count);
        }
        if ch.is_idle() {
            shard.remove(channel.as_str());
        }
        self.report(app, EventKind::SubscriptionCount, || Event::SubscriptionCount { channel: channel.clone(), count });
        if count == 0 {
            self.report(app, EventKind::ChannelVacated, || Event::ChannelVacated { channel: channel.clone() });
        }
        true
    }

    /// Publishes on this node and hands the publication to the backend for the others.
    ///
    /// Returns the number of local connections it was queued for. When this returns, the
    /// publication is in every local subscriber's outbox: nothing accepted is lost here.
    pub fn publish(&self, app: &App, publication: Publication) -> usize {
        let started = Instant::now();
        let publication = Arc::new(publication);
        self.backend.broadcast(app, &publication);
        // A backend that sequences the channel delivers it here too, once positioned: delivering
        // it first would give it this node's serial, not the cluster's.
        let queued =
            if self.backend.sequences(app, &publication.channel) { 0 } else { self.deliver(app, &publication) };
        app.stats.publications.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        app.stats.publish_latency.observe(started.elapsed());
        queued
    }

    /// Publishes a client event (as [`Hub::publish`]) and reports it (`client_event` webhooks).
    pub fn publish_client_event(&self, app: &App, publication: Publication) -> usize {
        self.report(app, EventKind::ClientEvent, || Event::ClientEvent {
            channel: publication.channel.clone(),
            event: publication.event.clone(),
            data: publication.data.json_text().into(),
            socket_id: publication.exclude.clone().unwrap_or_default(),
            user_id: publication.user_id.clone(),
        });
        self.publish(app, publication)
    }

    /// Local fan-out only: what every backend ends in, on every node.
    pub fn deliver(&self, app: &App, publication: &Arc<Publication>) -> usize {
        let channel = &publication.channel;
        let state = self.state(app);
        let shard = state.channels.shard(channel.as_str()).read();
        if channel.kind().cache {
            // Under the channel's read lock, so a concurrent subscriber either gets this event
            // from the cache or from the fan-out below, never both.
            let ttl = Duration::from_secs(app.config.cache_ttl.into());
            state.cache.lock().put(Arc::clone(publication), Instant::now(), ttl);
        }
        let mut queued = 0;
        // Per receiving protocol, added to the app's counters once per publication.
        let mut out = [0u64; 3];
        let mut fan_out = || {
            retained::keep(&state.retained, publication);
            if let Some(ch) = shard.get(channel.as_str()) {
                for sub in ch.subscribers.values() {
                    if sub.already_replayed(publication) {
                        continue;
                    }
                    if publication.admits(&sub.conn)
                        && sub.conn.outbox.push(publication.frame(sub.conn.wire, ch.wamp_id).clone()).is_ok()
                    {
                        queued += 1;
                        out[Protocol::from(sub.conn.wire) as usize] += 1;
                    }
                }
            }
        };
        // On a channel with history the publication gets its serial and is held, and it is
        // pushed while the channel's history lock is held: serials reach subscribers in order.
        if !self.append_to_history(app, state, publication, &mut fan_out) {
            fan_out();
        }
        drop(shard);
        for (p, n) in Protocol::ALL.into_iter().zip(out) {
            if n > 0 {
                app.stats.messages_out.add(p, n);
            }
        }
        queued + self.deliver_to_patterns(app, state, publication)
    }
}

#[cfg(test)]
mod tests;
