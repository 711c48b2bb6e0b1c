//! A WAMP v2 session (Basic Profile router: broker and dealer): the owner task of one socket.
//!
//! HELLO picks the realm (= app id). Subscriptions and publications go through the hub, so WAMP
//! topics and Pusher channels of one app are the same channels. Replies are queued in the
//! connection's outbox, in order with the events the hub pushes there. Protocol violations end
//! the session with ABORT; a bad request (URI, option, authorization) gets an ERROR and the
//! session carries on.

use std::sync::Arc;
use std::time::Duration;

use herald_core::hub::dealer::v2_frame;
use herald_core::outbox::CloseRequest;
use herald_core::{App, Conn, Hub, Wire};
use herald_protocol::wamp::uri::UriRule;
use herald_protocol::wamp::v2::{Dict, Id, V2Msg, reason, welcome_details};
use herald_protocol::wamp::{Serializer, parse_v2};
use herald_protocol::ws::{self, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::keepalive::{KeepAlive, Tick};
use handshake::{Identity, Pending, Step, Verdict};

mod access;
mod handshake;
mod session;

use super::socket::{Event, Socket};
use session::{Extras, Session};

/// How long a client may take to send HELLO.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// What herald calls itself in WELCOME.
const AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

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
