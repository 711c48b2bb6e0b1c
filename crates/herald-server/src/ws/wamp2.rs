//! A WAMP v2 session (Basic Profile router: broker and dealer): the owner task of one socket.
//!
//! HELLO picks the realm (= app id). Subscriptions and publications go through the hub, so WAMP
//! topics and Pusher channels of one app are the same channels. Replies are queued in the
//! connection's outbox, in order with the events the hub pushes there. Protocol violations end
//! the session with ABORT; a bad request (URI, option, authorization) gets an ERROR and the
//! session carries on.

use std::sync::Arc;
use std::time::Duration;

use herald_core::authorize::Action;
use herald_core::hub::SubscribeError;
use herald_core::hub::dealer::v2_frame;
use herald_core::outbox::CloseRequest;
use herald_core::rate::TokenBucket;
use herald_core::{App, Conn, Hub, Publication, PublicationData, WampFilter, Wire};
use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::wamp::uri::{self, Components, MAX_URI_LEN, MatchPolicy, UriRule};
use herald_protocol::wamp::v2::{
    CallOptions, Dict, Id, Payload, PublishOptions, SubscribeOptions, V2Msg, Value, code, reason, welcome_details,
};
use herald_protocol::wamp::{Serializer, parse_v2};
use herald_protocol::ws::{self, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::keepalive::{KeepAlive, Tick};
use handshake::{Identity, Pending, Step, Verdict};

mod access;
mod handshake;
use super::socket::{Event, Socket};

/// The meta procedure that opens a Pusher private or presence channel with its signature.
const AUTHORIZE: &str = "herald.pusher.authorize";
/// No session may register a procedure in herald's own namespace.
const AUTHORIZE_PREFIX: &str = "herald.";
/// ERROR of a publish over `wamp_max_publishes_per_second`.
const RATE_LIMITED: &str = "herald.error.rate_limited";
/// How long a client may take to send HELLO.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// What herald calls itself in WELCOME.
const AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// One subscription of this session.
enum Sub {
    Exact(ChannelName),
    Pattern,
}

/// The state of an established session.
struct Session {
    hub: Arc<Hub>,
    app: Arc<App>,
    conn: Arc<Conn>,
    /// What only some sessions need (an authenticated identity, signed Pusher channels, the
    /// publish budget), made when first needed: an idle anonymous subscriber allocates none of
    /// it and carries one pointer for it.
    extras: Option<Box<Extras>>,
    subs: Vec<(u64, Sub)>,
    _slot: herald_core::app::ConnectionSlot,
}

/// The parts of a session that most sessions never need.
#[derive(Default)]
struct Extras {
    /// Calls this session made that carry a timeout: (invocation, deadline).
    timed_calls: Vec<(u64, Instant)>,
    /// Who the session is when it authenticated; `None` for an anonymous session, whose authid
    /// is its session id and authrole the app's anonymous role.
    identity: Option<Identity>,
    /// Pusher channels opened with a channel signature (`herald.pusher.authorize`), with the
    /// presence `channel_data` that was signed.
    signed_channels: Vec<(ChannelName, Option<String>)>,
    /// `wamp_max_publishes_per_second`, made at the first publish.
    publish_budget: Option<TokenBucket>,
}

/// A handshake waiting for AUTHENTICATE or for the dynamic authenticator.
struct Opening {
    app: Arc<App>,
    pending: Option<Pending>,
    /// The dynamic authenticator's answer, when it was asked.
    answer: Option<tokio::sync::oneshot::Receiver<Verdict>>,
    /// When the client's AUTHENTICATE is too late.
    deadline: Instant,
}

/// Where the session is.
enum Phase {
    /// Waiting for HELLO, with the upgrade's `Origin` (kept here, where it takes no room once
    /// the session is open).
    Hello(Option<Box<str>>),
    /// HELLO received, authentication under way; boxed: most sockets never have one.
    Opening(Box<Opening>),
    /// WELCOME sent.
    Open(Session),
}

/// How the session loop should go on after a message.
enum Next {
    Continue,
    /// Send this frame, then close the socket.
    Close(Option<bytes::Bytes>),
}

/// What woke the session loop.
enum Wake {
    Socket(Event),
    Verdict(Verdict),
    Timer,
}

/// Runs a WAMP v2 session until it ends.
// A plain fn returning an `async move` block, not an `async fn`: an `async fn` keeps each
// argument twice in its state (the argument and the local it is moved into), and this future
// is what every idle connection's task holds.
#[expect(clippy::manual_async_fn, reason = "an async fn would store its arguments twice")]
pub(crate) fn run<S: AsyncRead + AsyncWrite + Unpin>(
    hub: Arc<Hub>,
    ser: Serializer,
    origin: Option<Box<str>>,
    mut socket: Socket<S>,
) -> impl Future<Output = ()> {
    async move {
        let conn = hub.connect(Wire::WampV2(ser));
        let mut phase = Phase::Hello(origin);
        // Whether keep-alive runs on the app's periods yet (HELLO_TIMEOUT until WELCOME).
        let mut established = false;
        let mut keepalive = KeepAlive::new(HELLO_TIMEOUT, Duration::ZERO, Instant::now());
        let timer = tokio::time::sleep(HELLO_TIMEOUT);
        tokio::pin!(timer);

        let close_frame = loop {
            let wake = std::future::poll_fn(|cx| {
                if let std::task::Poll::Ready(e) = socket.poll_event(cx, &conn.outbox) {
                    return std::task::Poll::Ready(Wake::Socket(e));
                }
                if let Phase::Opening(o) = &mut phase
                    && let Some(rx) = o.answer.as_mut()
                    && let std::task::Poll::Ready(v) = std::pin::Pin::new(rx).poll(cx)
                {
                    return std::task::Poll::Ready(Wake::Verdict(v.unwrap_or(Verdict::Unavailable)));
                }
                timer.as_mut().poll(cx).map(|()| Wake::Timer)
            })
            .await;
            let event = match wake {
                Wake::Socket(e) => e,
                Wake::Verdict(v) => {
                    let Phase::Opening(mut o) = std::mem::replace(&mut phase, Phase::Hello(None)) else { continue };
                    o.answer = None;
                    let Some(pending) = o.pending.take() else { continue };
                    let step = handshake::answered(&context(&o.app, &conn), pending, v);
                    match proceed(&hub, &conn, o, step) {
                        Ok(p) => {
                            phase = p;
                            timer.as_mut().reset(deadline(&phase, &keepalive));
                            continue;
                        }
                        Err(frame) => break Some(frame),
                    }
                }
                Wake::Timer => {
                    let now = Instant::now();
                    if let Phase::Opening(o) = &phase
                        && o.deadline <= now
                    {
                        break Some(abort(&conn, handshake::AUTHENTICATION_FAILED, "challenge expired"));
                    }
                    if let Phase::Open(s) = &mut phase {
                        s.expire_calls(now);
                    }
                    let open = matches!(phase, Phase::Open(_));
                    match keepalive.tick(now) {
                        Tick::Wait(_) => timer.as_mut().reset(deadline(&phase, &keepalive)),
                        Tick::Ping(_) if open => {
                            socket.queue(ws::encode_ping(b"herald"));
                            timer.as_mut().reset(deadline(&phase, &keepalive));
                        }
                        // No HELLO in time, or no answer to our ping.
                        Tick::Ping(_) | Tick::Expired => break Some(ws::encode_close(1001, "timeout")),
                    }
                    continue;
                }
            };
            let msg = match event {
                Event::Message(m) => m,
                Event::Violation(e) => break Some(ws::encode_close(e.close_code(), &e.to_string())),
                Event::Gone => break None,
                Event::CloseRequested(CloseRequest::SlowConsumer) => {
                    break Some(ws::encode_close(1008, "slow consumer"));
                }
                Event::CloseRequested(CloseRequest::Code { .. }) => {
                    let bye = V2Msg::Goodbye { details: Dict::new(), reason: reason::SYSTEM_SHUTDOWN.into() };
                    if let Some(f) = v2_frame(conn.wire, &bye) {
                        socket.queue(f);
                    }
                    break Some(ws::encode_close(1001, "server shutting down"));
                }
            };
            if let Phase::Open(s) = &phase {
                s.app.stats.message_in(herald_core::stats::Protocol::WampV2);
            }
            keepalive.seen(Instant::now());
            let payload = match msg {
                Message::Text(b) if ser == Serializer::Json => b,
                Message::Binary(b) if ser == Serializer::MsgPack => b,
                Message::Ping(p) => {
                    socket.queue(ws::encode_pong(&p));
                    continue;
                }
                Message::Pong(_) => continue,
                Message::Close(_) => break Some(ws::encode_close(1000, "")),
                Message::Text(_) | Message::Binary(_) => {
                    break Some(abort(&conn, reason::PROTOCOL_VIOLATION, "frame type does not match the serializer"));
                }
            };
            let open = matches!(phase, Phase::Open(_));
            let parsed = parse_v2(ser, &payload).and_then(|m| m.check_uris(UriRule::Loose).map(|()| m));
            let msg = match parsed {
                Ok(m) => m,
                Err(e) if e.is_protocol_violation() || !open => {
                    break Some(abort(&conn, e.v2_error_uri(), &e.to_string()));
                }
                Err(e) => {
                    // A bad URI or option in a request we can still identify: ERROR, session stays.
                    if let Ok(m) = herald_protocol::wamp::v2::decode_v2(ser, &payload)
                        && let (Some(req), Phase::Open(s)) = (m.request(), &phase)
                    {
                        s.error(m.type_code(), req.get(), e.v2_error_uri());
                        continue;
                    }
                    break Some(abort(&conn, e.v2_error_uri(), &e.to_string()));
                }
            };
            let next = match std::mem::replace(&mut phase, Phase::Hello(None)) {
                Phase::Hello(origin) => match hello(&hub, &conn, origin.as_deref(), msg) {
                    Ok(p) => {
                        phase = p;
                        Next::Continue
                    }
                    Err(frame) => Next::Close(Some(frame)),
                },
                Phase::Opening(mut o) => match (msg, o.pending.take()) {
                    (V2Msg::Authenticate { signature, .. }, Some(pending)) if o.answer.is_none() => {
                        let step = handshake::authenticate(&context(&o.app, &conn), pending, &signature);
                        match proceed(&hub, &conn, o, step) {
                            Ok(p) => {
                                phase = p;
                                Next::Continue
                            }
                            Err(frame) => Next::Close(Some(frame)),
                        }
                    }
                    (V2Msg::Abort { .. }, _) => Next::Close(None),
                    (other, _) => {
                        let m = format!("{} while authenticating", other.name());
                        Next::Close(Some(abort(&conn, reason::PROTOCOL_VIOLATION, &m)))
                    }
                },
                Phase::Open(mut s) => {
                    let next = s.handle(msg);
                    phase = Phase::Open(s);
                    next
                }
            };
            if !established && let Phase::Open(s) = &phase {
                established = true;
                let cfg = &s.app.config;
                keepalive.set_periods(
                    Duration::from_secs(cfg.activity_timeout.into()),
                    Duration::from_secs(cfg.pong_timeout.into()),
                );
                keepalive.seen(Instant::now());
            }
            timer.as_mut().reset(deadline(&phase, &keepalive));
            if let Next::Close(frame) = next {
                if let Some(f) = frame {
                    let _ = conn.outbox.push(f);
                }
                break Some(ws::encode_close(1000, ""));
            }
        };
        if let Phase::Open(mut s) = phase {
            s.leave();
        } else {
            hub.disconnect(&conn);
        }
        socket.close(close_frame, &conn.outbox, false).await;
    }
}

/// The facts a handshake step needs: fresh randomness and the time.
fn context<'a>(app: &'a App, conn: &Conn) -> handshake::Context<'a> {
    handshake::Context { app, session: conn.session, random: rand::random(), now: std::time::SystemTime::now() }
}

/// Acts on a handshake step: WELCOME, CHALLENGE, a question to the authenticator, or ABORT
/// (returned as the frame to close with).
fn proceed(hub: &Arc<Hub>, conn: &Arc<Conn>, mut o: Box<Opening>, step: Step) -> Result<Phase, bytes::Bytes> {
    match step {
        Step::Welcome(identity) => welcome(hub, conn, o.app, identity).map(Phase::Open),
        Step::Challenge(method, extra, pending) => {
            if let Some(f) = v2_frame(conn.wire, &V2Msg::Challenge { method: method.to_owned(), extra }) {
                let _ = conn.outbox.push(f);
            }
            o.pending = Some(pending);
            o.deadline = Instant::now() + challenge_timeout(&o.app);
            Ok(Phase::Opening(o))
        }
        Step::Ask(body, pending) => {
            let Some((url, within)) = handshake::authenticator(&o.app, &pending) else {
                return Err(abort(conn, handshake::AUTHENTICATION_FAILED, "authenticator unavailable"));
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (key, secret) = (o.app.config.key.clone(), o.app.config.secret.clone());
            let body = body.to_string().into_bytes();
            // Bounded by `within`; the answer is dropped if the session is gone by then.
            tokio::spawn(async move {
                let verdict = match crate::http::outbound::post_signed(&url, &key, &secret, body, within).await {
                    Ok(a) if a.status == hyper::StatusCode::OK => match serde_json::from_slice(&a.body) {
                        Ok(serde_json::Value::Object(map)) => Verdict::Accepted(map),
                        _ => Verdict::Unavailable,
                    },
                    Ok(a) if matches!(a.status.as_u16(), 401 | 403) => Verdict::Refused,
                    Ok(a) => {
                        tracing::warn!(status = %a.status, "WAMP dynamic authenticator answered with an error");
                        Verdict::Unavailable
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "WAMP dynamic authenticator unavailable");
                        Verdict::Unavailable
                    }
                };
                let _ = tx.send(verdict);
            });
            o.pending = Some(pending);
            o.answer = Some(rx);
            o.deadline = Instant::now() + within + challenge_timeout(&o.app);
            Ok(Phase::Opening(o))
        }
        Step::Abort(r) => Err(abort(conn, r.reason, &r.message)),
    }
}

fn challenge_timeout(app: &App) -> Duration {
    Duration::from_millis(app.config.wamp_auth.challenge_timeout_ms.unwrap_or(10_000))
}

/// The next timer deadline: the handshake's, or keep-alive's and the earliest call timeout.
fn deadline(phase: &Phase, keepalive: &KeepAlive) -> Instant {
    match phase {
        Phase::Hello(_) => keepalive.deadline(),
        Phase::Opening(o) => o.deadline.min(keepalive.deadline()),
        Phase::Open(s) => {
            s.timed_calls().iter().map(|(_, d)| *d).min().map_or(keepalive.deadline(), |d| d.min(keepalive.deadline()))
        }
    }
}

/// Whether `name` may be used as a Pusher event name by a WAMP publisher.
pub(crate) fn is_app_event_name(name: &str, max_len: usize) -> bool {
    !name.starts_with("pusher:") && !name.starts_with("pusher_internal:") && name.chars().count() <= max_len
}

/// ABORT with `reason`, queued in the outbox; the caller then closes the socket.
fn abort(conn: &Conn, reason: &str, message: &str) -> bytes::Bytes {
    let msg = V2Msg::Abort { details: Dict::new().with("message", message), reason: reason.to_owned() };
    if let Some(f) = v2_frame(conn.wire, &msg) {
        let _ = conn.outbox.push(f);
    }
    ws::encode_close(1000, "")
}

/// Handles the opening HELLO: the realm (app), its origin list, then authentication.
fn hello(hub: &Arc<Hub>, conn: &Arc<Conn>, origin: Option<&str>, msg: V2Msg) -> Result<Phase, bytes::Bytes> {
    let V2Msg::Hello { realm, details } = msg else {
        return Err(abort(conn, reason::PROTOCOL_VIOLATION, "the first message must be HELLO"));
    };
    // An app that is not a WAMP realm, or belongs to a profile that does not share it, looks
    // exactly like an unknown realm: nothing tells a client which app ids exist.
    let Some(app) = hub.apps().by_id(&realm).filter(|a| a.config.wamp && !a.config.profile_only).cloned() else {
        return Err(abort(conn, reason::NO_SUCH_REALM, &format!("no realm {realm:?}")));
    };
    if !herald_core::origin::allowed(&app.config.allowed_origins, origin) {
        return Err(abort(conn, reason::NOT_AUTHORIZED, "origin not allowed"));
    }
    if !app.config.enabled {
        return Err(abort(conn, reason::NOT_AUTHORIZED, "realm disabled"));
    }
    match handshake::hello(&context(&app, conn), &details) {
        // Most sessions open at once: no handshake state to allocate.
        Step::Welcome(identity) => welcome(hub, conn, app, identity).map(Phase::Open),
        step => {
            proceed(hub, conn, Box::new(Opening { app, pending: None, answer: None, deadline: Instant::now() }), step)
        }
    }
}

/// Sends WELCOME with the session's identity and opens the session.
fn welcome(hub: &Arc<Hub>, conn: &Arc<Conn>, app: Arc<App>, identity: Identity) -> Result<Session, bytes::Bytes> {
    let Some(slot) = app.try_connect() else {
        return Err(abort(conn, "wamp.error.system_overloaded", "too many connections"));
    };
    let mut details = welcome_details(AGENT);
    details.insert("authid", identity.authid.as_str());
    details.insert("authrole", identity.authrole.as_str());
    details.insert("authmethod", identity.authmethod);
    details.insert("authprovider", identity.authprovider);
    // The Pusher socket id, which an app's auth endpoint signs for `herald.pusher.authorize`.
    details.insert("authextra", Dict::new().with("socket_id", conn.socket_id.as_str()));
    let welcome = V2Msg::Welcome { session: Id::saturating(conn.session), details };
    if let Some(f) = v2_frame(conn.wire, &welcome) {
        let _ = conn.outbox.push(f);
    }
    Ok(Session {
        hub: Arc::clone(hub),
        app,
        conn: Arc::clone(conn),
        extras: (identity.authmethod != "anonymous")
            .then(|| Box::new(Extras { identity: Some(identity), ..Extras::default() })),
        subs: Vec::new(),
        _slot: slot,
    })
}

impl Session {
    fn send(&self, msg: &V2Msg) {
        if let Some(f) = v2_frame(self.conn.wire, msg) {
            let _ = self.conn.outbox.push(f);
        }
    }

    fn error(&self, request_type: u64, request: u64, error: &str) {
        self.send(&V2Msg::Error {
            request_type,
            request: Id::saturating(request),
            details: Dict::new(),
            error: error.to_owned(),
            payload: Payload::default(),
        });
    }

    fn handle(&mut self, msg: V2Msg) -> Next {
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
                match self.hub.register(&self.app, &self.conn, &procedure) {
                    Ok(reg) => self.send(&V2Msg::Registered { request, registration: Id::saturating(reg) }),
                    Err(e) => self.error(code::REGISTER, req, e.uri()),
                }
            }
            V2Msg::Unregister { request, registration } => {
                match self.hub.unregister(&self.app, &self.conn, registration.get()) {
                    Ok(()) => self.send(&V2Msg::Unregistered { request }),
                    Err(e) => self.error(code::UNREGISTER, request.get(), e.uri()),
                }
            }
            V2Msg::Call { request, options, procedure, payload } => {
                self.call(request.get(), &options, &procedure, payload);
            }
            V2Msg::Yield { request, payload, .. } => {
                self.hub.yield_result(&self.app, &self.conn, request.get(), payload);
            }
            V2Msg::Error { request_type: code::INVOCATION, request, error, payload, .. } => {
                self.hub.invocation_error(&self.app, &self.conn, request.get(), &error, payload);
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

    fn subscribe(&mut self, request: u64, options: &Dict, topic: &str) {
        let policy = match SubscribeOptions::from_dict(options) {
            Ok(o) => o.policy,
            Err(e) => return self.error(code::SUBSCRIBE, request, e.v2_error_uri()),
        };
        if self.allowed(Action::Subscribe, topic).is_none() {
            return self.refuse(code::SUBSCRIBE, request, "subscribe", "topic", topic);
        }
        if policy != MatchPolicy::Exact {
            if !self.pattern_allowed(topic) {
                return self.refuse(code::SUBSCRIBE, request, "subscribe", "topic pattern", topic);
            }
            let id = self.hub.subscribe_pattern(&self.app, &self.conn, policy, topic);
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
        let result = self.hub.subscribe(&self.app, &self.conn, &channel, member, |j| {
            joined_id = j.subscription;
            // Under the channel lock, so no EVENT of this subscription can precede it.
            let msg =
                V2Msg::Subscribed { request: Id::saturating(request), subscription: Id::saturating(j.subscription) };
            if let Some(f) = v2_frame(conn.wire, &msg) {
                let _ = conn.outbox.push(f);
            }
        });
        match result {
            Ok(()) => {
                // Most sessions hold one subscription: room for exactly one, not Vec's first 4.
                if self.subs.capacity() == 0 {
                    self.subs.reserve_exact(1);
                }
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

    fn unsubscribe(&mut self, request: u64, subscription: u64) {
        let Some(i) = self.subs.iter().position(|(id, _)| *id == subscription) else {
            return self.error(code::UNSUBSCRIBE, request, reason::NO_SUCH_SUBSCRIPTION);
        };
        let (id, sub) = self.subs.swap_remove(i);
        match sub {
            Sub::Exact(channel) => {
                self.hub.unsubscribe(&self.app, &self.conn, &channel);
            }
            Sub::Pattern => {
                self.hub.unsubscribe_pattern(&self.app, &self.conn, id);
            }
        }
        self.send(&V2Msg::Unsubscribed { request: Id::saturating(request) });
    }

    fn publish(&mut self, request: u64, options: &Dict, topic: String, payload: Payload) {
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
        if !is_app_event_name(&event, self.app.config.max_event_name_length) {
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
            }));
        let id = publication.id;
        self.hub.publish(&self.app, publication);
        if opts.acknowledge {
            self.send(&V2Msg::Published { request: Id::saturating(request), publication: Id::saturating(id) });
        }
    }

    fn call(&mut self, request: u64, options: &Dict, procedure: &str, payload: Payload) {
        let timeout = match CallOptions::from_dict(options) {
            Ok(o) => o.timeout_ms,
            Err(e) => return self.error(code::CALL, request, e.v2_error_uri()),
        };
        if procedure == AUTHORIZE {
            return self.authorize_channel(request, &payload);
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
        match self.hub.call(&self.app, &self.conn, request, procedure, payload, details) {
            Ok(invocation) => {
                if let Some(ms) = timeout {
                    let extras = self.extras.get_or_insert_with(Box::default);
                    extras.timed_calls.push((invocation, Instant::now() + Duration::from_millis(ms)));
                }
            }
            Err(e) => self.error(code::CALL, request, e.uri()),
        }
    }

    /// Fails this session's calls whose timeout passed.
    fn expire_calls(&mut self, now: Instant) {
        let hub = &self.hub;
        let app = &self.app;
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
    fn leave(&mut self) {
        for (_, sub) in self.subs.drain(..) {
            if let Sub::Exact(channel) = sub {
                self.hub.unsubscribe(&self.app, &self.conn, &channel);
            }
        }
        self.hub.leave_wamp(&self.app, &self.conn);
        self.hub.disconnect(&self.conn);
    }
}
