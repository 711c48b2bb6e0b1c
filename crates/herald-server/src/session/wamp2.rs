//! A WAMP v2 session (Basic Profile router: broker and dealer): the adapter the session driver
//! runs for one WAMP v2 WebSocket.
//!
//! HELLO picks the realm (= app id). Subscriptions and publications go through the hub, so WAMP
//! topics and Pusher channels of one app are the same channels. Replies are queued in the
//! connection's outbox, in order with the events the hub pushes there. Protocol violations end
//! the session with ABORT; a bad request (URI, option, authorization) gets an ERROR and the
//! session carries on.

use std::sync::Arc;
use std::time::Duration;

use herald_core::hub::dealer::v2_frame;
use herald_core::{App, Conn, Hub, Outbox, Wire};
use herald_protocol::wamp::uri::UriRule;
use herald_protocol::wamp::v2::{Dict, Id, V2Msg, reason, welcome_details};
use herald_protocol::wamp::{Serializer, parse_v2};
use herald_protocol::ws;
use tokio::time::Instant;

use super::close::{CloseReason, Goodbye};
use super::driver::{Adapter, Data, Flow, Io};
use super::keepalive::Plan;
use handshake::{Identity, Pending, Step, Verdict};

mod access;
pub(crate) mod handshake;
mod session;

use session::{Extras, Session};

/// How long a client may take to send HELLO.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// What herald calls itself in WELCOME.
const AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// A handshake waiting for AUTHENTICATE or for the dynamic authenticator.
struct Opening {
    app: Arc<App>,
    pending: Option<Pending>,
    /// Whether the dynamic authenticator was asked and has not answered yet.
    asking: bool,
    /// When the client's AUTHENTICATE (or the authenticator's answer) is too late.
    deadline: Instant,
}

/// Where the session is.
enum Phase {
    /// Waiting for HELLO until the deadline, with the upgrade's `Origin` (kept here, where it
    /// takes no room once the session is open).
    Hello(Instant, Option<Box<str>>),
    /// HELLO received, authentication under way; boxed: most sockets never have one.
    Opening(Box<Opening>),
    /// WELCOME sent.
    Open(Session),
    /// Closing: nothing more is handled.
    Gone,
}

/// How the session should go on after a message.
enum Next {
    Continue,
    /// Send this frame, then close the socket.
    Close(Option<bytes::Bytes>),
}

/// The adapter of one WAMP v2 session.
pub(crate) struct Wamp2 {
    hub: Arc<Hub>,
    /// Its wire names the serializer.
    conn: Arc<Conn>,
    phase: Phase,
}

impl Wamp2 {
    /// A session speaking `ser`, upgraded from a page at `origin`; HELLO is due within
    /// `HELLO_TIMEOUT` of `now`.
    pub(crate) fn new(hub: Arc<Hub>, ser: Serializer, origin: Option<Box<str>>, now: Instant) -> Self {
        let conn = hub.connect(Wire::WampV2(ser));
        Self { hub, conn, phase: Phase::Hello(now + HELLO_TIMEOUT, origin) }
    }

    /// Handles one decoded message in the current phase.
    fn on_message(&mut self, msg: V2Msg, io: &mut Io<'_, Verdict>) -> Flow {
        let (hub, conn) = (&self.hub, &self.conn);
        let next = match std::mem::replace(&mut self.phase, Phase::Gone) {
            Phase::Hello(_, origin) => match hello(hub, conn, origin.as_deref(), msg, io) {
                Ok(p) => {
                    self.phase = p;
                    Next::Continue
                }
                Err(frame) => return close_with(frame),
            },
            Phase::Opening(mut o) => match (msg, o.pending.take()) {
                (V2Msg::Authenticate { signature, .. }, Some(pending)) if !o.asking => {
                    let step = handshake::authenticate(&context(&o.app, conn), pending, &signature);
                    match proceed(hub, conn, o, step, io) {
                        Ok(p) => {
                            self.phase = p;
                            Next::Continue
                        }
                        Err(frame) => return close_with(frame),
                    }
                }
                (V2Msg::Abort { .. }, _) => Next::Close(None),
                (other, _) => {
                    let m = format!("{} while authenticating", other.name());
                    Next::Close(Some(abort(conn, reason::PROTOCOL_VIOLATION, &m)))
                }
            },
            Phase::Open(mut s) => {
                let next = s.handle(msg);
                self.phase = Phase::Open(s);
                next
            }
            Phase::Gone => Next::Close(None),
        };
        match next {
            Next::Continue => Flow::Continue,
            Next::Close(frame) => {
                if let Some(f) = frame {
                    let _ = conn.outbox.push(f);
                }
                close_with(ws::encode_close(1000, ""))
            }
        }
    }
}

/// Ends the session with `frame` after what is queued.
fn close_with(frame: bytes::Bytes) -> Flow {
    Flow::Close(CloseReason::Protocol(Some(frame)))
}

impl Adapter for Wamp2 {
    type Done = Verdict;

    fn outbox(&self) -> &Outbox {
        &self.conn.outbox
    }

    fn keepalive(&self) -> Plan {
        match &self.phase {
            Phase::Open(s) => Plan::silence(s.app().config.activity_timeout, s.app().config.pong_timeout),
            // The handshake has deadlines of its own.
            Phase::Hello(..) | Phase::Opening(_) | Phase::Gone => Plan::Off,
        }
    }

    fn open(&mut self, _io: &mut Io<'_, Verdict>) -> Flow {
        Flow::Continue
    }

    fn on_data(&mut self, data: Data, io: &mut Io<'_, Verdict>) -> Flow {
        let ser = match self.conn.wire {
            Wire::WampV2(ser) => ser,
            // Every connection of this adapter is made as WAMP v2 in `Wamp2::new`.
            Wire::Pusher | Wire::WampV1 => Serializer::Json,
        };
        if let Phase::Open(s) = &self.phase {
            s.app().stats.message_in(herald_core::stats::Protocol::WampV2);
        }
        let payload = match data {
            Data::Text(b) if ser == Serializer::Json => b,
            Data::Binary(b) if ser == Serializer::MsgPack => b,
            Data::Text(_) | Data::Binary(_) => {
                let m = "frame type does not match the serializer";
                return close_with(abort(&self.conn, reason::PROTOCOL_VIOLATION, m));
            }
        };
        let open = matches!(self.phase, Phase::Open(_));
        let parsed = parse_v2(ser, &payload).and_then(|m| m.check_uris(UriRule::Loose).map(|()| m));
        match parsed {
            Ok(msg) => self.on_message(msg, io),
            Err(e) if e.is_protocol_violation() || !open => {
                close_with(abort(&self.conn, e.v2_error_uri(), &e.to_string()))
            }
            Err(e) => {
                // A bad URI or option in a request we can still identify: ERROR, session stays.
                if let Ok(m) = herald_protocol::wamp::v2::decode_v2(ser, &payload)
                    && let (Some(req), Phase::Open(s)) = (m.request(), &self.phase)
                {
                    s.error(m.type_code(), req.get(), e.v2_error_uri());
                    return Flow::Continue;
                }
                close_with(abort(&self.conn, e.v2_error_uri(), &e.to_string()))
            }
        }
    }

    fn on_done(&mut self, verdict: Verdict, io: &mut Io<'_, Verdict>) -> Flow {
        let Phase::Opening(mut o) = std::mem::replace(&mut self.phase, Phase::Gone) else { return Flow::Continue };
        o.asking = false;
        let Some(pending) = o.pending.take() else { return Flow::Continue };
        let step = handshake::answered(&context(&o.app, &self.conn), pending, verdict);
        match proceed(&self.hub, &self.conn, o, step, io) {
            Ok(p) => {
                self.phase = p;
                Flow::Continue
            }
            Err(frame) => close_with(frame),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Hello(at, _) => Some(*at),
            Phase::Opening(o) => Some(o.deadline),
            Phase::Open(s) => s.timed_calls().iter().map(|(_, d)| *d).min(),
            Phase::Gone => None,
        }
    }

    fn on_deadline(&mut self, io: &mut Io<'_, Verdict>) -> Flow {
        match &mut self.phase {
            // No HELLO in time.
            Phase::Hello(..) => close_with(ws::encode_close(1001, "timeout")),
            Phase::Opening(_) => close_with(abort(&self.conn, handshake::AUTHENTICATION_FAILED, "challenge expired")),
            Phase::Open(s) => {
                s.expire_calls(io.now);
                Flow::Continue
            }
            Phase::Gone => Flow::Continue,
        }
    }

    fn goodbye(&mut self, reason: CloseReason, io: &mut Io<'_, Verdict>) -> Goodbye {
        let bye = |why: &str, io: &mut Io<'_, Verdict>| {
            let msg = V2Msg::Goodbye { details: Dict::new(), reason: why.into() };
            if let Some(f) = v2_frame(self.conn.wire, &msg) {
                io.reply(f);
            }
        };
        let goodbye = match reason {
            CloseReason::ClientClosed(_) => Goodbye::with(ws::encode_close(1000, "")),
            CloseReason::Violation(e) => Goodbye::with(ws::encode_close(e.close_code(), &e.to_string())),
            CloseReason::Gone => Goodbye::silent(),
            CloseReason::SlowConsumer => Goodbye::with(ws::encode_close(1008, "slow consumer")),
            CloseReason::Terminated => {
                bye(reason::KILLED, io);
                Goodbye::with(ws::encode_close(1000, ""))
            }
            CloseReason::Shutdown => {
                bye(reason::SYSTEM_SHUTDOWN, io);
                Goodbye::with(ws::encode_close(1001, "server shutting down"))
            }
            CloseReason::Unresponsive => Goodbye::with(ws::encode_close(1001, "timeout")),
            // The realm is gone or closed: the session ends as a killed one does.
            CloseReason::AppRemoved | CloseReason::AppDisabled => {
                bye(reason::KILLED, io);
                Goodbye::with(ws::encode_close(1000, ""))
            }
            CloseReason::Protocol(frame) => Goodbye { frame, discard_backlog: false },
        };
        if let Phase::Open(s) = &self.phase {
            crate::dashboard::tap::closed(s.app(), self.conn.socket_id.as_str(), goodbye.frame.as_ref());
        }
        goodbye
    }

    fn leave(&mut self) {
        if let Phase::Open(s) = &mut self.phase {
            s.leave();
        } else {
            self.hub.disconnect(&self.conn);
        }
    }
}

/// The facts a handshake step needs: fresh randomness and the time.
fn context<'a>(app: &'a App, conn: &Conn) -> handshake::Context<'a> {
    handshake::Context { app, session: conn.session, random: rand::random(), now: std::time::SystemTime::now() }
}

/// Acts on a handshake step: WELCOME, CHALLENGE, a question to the authenticator, or ABORT
/// (returned as the frame to close with).
fn proceed(
    hub: &Arc<Hub>,
    conn: &Arc<Conn>,
    mut o: Box<Opening>,
    step: Step,
    io: &mut Io<'_, Verdict>,
) -> Result<Phase, bytes::Bytes> {
    match step {
        Step::Welcome(identity) => welcome(hub, conn, o.app, identity).map(Phase::Open),
        Step::Challenge(method, extra, pending) => {
            if let Some(f) = v2_frame(conn.wire, &V2Msg::Challenge { method: method.to_owned(), extra }) {
                let _ = conn.outbox.push(f);
            }
            o.pending = Some(pending);
            o.deadline = io.now + challenge_timeout(&o.app);
            Ok(Phase::Opening(o))
        }
        Step::Ask(body, pending) => {
            let Some((url, within)) = handshake::authenticator(&o.app, &pending) else {
                return Err(abort(conn, handshake::AUTHENTICATION_FAILED, "authenticator unavailable"));
            };
            let (key, secret) = (o.app.config.key.clone(), o.app.config.secret.clone());
            let body = body.to_string().into_bytes();
            // Bounded by `within`, and aborted if the session is gone first.
            io.spawn(async move {
                match crate::http::outbound::post_signed(&url, &key, &secret, body, within).await {
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
                }
            });
            o.pending = Some(pending);
            o.asking = true;
            o.deadline = io.now + within + challenge_timeout(&o.app);
            Ok(Phase::Opening(o))
        }
        Step::Abort(r) => Err(abort(conn, r.reason, &r.message)),
    }
}

fn challenge_timeout(app: &App) -> Duration {
    Duration::from_millis(app.config.wamp_auth.challenge_timeout_ms.unwrap_or(10_000))
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
fn hello(
    hub: &Arc<Hub>,
    conn: &Arc<Conn>,
    origin: Option<&str>,
    msg: V2Msg,
    io: &mut Io<'_, Verdict>,
) -> Result<Phase, bytes::Bytes> {
    let V2Msg::Hello { realm, details } = msg else {
        return Err(abort(conn, reason::PROTOCOL_VIOLATION, "the first message must be HELLO"));
    };
    // An app that is not a WAMP realm, or belongs to a profile that does not share it, looks
    // exactly like an unknown realm: nothing tells a client which app ids exist.
    let Some(app) = hub.app_by_id(&realm).filter(|a| a.config.wamp && !a.config.profile_only) else {
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
            let opening = Box::new(Opening { app, pending: None, asking: false, deadline: io.now });
            proceed(hub, conn, opening, step, io)
        }
    }
}

/// Sends WELCOME with the session's identity and opens the session.
fn welcome(hub: &Arc<Hub>, conn: &Arc<Conn>, app: Arc<App>, identity: Identity) -> Result<Session, bytes::Bytes> {
    let Some(slot) = app.try_connect() else {
        return Err(abort(conn, "wamp.error.system_overloaded", "too many connections"));
    };
    slot.attach(conn);
    let mut details = welcome_details(AGENT);
    details.insert("authid", identity.authid.as_str());
    details.insert("authrole", identity.authrole.as_str());
    details.insert("authmethod", identity.authmethod);
    details.insert("authprovider", identity.authprovider);
    // The Pusher socket id, which an app's auth endpoint signs for `herald.pusher.authorize`.
    details.insert("authextra", Dict::new().with("socket_id", conn.socket_id.as_str()));
    let welcome = V2Msg::Welcome { session: Id::saturating(conn.session), details };
    crate::dashboard::tap::opened(&app, conn.socket_id.as_str(), "wamp2");
    if let Some(f) = v2_frame(conn.wire, &welcome) {
        let _ = conn.outbox.push(f);
    }
    Ok(Session {
        hub: Arc::clone(hub),
        conn: Arc::clone(conn),
        extras: (identity.authmethod != "anonymous")
            .then(|| Box::new(Extras { identity: Some(identity), ..Extras::default() })),
        subs: Vec::new(),
        slot,
    })
}
