//! WebSocket upgrades: validate the handshake, answer `101`, and start the session task.
//!
//! hyper parses the HTTP request; once the response is sent we take the raw stream back from
//! hyper (`Upgraded::downcast`) so that an open socket keeps no HTTP state, and run our own
//! frame codec on it. Pusher problems detectable from the URL (unknown key, disabled app,
//! protocol version) are reported the way pusher-js understands: the upgrade succeeds and the
//! socket is closed at once with the Pusher close code.
//!
//! Two refusals come before any upgrade, as plain HTTP, because no session should exist for
//! them at all: an `Origin` the app's `allowed_origins` does not admit (403), and a client
//! address over its per-address limits (429, `listen/per_ip.rs`).

mod echo;
pub(crate) mod socket;

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use herald_core::{App, Hub};
use herald_protocol::pusher::close_code::CloseCode;
use herald_protocol::pusher::server_msg;
use herald_protocol::ws as codec;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

use crate::http::response::{Body, text_response};
use crate::http::state::HttpState;
use crate::listen::forwarded::ClientAddr;
use crate::listen::per_ip::{PerIpRefusal, PerIpSlot};
use crate::profile::espo::session::EspoPolicy;
use crate::runtime::Serves;
use crate::session::driver::Session;
use crate::session::pusher::Pusher;
use crate::session::wamp1::{Anonymous, V1, Wamp1};
use crate::session::wamp2::Wamp2;
use crate::tls::lean::Handover;
use herald_protocol::wamp::Serializer;
use socket::Socket;

/// Whether the request asks for a WebSocket upgrade.
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        req.headers()
            .get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// What the URL of an upgrade resolves to.
enum Target {
    /// A Pusher session for this app.
    Session(Arc<App>),
    /// The conformance echo endpoint (test builds of the config only).
    Echo,
    /// A WAMP v1 session for this app.
    Wamp1(Arc<App>),
    /// A WAMP v2 session; HELLO names the realm (app id), whose origin list is checked then.
    Wamp2(Serializer, Option<Box<str>>),
    /// An EspoCRM session: the profile, its app and the upgrade's query (credentials).
    Espo(crate::profile::espo::EspoListener, Arc<App>, String),
    /// Accept, then close at once with this code.
    Refuse(CloseCode),
}

/// The subprotocols a client offers, in its order of preference.
fn offered_protocols<B>(req: &Request<B>) -> Vec<String> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Answers a WebSocket upgrade request and spawns its session on the server's tracker.
pub(crate) fn upgrade(state: &HttpState, req: Request<hyper::body::Incoming>) -> Response<Body> {
    if req.method() != hyper::Method::GET {
        return text_response(StatusCode::METHOD_NOT_ALLOWED, "WebSocket upgrades use GET");
    }
    // RFC 6455 §4.2.1: HTTP/1.1 or later, a Host, version 13 and a key of 16 base64 bytes.
    let request_ok = req.version() >= hyper::Version::HTTP_11 && req.headers().contains_key(header::HOST);
    let version_ok = req.headers().get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY).filter(|k| codec::is_valid_key(k.as_bytes()));
    let Some(key) = key.filter(|_| version_ok && request_ok) else {
        let mut resp = text_response(
            StatusCode::BAD_REQUEST,
            "A WebSocket upgrade needs HTTP/1.1, Host, Sec-WebSocket-Version: 13 and a valid Sec-WebSocket-Key",
        );
        resp.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return resp;
    };
    let accept = codec::accept_key(key.as_bytes());
    let offered = offered_protocols(&req);
    // A header that is not text cannot match an allow-list entry; it must not pass as absent.
    let origin: Option<Box<str>> = req.headers().get(header::ORIGIN).map(|v| v.to_str().unwrap_or("").into());
    let path = req.uri().path();
    let (target, selected): (Target, Option<&'static str>) = match &*state.profile {
        Serves::Wamp1 { app, strict_subprotocol } => {
            let wamp = offered.iter().any(|p| p == "wamp");
            if *strict_subprotocol && !wamp {
                return wamp_required();
            }
            let Some(app) = state.hub.app_by_id(app) else {
                return text_response(StatusCode::NOT_FOUND, "Unknown app");
            };
            (Target::Wamp1(app), wamp.then_some("wamp"))
        }
        Serves::Espo(espo) => {
            // EspoCRM runs Ratchet's strict WsServer.
            if !offered.iter().any(|p| p == "wamp") {
                return wamp_required();
            }
            let Some(app) = state.hub.app_by_id(espo.app()) else {
                return text_response(StatusCode::NOT_FOUND, "Unknown app");
            };
            let query = req.uri().query().unwrap_or("").to_owned();
            (Target::Espo(espo.clone(), app, query), Some("wamp"))
        }
        // Oro listeners upgrade in the edge's raw-head mode and never reach hyper.
        Serves::Oro(_) => return text_response(StatusCode::NOT_FOUND, "Not found"),
        Serves::Pusher if state.echo && path == "/echo" => (Target::Echo, None),
        Serves::Pusher if path.starts_with("/app/") => {
            (resolve(&state.hub, path, req.uri().query().unwrap_or("")), None)
        }
        Serves::Pusher => match offered.iter().find_map(|p| Serializer::from_subprotocol(p)) {
            Some(ser) => (Target::Wamp2(ser, origin.clone()), Some(ser.subprotocol())),
            None => (resolve(&state.hub, path, req.uri().query().unwrap_or("")), None),
        },
    };
    if let Err(refused) = check_origin(&state.hub, &target, origin.as_deref()) {
        return text_response(StatusCode::FORBIDDEN, refused.text());
    }
    // Counted last: only an upgrade that will happen takes a place.
    let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
    let slot = match client.map(|ip| state.edge.status.per_ip.acquire(ip)) {
        Some(Err(refusal)) => {
            tracing::debug!(client = ?client, %refusal, "upgrade refused by the per-address limits");
            return too_many(refusal);
        }
        Some(Ok(slot)) => slot,
        None => None,
    };
    let hub = Arc::clone(&state.hub);
    let tracker = state.tracker.clone();
    state.tracker.spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => start_session(&tracker, hub, target, upgraded, slot),
            // The slot, if any, is released here: the socket never opened.
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });

    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = selected {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
    }
    resp
}

/// Starts the session in a task of its own, typed by the concrete stream.
///
/// The upgrade task ends here. A task is as large as the largest state of its future, so awaiting
/// the session inside the upgrade task would make every connection carry hyper's request, the
/// largest stream type (TLS, ~1.2 KB of rustls state in `Parts`) and the session at once; a fresh
/// task per stream type holds only the session it runs (idle memory: docs/reports/benchmarks.md measures it
/// per connection). A TLS 1.3 connection leaves rustls here for the lean record layer
/// (`tls/lean.rs`), which holds no buffer while idle.
fn start_session(
    tracker: &TaskTracker,
    hub: Arc<Hub>,
    target: Target,
    upgraded: hyper::upgrade::Upgraded,
    slot: Option<PerIpSlot>,
) {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            spawn_session(tracker, hub, target, parts.io.into_inner(), parts.read_buf, slot);
        }
        // A TLS listener hands hyper the rustls stream; take it back the same way.
        Err(upgraded) => match upgraded.downcast::<TokioIo<crate::tls::TlsStream>>() {
            // Its records continue on the lean layer when nothing can be lost by the switch.
            Ok(parts) => match crate::tls::lean::take_over(parts.io.into_inner(), parts.read_buf) {
                Some(Handover::Lean(io, leftover)) => spawn_session(tracker, hub, target, io, leftover, slot),
                Some(Handover::Rustls(io, leftover)) => spawn_session(tracker, hub, target, io, leftover, slot),
                None => {}
            },
            Err(upgraded) => {
                spawn_session(tracker, hub, target, TokioIo::new(upgraded), Bytes::new(), slot);
            }
        },
    }
}

/// Why an upgrade is refused for where it comes from (answered with 403).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
enum OriginRefused {
    /// The page's origin is not in the app's (or any WAMP realm's) `allowed_origins`.
    #[error("Origin not allowed")]
    NotAllowed,
    /// WAMP v2 was asked for by a browser page, and no app is a WAMP realm.
    #[error("WAMP v2 is not enabled on this server")]
    NoRealm,
}

impl OriginRefused {
    /// The response body.
    fn text(self) -> &'static str {
        match self {
            Self::NotAllowed => "Origin not allowed",
            Self::NoRealm => "WAMP v2 is not enabled on this server",
        }
    }
}

/// Refuses the upgrade when the page's `Origin` may not connect to the target.
///
/// A Pusher, WAMP v1 or EspoCRM target knows its app. A WAMP v2 target learns its realm only
/// from HELLO (where that realm's own list is checked): here it is refused only when no WAMP
/// app at all would admit the origin, so a foreign page never gets a session to send HELLO on.
fn check_origin(hub: &Hub, target: &Target, origin: Option<&str>) -> Result<(), OriginRefused> {
    use std::sync::atomic::Ordering::Relaxed;
    let refuse = |counter: &std::sync::atomic::AtomicU64| {
        counter.fetch_add(1, Relaxed);
        tracing::debug!(origin, "upgrade refused: origin not allowed");
        Err(OriginRefused::NotAllowed)
    };
    match target {
        Target::Session(app) | Target::Wamp1(app) | Target::Espo(_, app, _) => {
            if herald_core::origin::allowed(&app.config.allowed_origins, origin) {
                Ok(())
            } else {
                refuse(&app.stats.origin_refused)
            }
        }
        // Without an Origin the client is no browser page: HELLO names its realm, and an
        // unknown or closed realm gets ABORT `no_such_realm` there, like every other.
        Target::Wamp2(..) if origin.is_none() => Ok(()),
        Target::Wamp2(..) => {
            let apps = hub.apps();
            let mut realms = apps.iter().filter(|a| a.config.wamp && !a.config.profile_only).peekable();
            if realms.peek().is_none() {
                return Err(OriginRefused::NoRealm);
            }
            if realms.any(|a| herald_core::origin::allowed(&a.config.allowed_origins, origin)) {
                Ok(())
            } else {
                refuse(&hub.stats().origin_refused_no_realm)
            }
        }
        Target::Echo | Target::Refuse(_) => Ok(()),
    }
}

/// The 426 answer of Ratchet's strict WsServer to an upgrade that does not offer `wamp`.
fn wamp_required() -> Response<Body> {
    let mut resp = text_response(StatusCode::UPGRADE_REQUIRED, "This endpoint requires the wamp subprotocol");
    resp.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("wamp"));
    resp
}

/// The 429 answer to a client over its per-address limits.
fn too_many(refusal: PerIpRefusal) -> Response<Body> {
    let (text, retry_after) = match refusal {
        PerIpRefusal::TooMany => ("Too many connections from your address", None),
        PerIpRefusal::TooFast { retry_after } => ("Too many new connections from your address", Some(retry_after)),
    };
    let mut resp = text_response(StatusCode::TOO_MANY_REQUESTS, text);
    if let Some(secs) = retry_after {
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Maps `/app/{key}?protocol=7&client=..&version=..` to an app or a Pusher close code
/// (the connection URL and close codes of the Pusher Channels Protocol page).
fn resolve(hub: &Hub, path: &str, query: &str) -> Target {
    let Some(key) = path.strip_prefix("/app/").filter(|k| !k.is_empty() && !k.contains('/')) else {
        return Target::Refuse(CloseCode::PathNotFound);
    };
    let mut protocol = None;
    let mut version = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "protocol" => protocol = Some(url_decoded(v)),
            "version" => version = Some(url_decoded(v)),
            _ => {}
        }
    }
    match protocol.as_deref().map(str::parse::<u32>) {
        None => return Target::Refuse(CloseCode::NoProtocol),
        Some(Ok(p)) if p >= 7 => {}
        Some(_) => return Target::Refuse(CloseCode::UnsupportedProtocol),
    }
    let version_ok = |v: &str| {
        !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    };
    if version.as_deref().is_some_and(|v| !version_ok(v)) {
        return Target::Refuse(CloseCode::InvalidVersion);
    }
    match hub.app_by_key(key) {
        // A profile's app is reachable only through the profile's listeners unless shared.
        None => Target::Refuse(CloseCode::AppNotFound),
        Some(app) if app.config.profile_only => Target::Refuse(CloseCode::AppNotFound),
        Some(app) if !app.config.enabled => Target::Refuse(CloseCode::AppDisabled),
        Some(app) => Target::Session(app),
    }
}

/// A URL-encoded query value, decoded (`8.4.0%2Bbuild` is `8.4.0+build`). A value that does
/// not decode to UTF-8 is kept as sent, and the checks of [`resolve`] then refuse it.
fn url_decoded(v: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(v).decode_utf8().unwrap_or(Cow::Borrowed(v))
}

/// Spawns the session for an upgraded stream, or the refusal with a close code.
///
/// Each session future is the whole task: no wrapper future around it whose size would be
/// the largest of all session kinds.
fn spawn_session<S>(
    tracker: &TaskTracker,
    hub: Arc<Hub>,
    target: Target,
    io: S,
    leftover: Bytes,
    slot: Option<PerIpSlot>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let max_message = match &target {
        Target::Session(app) | Target::Wamp1(app) | Target::Espo(_, app, _) => app.config.max_message_bytes,
        // The realm is unknown until HELLO: the largest limit of any app applies.
        Target::Wamp2(..) => hub.apps().iter().map(|a| a.config.max_message_bytes).max().unwrap_or(64 << 10),
        // Large enough for the RFC test suites' biggest messages (16 MiB).
        Target::Echo => 20 << 20,
        Target::Refuse(_) => 4096,
    };
    let socket = Socket::new(io, leftover, max_message);
    let held = slot;
    match target {
        Target::Session(app) => match app.try_connect() {
            Some(place) => spawn_held(tracker, held, Session::new(socket, Pusher::new(hub, place))),
            None => spawn_held(tracker, held, refuse(socket, CloseCode::OverQuota)),
        },
        Target::Echo => spawn_held(tracker, held, Session::new(socket, echo::Echo::new())),
        // A disabled app serves no session: a policy-violation close, no WELCOME.
        Target::Wamp1(app) if !app.config.enabled => {
            spawn_held(tracker, held, socket.refuse(Some(codec::encode_close(1008, "app disabled"))));
        }
        // Over the app's max_connections: 1013 "try again later".
        Target::Wamp1(app) => match app.try_connect() {
            None => spawn_held(tracker, held, socket.refuse(Some(codec::encode_close(1013, "over capacity")))),
            Some(place) => {
                let adapter = Wamp1::new(V1::new(hub, place), Anonymous::new());
                spawn_held(tracker, held, Session::new(socket, adapter));
            }
        },
        Target::Wamp2(ser, origin) => {
            let adapter = Wamp2::new(hub, ser, origin, tokio::time::Instant::now());
            spawn_held(tracker, held, Session::new(socket, adapter));
        }
        Target::Espo(espo, app, query) => match app.try_connect() {
            None => spawn_held(tracker, held, socket.refuse(Some(codec::encode_close(1013, "over capacity")))),
            Some(place) => {
                let adapter = Wamp1::new(V1::new(hub, place), EspoPolicy::new(espo.0, &query));
                spawn_held(tracker, held, Session::new(socket, adapter));
            }
        },
        Target::Refuse(code) => spawn_held(tracker, held, refuse(socket, code)),
    }
}

/// Spawns a session that keeps its per-address place until it ends. Without a place (no
/// limit configured) the session future is the task itself, as before.
fn spawn_held<F>(tracker: &TaskTracker, held: Option<PerIpSlot>, session: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match held {
        None => {
            tracker.spawn(session);
        }
        Some(place) => {
            tracker.spawn(async move {
                session.await;
                drop(place);
            });
        }
    }
}

/// Sends `pusher:error` and the close frame with `code`, then closes.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut socket: Socket<S>, code: CloseCode) {
    tracing::debug!(code = code.code(), "refusing pusher connection");
    socket.queue(codec::encode_text(&server_msg::error(Some(code.code()), code.reason())));
    socket.refuse(Some(crate::session::pusher::close(code))).await;
}
