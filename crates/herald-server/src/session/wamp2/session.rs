//! An established WAMP v2 session and its requests: SUBSCRIBE, UNSUBSCRIBE, PUBLISH, REGISTER,
//! CALL and the callee's answers, each turned into hub operations and answered in the outbox.
//! What the session may do is decided in `access.rs`; the socket loop is `wamp2.rs`.

use std::sync::Arc;
use std::time::Duration;

use herald_core::authorize::Action;
use herald_core::hub::SubscribeError;
use herald_core::hub::dealer::v2_frame;
use herald_core::rate::TokenBucket;
use herald_core::{App, Conn, Hub, Publication, PublicationData, WampFilter};
use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::wamp::uri::{self, Components, MAX_URI_LEN, MatchPolicy, UriRule};
use herald_protocol::wamp::v2::{
    CallOptions, Dict, Id, Payload, PublishOptions, SubscribeOptions, V2Msg, Value, code, reason,
};
use tokio::time::Instant;

use super::Next;
use super::handshake::Identity;

/// The meta procedure that opens a Pusher private or presence channel with its signature.
const AUTHORIZE: &str = "herald.pusher.authorize";
/// No session may register a procedure in herald's own namespace.
const AUTHORIZE_PREFIX: &str = "herald.";
/// The meta procedure that reads a subscription's event history (WAMP "Event History").
const GET_EVENTS: &str = "wamp.subscription.get_events";
/// ERROR of `wamp.subscription.get_events` on a topic that keeps no history (Crossbar's URI).
const HISTORY_UNAVAILABLE: &str = "wamp.error.history_unavailable";
/// Events `wamp.subscription.get_events` returns when the caller gives no limit (Crossbar's).
const GET_EVENTS_DEFAULT: u64 = 10;
/// Events one `wamp.subscription.get_events` returns at most, whatever the limit asked.
const GET_EVENTS_MAX: u64 = 1000;
/// Bytes one `wamp.subscription.get_events` answer holds at most (payloads plus
/// [`GET_EVENTS_ITEM_BYTES`] per event): older events beyond them are left out, so one answer
/// stays well under an outbox's byte bound (1 MiB by default) and cannot close the caller as a
/// slow consumer.
const GET_EVENTS_MAX_BYTES: usize = 256 * 1024;
/// What one event's keys, ids and timestamp add to its payload in the answer, roughly.
const GET_EVENTS_ITEM_BYTES: usize = 160;
/// ERROR of a publish over `wamp_max_publishes_per_second`.
const RATE_LIMITED: &str = "herald.error.rate_limited";
/// One subscription of this session.
pub(super) enum Sub {
    Exact(ChannelName),
    Pattern,
}

/// The state of an established session.
pub(super) struct Session {
    pub(super) hub: Arc<Hub>,
    pub(super) conn: Arc<Conn>,
    /// What only some sessions need (an authenticated identity, signed Pusher channels, the
    /// publish budget), made when first needed: an idle anonymous subscriber allocates none of
    /// it and carries one pointer for it.
    pub(super) extras: Option<Box<Extras>>,
    pub(super) subs: Vec<(u64, Sub)>,
    /// The realm's connection place, which also names the realm's app.
    pub(super) slot: herald_core::app::ConnectionSlot,
}

/// The parts of a session that most sessions never need.
#[derive(Default)]
pub(super) struct Extras {
    /// Calls this session made that carry a timeout: (invocation, deadline).
    pub(super) timed_calls: Vec<(u64, Instant)>,
    /// Who the session is when it authenticated; `None` for an anonymous session, whose authid
    /// is its session id and authrole the app's anonymous role.
    pub(super) identity: Option<Identity>,
    /// Pusher channels opened with a channel signature (`herald.pusher.authorize`), with the
    /// presence `channel_data` that was signed.
    pub(super) signed_channels: Vec<(ChannelName, Option<String>)>,
    /// `wamp_max_publishes_per_second`, made at the first publish.
    pub(super) publish_budget: Option<TokenBucket>,
}

impl Session {
    /// The realm's app.
    pub(super) fn app(&self) -> &Arc<App> {
        self.slot.app()
    }

    pub(super) fn send(&self, msg: &V2Msg) {
        if let Some(f) = v2_frame(self.conn.wire, msg) {
            let _ = self.conn.outbox.push(f);
        }
    }

    pub(super) fn error(&self, request_type: u64, request: u64, error: &str) {
        crate::dashboard::tap::error(self.app(), self.conn.socket_id.as_str(), None, None, error);
        self.send(&V2Msg::Error {
            request_type,
            request: Id::saturating(request),
            details: Dict::new(),
            error: error.to_owned(),
            payload: Payload::default(),
        });
    }

    pub(super) fn handle(&mut self, msg: V2Msg) -> Next {
        match msg {
            V2Msg::Hello { .. } => {
                return Next::Close(v2_frame(
                    self.conn.wire,
                    &V2Msg::Abort {
                        details: Dict::new().with("message", "HELLO on an established session"),
                        reason: reason::PROTOCOL_VIOLATION.into(),
                    },
                ));
            }
            V2Msg::Goodbye { .. } => {
                let bye = V2Msg::Goodbye { details: Dict::new(), reason: reason::GOODBYE_AND_OUT.into() };
                return Next::Close(v2_frame(self.conn.wire, &bye));
            }
            V2Msg::Abort { .. } => return Next::Close(None),
            V2Msg::Subscribe { request, options, topic } => self.subscribe(request.get(), &options, &topic),
            V2Msg::Unsubscribe { request, subscription } => self.unsubscribe(request.get(), subscription.get()),
            V2Msg::Publish { request, options, topic, payload } => {
                self.publish(request.get(), &options, topic, payload);
            }
            V2Msg::Register { request, procedure, .. } => {
                let req = request.get();
                if self.allowed(Action::Register, &procedure).is_none() || procedure.starts_with(AUTHORIZE_PREFIX) {
                    self.refuse(code::REGISTER, req, "register", "procedure", &procedure);
                    return Next::Continue;
                }
                match self.hub.register(self.app(), &self.conn, &procedure) {
                    Ok(reg) => self.send(&V2Msg::Registered { request, registration: Id::saturating(reg) }),
                    Err(e) => self.error(code::REGISTER, req, e.uri()),
                }
            }
            V2Msg::Unregister { request, registration } => {
                match self.hub.unregister(self.app(), &self.conn, registration.get()) {
                    Ok(()) => self.send(&V2Msg::Unregistered { request }),
                    Err(e) => self.error(code::UNREGISTER, request.get(), e.uri()),
                }
            }
            V2Msg::Call { request, options, procedure, payload } => {
                self.call(request.get(), &options, &procedure, payload);
            }
            V2Msg::Yield { request, payload, .. } => {
                self.hub.yield_result(self.app(), &self.conn, request.get(), payload);
            }
            V2Msg::Error { request_type: code::INVOCATION, request, error, payload, .. } => {
                self.hub.invocation_error(self.app(), &self.conn, request.get(), &error, payload);
            }
            other => {
                let msg = format!("{} is not a message a client sends", other.name());
                return Next::Close(v2_frame(
                    self.conn.wire,
                    &V2Msg::Abort {
                        details: Dict::new().with("message", msg),
                        reason: reason::PROTOCOL_VIOLATION.into(),
                    },
                ));
            }
        }
        Next::Continue
    }

    pub(super) fn subscribe(&mut self, request: u64, options: &Dict, topic: &str) {
        let (policy, get_retained) = match SubscribeOptions::from_dict(options) {
            Ok(o) => (o.policy, o.get_retained),
            Err(e) => return self.error(code::SUBSCRIBE, request, e.v2_error_uri()),
        };
        if self.allowed(Action::Subscribe, topic).is_none() {
            return self.refuse(code::SUBSCRIBE, request, "subscribe", "topic", topic);
        }
        if policy != MatchPolicy::Exact {
            if !self.pattern_allowed(topic) {
                return self.refuse(code::SUBSCRIBE, request, "subscribe", "topic pattern", topic);
            }
            let id = self.hub.subscribe_pattern(self.app(), &self.conn, policy, topic);
            if !self.subs.iter().any(|(s, _)| *s == id) {
                self.subs.push((id, Sub::Pattern));
            }
            return self
                .send(&V2Msg::Subscribed { request: Id::saturating(request), subscription: Id::saturating(id) });
        }
        let Ok(channel) = ChannelName::topic(topic, MAX_URI_LEN) else {
            return self.error(code::SUBSCRIBE, request, reason::INVALID_URI);
        };
        let member = match self.presence_member(&channel) {
            Ok(m) => m,
            Err(e) => return self.error(code::SUBSCRIBE, request, e),
        };
        let conn = Arc::clone(&self.conn);
        let mut joined_id = 0;
        let result = self.hub.subscribe(self.app(), &self.conn, &channel, member, |j| {
            joined_id = j.subscription;
            // Under the channel lock, so no EVENT of this subscription can precede it.
            let msg =
                V2Msg::Subscribed { request: Id::saturating(request), subscription: Id::saturating(j.subscription) };
            if let Some(f) = v2_frame(conn.wire, &msg) {
                let _ = conn.outbox.push(f);
            }
            // Also under the lock: the retained event comes before any later live one. It is
            // sent only to a session its eligible/exclude lists admit; `exclude_me` is about the
            // live fan-out, so a publisher may read back what it retained.
            if get_retained
                && let Some(p) = j.retained()
                && p.filter.as_ref().is_none_or(|f| f.admits(conn.session))
                && let Some(f) = p.encode_retained(conn.wire, j.subscription)
            {
                let _ = conn.outbox.push(f);
            }
        });
        match result {
            Ok(()) => {
                // Most sessions hold one subscription: room for exactly one, not Vec's first 4.
                if self.subs.capacity() == 0 {
                    self.subs.reserve_exact(1);
                }
                crate::dashboard::tap::subscription(
                    self.app(),
                    "subscribe",
                    self.conn.socket_id.as_str(),
                    channel.as_str(),
                );
                self.subs.push((joined_id, Sub::Exact(channel)));
            }
            Err(SubscribeError::AlreadySubscribed(_)) => {
                // WAMP: subscribing again returns the existing subscription.
                let existing = self.subs.iter().find_map(|(id, s)| match s {
                    Sub::Exact(c) if c == &channel => Some(*id),
                    _ => None,
                });
                let id = Id::saturating(existing.unwrap_or(1));
                self.send(&V2Msg::Subscribed { request: Id::saturating(request), subscription: id });
            }
            Err(_) => self.error(code::SUBSCRIBE, request, reason::NOT_AUTHORIZED),
        }
    }

    pub(super) fn unsubscribe(&mut self, request: u64, subscription: u64) {
        let Some(i) = self.subs.iter().position(|(id, _)| *id == subscription) else {
            return self.error(code::UNSUBSCRIBE, request, reason::NO_SUCH_SUBSCRIPTION);
        };
        let (id, sub) = self.subs.swap_remove(i);
        match sub {
            Sub::Exact(channel) => {
                self.hub.unsubscribe(self.app(), &self.conn, &channel);
                crate::dashboard::tap::subscription(
                    self.app(),
                    "unsubscribe",
                    self.conn.socket_id.as_str(),
                    channel.as_str(),
                );
            }
            Sub::Pattern => {
                self.hub.unsubscribe_pattern(self.app(), &self.conn, id);
            }
        }
        self.send(&V2Msg::Unsubscribed { request: Id::saturating(request) });
    }

    pub(super) fn publish(&mut self, request: u64, options: &Dict, topic: String, payload: Payload) {
        let opts = match PublishOptions::from_dict(options) {
            Ok(o) => o,
            Err(e) => return self.error(code::PUBLISH, request, e.v2_error_uri()),
        };
        let Some(grant) = self.allowed(Action::Publish, &topic) else {
            if opts.acknowledge {
                self.refuse(code::PUBLISH, request, "publish to", "topic", &topic);
            }
            return;
        };
        let channel = ChannelName::topic(&topic, MAX_URI_LEN);
        if channel.is_err() || uri::check(&topic, UriRule::Loose, Components::NonEmpty).is_err() {
            if opts.acknowledge {
                self.error(code::PUBLISH, request, reason::INVALID_URI);
            }
            return;
        }
        // Every publish counts, acknowledged or not: a flood is dropped, not fanned out.
        if !self.charge_publish() {
            if opts.acknowledge {
                self.error(code::PUBLISH, request, RATE_LIMITED);
            }
            return;
        }
        let Ok(channel) = channel else { return };
        let args = payload.args.unwrap_or_default();
        let kwargs = payload.kwargs.unwrap_or_default();
        let event = match kwargs.get("event") {
            Some(Value::Str(e)) => e.clone(),
            _ => topic,
        };
        // Pusher reserves `pusher:` and `pusher_internal:` for the protocol itself; a WAMP
        // client must not be able to forge them (or an over-long name) for Pusher subscribers.
        let too_long = event.chars().count() > self.app().config.max_event_name_length;
        if herald_protocol::pusher::is_reserved_event_name(&event) || too_long {
            if opts.acknowledge {
                self.error(code::PUBLISH, request, reason::INVALID_ARGUMENT);
            }
            return;
        }
        let filter = (!opts.exclude.is_empty() || opts.eligible.is_some()).then(|| WampFilter {
            exclude: opts.exclude.iter().map(|i| i.get()).collect(),
            eligible: opts.eligible.as_ref().map(|e| e.iter().map(|i| i.get()).collect()),
        });
        let publication = Publication::new(channel, event, PublicationData::Wamp { args, kwargs })
            .from_wamp()
            .excluding(opts.exclude_me.then_some(self.conn.socket_id.as_str()))
            .with_filter(filter)
            .disclosing(grant.disclose.then(|| herald_core::publication::Publisher {
                session: self.conn.session,
                authid: self.authid().into(),
                authrole: self.authrole().into(),
            }))
            .retaining(opts.retain);
        let id = publication.id;
        crate::dashboard::tap::published(self.app(), "wamp2", publication.channel.as_str(), &publication.event, "");
        self.hub.publish(self.app(), publication);
        if opts.acknowledge {
            self.send(&V2Msg::Published { request: Id::saturating(request), publication: Id::saturating(id) });
        }
    }

    pub(super) fn call(&mut self, request: u64, options: &Dict, procedure: &str, payload: Payload) {
        let timeout = match CallOptions::from_dict(options) {
            Ok(o) => o.timeout_ms,
            Err(e) => return self.error(code::CALL, request, e.v2_error_uri()),
        };
        if procedure == AUTHORIZE {
            return self.authorize_channel(request, &payload);
        }
        if procedure == GET_EVENTS {
            return self.get_events(request, &payload);
        }
        let Some(grant) = self.allowed(Action::Call, procedure) else {
            return self.refuse(code::CALL, request, "call", "procedure", procedure);
        };
        // `disclose = { caller = true }`: the callee learns who calls.
        let details = if grant.disclose {
            Dict::new()
                .with("caller", self.conn.session)
                .with("caller_authid", self.authid().as_ref())
                .with("caller_authrole", self.authrole())
        } else {
            Dict::new()
        };
        match self.hub.call(self.app(), &self.conn, request, procedure, payload, details) {
            Ok(invocation) => {
                if let Some(ms) = timeout {
                    let extras = self.extras.get_or_insert_with(Box::default);
                    extras.timed_calls.push((invocation, Instant::now() + Duration::from_millis(ms)));
                }
            }
            Err(e) => self.error(code::CALL, request, e.uri()),
        }
    }

    /// `wamp.subscription.get_events(subscription, limit)`: the newest events of a subscription
    /// this session holds, newest first, each as `{timestamp, subscription, publication, topic,
    /// details, args, kwargs}`. Holding the subscription is the permission to read its history.
    fn get_events(&mut self, request: u64, payload: &Payload) {
        let args = payload.args.as_deref().unwrap_or_default();
        let kwargs = payload.kwargs.as_ref();
        let limit = args.get(1).or_else(|| kwargs.and_then(|k| k.get("limit")));
        let (Some(subscription), Some(limit)) = (
            args.first().and_then(Value::as_u64),
            limit.map_or(Some(GET_EVENTS_DEFAULT), |l| l.as_u64().filter(|n| *n > 0)),
        ) else {
            return self.error(code::CALL, request, reason::INVALID_ARGUMENT);
        };
        let channel = match self.subs.iter().find(|(id, _)| *id == subscription) {
            None => return self.error(code::CALL, request, reason::NO_SUCH_SUBSCRIPTION),
            Some((_, Sub::Pattern)) => return self.error(code::CALL, request, HISTORY_UNAVAILABLE),
            Some((_, Sub::Exact(channel))) => channel,
        };
        let limit = usize::try_from(limit.min(GET_EVENTS_MAX)).unwrap_or(usize::MAX);
        let Some(events) = self.hub.wamp_events(self.app(), channel.as_str(), limit) else {
            return self.error(code::CALL, request, HISTORY_UNAVAILABLE);
        };
        let (now, wall) = (Instant::now(), std::time::SystemTime::now());
        let mut bytes = 0;
        let mut items = Vec::with_capacity(events.len());
        // Session-id lists are checked against this session, as the live fan-out would have.
        for (at, p) in events.iter().filter(|(_, p)| p.filter.as_ref().is_none_or(|f| f.admits(self.conn.session))) {
            bytes += p.approx_bytes() + GET_EVENTS_ITEM_BYTES;
            if bytes > GET_EVENTS_MAX_BYTES && !items.is_empty() {
                break;
            }
            let (args, kwargs) = p.v2_args();
            let mut details = Dict::new();
            if let Some(publisher) = &p.publisher {
                details.insert("publisher", publisher.session);
                details.insert("publisher_authid", publisher.authid.as_ref());
                details.insert("publisher_authrole", publisher.authrole.as_ref());
            }
            let when = wall.checked_sub(now.saturating_duration_since(*at)).unwrap_or(wall);
            let item = Dict::new()
                .with("timestamp", super::handshake::iso8601(when))
                .with("subscription", subscription)
                .with("publication", p.id)
                .with("topic", p.channel.as_str())
                .with("details", details)
                .with("args", args.into_owned())
                .with("kwargs", kwargs.map(std::borrow::Cow::into_owned).unwrap_or_default());
            items.push(Value::Dict(item));
        }
        let result = V2Msg::Result {
            request: Id::saturating(request),
            details: Dict::new(),
            payload: Payload { args: Some(vec![Value::List(items)]), kwargs: None },
        };
        self.send(&result);
    }

    /// Fails this session's calls whose timeout passed.
    pub(super) fn expire_calls(&mut self, now: Instant) {
        let hub = &self.hub;
        let app = self.slot.app();
        let Some(extras) = self.extras.as_mut() else { return };
        extras.timed_calls.retain(|(inv, deadline)| {
            if *deadline > now {
                return true;
            }
            hub.fail_call(app, *inv, reason::TIMEOUT);
            false
        });
    }

    /// Removes every trace of the session from the hub.
    pub(super) fn leave(&mut self) {
        let app = self.slot.app();
        for (_, sub) in self.subs.drain(..) {
            if let Sub::Exact(channel) = sub {
                self.hub.unsubscribe(app, &self.conn, &channel);
            }
        }
        self.hub.leave_wamp(self.app(), &self.conn);
        self.slot.detach(&self.conn);
        self.hub.disconnect(&self.conn);
    }
}
