//! WAMP v1 sessions (autobahn 0.8 / Ratchet 0.4 behaviour): one adapter for every v1 listener,
//! with what differs between them in a [`Policy`].
//!
//! The adapter does what Ratchet's `WampServer` does for all of them: CURIE prefixes, the
//! message grammar (anything malformed, and binary frames, close with 1007), subscriptions
//! kept as hub channels, PUBLISH fanned out through the hub with exclude/eligible lists, and the
//! close statuses of its `WsServer`. A policy decides who the session is and what it may do:
//! - [`Anonymous`], a plain `wamp1` listener: WELCOME at once, the app's anonymous role and
//!   authorizer, CALL answered with CALLERROR;
//! - EspoCRM (`profile/espo/session.rs`): WELCOME only after the auth-token check, access checks
//!   per topic category, Ratchet's fixed-period keep-alive;
//! - Oro (`profile/oro/session.rs`): WELCOME written with the 101, then the ticket check, Oro's
//!   routes and per-user topics, no keep-alive.

use std::sync::Arc;

use bytes::Bytes;
use herald_core::app::ConnectionSlot;
use herald_core::authorize::Action;
use herald_core::rate::TokenBucket;
use herald_core::{App, Conn, Hub, Outbox, Publication, PublicationData, WampFilter, Wire};
use herald_protocol::pusher::channel_name::{Access, ChannelName};
use herald_protocol::wamp::uri::MAX_URI_LEN;
use herald_protocol::wamp::v1::{self, CallId, CurieRule, V1ClientMsg, V1Publish};
use herald_protocol::wamp::{Prefixes, parse_v1};
use herald_protocol::ws;

use super::close::{CloseReason, Goodbye};
use super::driver::{Adapter, Data, Flow, Io};
use super::keepalive::Plan;
use crate::dashboard::tap;

/// The error URI of a CALL nobody provides.
pub(crate) const NO_SUCH_PROCEDURE: &str = "http://herald.invalid/error#no_such_procedure";
/// What herald calls itself in WELCOME.
const SERVER_IDENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));
/// Ratchet closes with 1007 on any message it cannot decode or route.
pub(crate) const MALFORMED: u16 = 1007;

/// The close of a message Ratchet cannot decode or route.
pub(crate) fn malformed() -> Flow {
    Flow::Close(CloseReason::Protocol(Some(ws::encode_close(MALFORMED, ""))))
}

/// What differs between WAMP v1 listeners.
pub(crate) trait Policy {
    /// The result of a check the policy started.
    type Done: Send + 'static;

    /// How the peer is kept alive.
    fn keepalive(&self, session: &V1) -> Plan;

    /// Whether the session takes messages now (Oro's waits for its ticket check).
    fn ready(&self) -> bool {
        true
    }

    /// The session starts (WELCOME now, or a check that sends it later).
    fn open(&mut self, session: &mut V1, io: &mut Io<'_, Self::Done>) -> Flow;

    /// SUBSCRIBE to `topic` (CURIE already expanded).
    fn subscribe(&mut self, session: &mut V1, topic: String, io: &mut Io<'_, Self::Done>) -> Flow;

    /// UNSUBSCRIBE from `topic`.
    fn unsubscribe(&mut self, session: &mut V1, topic: &str, io: &mut Io<'_, Self::Done>) -> Flow;

    /// PUBLISH.
    fn publish(&mut self, session: &mut V1, publish: V1Publish, io: &mut Io<'_, Self::Done>) -> Flow;

    /// CALL of `proc_uri`.
    fn call(&mut self, session: &mut V1, call_id: &CallId, proc_uri: &str, io: &mut Io<'_, Self::Done>) -> Flow;

    /// A check the policy started finished.
    fn on_done(&mut self, session: &mut V1, done: Self::Done, io: &mut Io<'_, Self::Done>) -> Flow {
        let _ = (session, done, io);
        Flow::Continue
    }

    /// The session is over: forget what the policy indexed (the hub's part is done after).
    fn leave(&mut self, session: &mut V1) {
        let _ = session;
    }
}

/// What every WAMP v1 session has: its app (through its connection place), its connection, its
/// CURIE prefixes and the topics it is subscribed to.
pub(crate) struct V1 {
    pub(crate) hub: Arc<Hub>,
    pub(crate) conn: Arc<Conn>,
    slot: ConnectionSlot,
    /// Made at the first PREFIX: most clients never send one, and an empty map would still take
    /// its room in every idle session.
    prefixes: Option<Box<Prefixes>>,
    topics: Vec<ChannelName>,
}

impl V1 {
    /// A session of the app of `slot` on a new hub connection.
    pub(crate) fn new(hub: Arc<Hub>, slot: ConnectionSlot) -> Self {
        let conn = hub.connect(Wire::WampV1);
        Self::on(hub, conn, slot)
    }

    /// A session on a connection made earlier (Oro's, whose WELCOME went with the 101).
    pub(crate) fn on(hub: Arc<Hub>, conn: Arc<Conn>, slot: ConnectionSlot) -> Self {
        slot.attach(&conn);
        Self { hub, conn, slot, prefixes: None, topics: Vec::new() }
    }

    /// The session's app.
    pub(crate) fn app(&self) -> &Arc<App> {
        self.slot.app()
    }

    /// Expands the CURIEs of `msg` with the session's prefixes; a PREFIX is taken in and yields
    /// `None`.
    fn expand(&mut self, msg: V1ClientMsg) -> Result<Option<V1ClientMsg>, herald_protocol::wamp::WampError> {
        match &mut self.prefixes {
            Some(prefixes) => prefixes.apply(msg),
            None if matches!(msg, V1ClientMsg::Prefix { .. }) => {
                self.prefixes.insert(Box::new(Prefixes::new(CurieRule::Ratchet))).apply(msg)
            }
            // No prefix was ever declared: only the rule's own expansions apply.
            None => Prefixes::new(CurieRule::Ratchet).apply(msg),
        }
    }

    /// The session id of this connection, as WELCOME names it: the WAMP session number in 20
    /// decimal digits, so exclude/eligible lists map back to session numbers. Ratchet's ids are
    /// ~30 characters of `[0-9a-f]`; clients treat ids as opaque strings.
    pub(crate) fn session_id(&self) -> String {
        session_id(&self.conn)
    }

    /// The WELCOME frame of this session.
    pub(crate) fn welcome(&self, server: Option<&str>) -> Bytes {
        ws::encode_text(&v1::welcome(&self.session_id(), server))
    }

    /// Whether the session is subscribed to `topic`.
    pub(crate) fn subscribed(&self, topic: &str) -> bool {
        self.topics.iter().any(|t| t.as_str() == topic)
    }

    /// Joins the hub channel. WAMP v1 never answers SUBSCRIBE, and a second SUBSCRIBE is
    /// refused by the hub and ignored here.
    pub(crate) fn join(&mut self, channel: ChannelName) {
        if self.hub.subscribe(self.slot.app(), &self.conn, &channel, None, |_| {}).is_ok() {
            tap::subscription(self.slot.app(), "subscribe", self.conn.socket_id.as_str(), channel.as_str());
            self.topics.push(channel);
        }
    }

    /// Leaves the hub channel of `topic`; false when the session was not in it.
    pub(crate) fn part(&mut self, topic: &str) -> bool {
        let Some(i) = self.topics.iter().position(|t| t.as_str() == topic) else { return false };
        let channel = self.topics.swap_remove(i);
        self.hub.unsubscribe(self.slot.app(), &self.conn, &channel);
        tap::subscription(self.slot.app(), "unsubscribe", self.conn.socket_id.as_str(), channel.as_str());
        true
    }

    /// Publishes a v1 PUBLISH on `channel` through the hub.
    pub(crate) fn publish(&self, channel: ChannelName, p: V1Publish) {
        tap::published(self.slot.app(), "wamp1", channel.as_str(), &p.topic, p.event.get());
        self.hub.publish(self.slot.app(), publication(channel, p, &self.conn));
    }

    fn leave(&mut self) {
        for channel in self.topics.drain(..) {
            self.hub.unsubscribe(self.slot.app(), &self.conn, &channel);
        }
        self.slot.detach(&self.conn);
        self.hub.disconnect(&self.conn);
    }
}

/// The v1 session id of a connection (see [`V1::session_id`]).
pub(crate) fn session_id(conn: &Conn) -> String {
    format!("{:020}", conn.session)
}

/// The hub publication of a v1 PUBLISH from `conn` on `channel`. Exclude and eligible lists name
/// v1 session ids, which [`session_id`] makes WAMP session numbers; an empty eligible list means
/// everyone, as in Ratchet's `Topic::broadcast`.
pub(crate) fn publication(channel: ChannelName, p: V1Publish, conn: &Conn) -> Publication {
    let ids = |list: &[String]| list.iter().filter_map(|s| s.parse::<u64>().ok()).collect::<Vec<_>>();
    let eligible = p.eligible.as_deref().filter(|e| !e.is_empty()).map(ids);
    let filter =
        (!p.exclude.is_empty() || eligible.is_some()).then(|| WampFilter { exclude: ids(&p.exclude), eligible });
    Publication::new(channel, p.topic.as_str(), PublicationData::Json(p.event.into_raw()))
        .from_wamp()
        .excluding(p.exclude_me.then_some(conn.socket_id.as_str()))
        .with_filter(filter)
}

/// The adapter of a WAMP v1 session under policy `P`.
pub(crate) struct Wamp1<P> {
    session: V1,
    policy: P,
}

impl<P: Policy> Wamp1<P> {
    /// The adapter of `session` under `policy`.
    pub(crate) fn new(session: V1, policy: P) -> Self {
        Self { session, policy }
    }

    fn on_text(&mut self, text: &[u8], io: &mut Io<'_, P::Done>) -> Flow {
        let Ok(msg) = parse_v1(text) else { return malformed() };
        let msg = match self.session.expand(msg) {
            Ok(Some(msg)) => msg,
            Ok(None) => return Flow::Continue,
            Err(_) => return malformed(),
        };
        let s = &mut self.session;
        match msg {
            V1ClientMsg::Prefix { .. } => Flow::Continue,
            V1ClientMsg::Subscribe { topic } => self.policy.subscribe(s, topic, io),
            V1ClientMsg::Unsubscribe { topic } => self.policy.unsubscribe(s, &topic, io),
            V1ClientMsg::Publish(p) => self.policy.publish(s, p, io),
            V1ClientMsg::Call { call_id, proc_uri, .. } => self.policy.call(s, &call_id, &proc_uri, io),
        }
    }
}

impl<P: Policy> Adapter for Wamp1<P> {
    type Done = P::Done;

    fn outbox(&self) -> &Outbox {
        &self.session.conn.outbox
    }

    fn keepalive(&self) -> Plan {
        self.policy.keepalive(&self.session)
    }

    fn ready(&self) -> bool {
        self.policy.ready()
    }

    fn open(&mut self, io: &mut Io<'_, Self::Done>) -> Flow {
        tap::opened(self.session.app(), self.session.conn.socket_id.as_str(), "wamp1");
        self.policy.open(&mut self.session, io)
    }

    fn on_data(&mut self, data: Data, io: &mut Io<'_, Self::Done>) -> Flow {
        self.session.app().stats.message_in(herald_core::stats::Protocol::WampV1);
        match data {
            Data::Text(text) => self.on_text(&text, io),
            // Text frames only: Ratchet's JSON decoding fails on binary input.
            Data::Binary(_) => malformed(),
        }
    }

    fn on_done(&mut self, done: Self::Done, io: &mut Io<'_, Self::Done>) -> Flow {
        self.policy.on_done(&mut self.session, done, io)
    }

    /// Ratchet's `WsServer` statuses: the client's own code echoed, 1001 going away, 1000 for
    /// its keep-alive (`WsConnection::close()`).
    fn goodbye(&mut self, reason: CloseReason, _io: &mut Io<'_, Self::Done>) -> Goodbye {
        let goodbye = match reason {
            CloseReason::ClientClosed(frame) => Goodbye::with(ws::encode_close_reply(frame.as_ref())),
            CloseReason::Violation(e) => Goodbye::with(ws::encode_close(e.close_code(), "")),
            CloseReason::Gone => Goodbye::silent(),
            CloseReason::SlowConsumer => Goodbye::with(ws::encode_close(1008, "slow consumer")),
            CloseReason::Terminated | CloseReason::Shutdown | CloseReason::AppRemoved | CloseReason::AppDisabled => {
                Goodbye::with(ws::encode_close(1001, ""))
            }
            CloseReason::Unresponsive => Goodbye::with(ws::encode_close(1000, "")),
            CloseReason::Protocol(frame) => Goodbye { frame, discard_backlog: false },
        };
        tap::closed(self.session.app(), self.session.conn.socket_id.as_str(), goodbye.frame.as_ref());
        goodbye
    }

    fn leave(&mut self) {
        self.policy.leave(&mut self.session);
        self.session.leave();
    }
}

/// A plain `wamp1` listener: no authentication, so every session holds the app's anonymous
/// role, and the app's authorizer (rules, a profile's) has the last word.
pub(crate) struct Anonymous {
    /// `wamp_max_publishes_per_second`, made at the first publish.
    publish_budget: Option<Box<TokenBucket>>,
}

impl Anonymous {
    /// The policy of a plain listener.
    pub(crate) fn new() -> Self {
        Self { publish_budget: None }
    }

    /// A hub channel for `topic` when the session may use it for `action`; `None` means ignore.
    fn channel(session: &V1, action: Action, topic: &str) -> Option<ChannelName> {
        let channel = ChannelName::topic(topic, MAX_URI_LEN).ok()?;
        // Pusher's signed channel kinds are never open to WAMP (docs/wamp.md).
        if channel.kind().access != Access::Public {
            return None;
        }
        let app = session.app();
        let allowed = app.anonymous_allows(action, topic) && app.authorizer().authorize(&session.conn, action, topic);
        allowed.then_some(channel)
    }
}

impl Policy for Anonymous {
    type Done = std::convert::Infallible;

    fn keepalive(&self, session: &V1) -> Plan {
        Plan::silence(session.app().config.activity_timeout, session.app().config.pong_timeout)
    }

    fn open(&mut self, session: &mut V1, io: &mut Io<'_, Self::Done>) -> Flow {
        io.reply(session.welcome(Some(SERVER_IDENT)));
        Flow::Continue
    }

    fn subscribe(&mut self, session: &mut V1, topic: String, _io: &mut Io<'_, Self::Done>) -> Flow {
        if let Some(channel) = Self::channel(session, Action::Subscribe, &topic) {
            session.join(channel);
        }
        Flow::Continue
    }

    fn unsubscribe(&mut self, session: &mut V1, topic: &str, _io: &mut Io<'_, Self::Done>) -> Flow {
        session.part(topic);
        Flow::Continue
    }

    fn publish(&mut self, session: &mut V1, p: V1Publish, io: &mut Io<'_, Self::Done>) -> Flow {
        let Some(channel) = Self::channel(session, Action::Publish, &p.topic) else { return Flow::Continue };
        // The topic becomes the Pusher event name: never a reserved `pusher:` one.
        if herald_protocol::pusher::is_reserved_event_name(&p.topic) {
            return Flow::Continue;
        }
        // Every publish counts against `wamp_max_publishes_per_second`; v1 has no way to say
        // "refused", so a publish over it is dropped, as a denied one is.
        let per_second = session.app().config.wamp_max_publishes_per_second;
        if per_second > 0 {
            let budget = self.publish_budget.get_or_insert_with(|| Box::new(TokenBucket::per_second(per_second)));
            if budget.take(1, io.now).is_err() {
                return Flow::Continue;
            }
        }
        session.publish(channel, p);
        Flow::Continue
    }

    fn call(&mut self, _session: &mut V1, call_id: &CallId, proc_uri: &str, io: &mut Io<'_, Self::Done>) -> Flow {
        let desc = format!("no procedure {proc_uri}");
        io.reply(ws::encode_text(&v1::call_error(call_id, NO_SUCH_PROCEDURE, &desc, None)));
        Flow::Continue
    }
}
