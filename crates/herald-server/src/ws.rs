//! WebSocket upgrades: validate the handshake, answer `101`, and start the session task.
//!
//! hyper parses the HTTP request; once the response is sent we take the raw stream back from
//! hyper (`Upgraded::downcast`) so that an open socket keeps no HTTP state, and run our own
//! frame codec on it. Pusher problems detectable from the URL (unknown key, disabled app,
//! protocol version) are reported the way pusher-js understands: the upgrade succeeds and the
//! socket is closed at once with the Pusher close code.

mod echo;
mod keepalive;
mod pusher;
mod rate;
pub(crate) mod socket;
mod wamp1;
mod wamp2;

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

use crate::config::Profile;
use crate::http::{Body, HttpState, text_response};
use herald_protocol::wamp::Serializer;
use socket::Socket;

/// Whether the request asks for a WebSocket upgrade.
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
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
    Espo(crate::config::EspoListener, Arc<App>, String),
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
        let mut resp = text_response(StatusCode::BAD_REQUEST, "A WebSocket upgrade needs HTTP/1.1, Host, Sec-WebSocket-Version: 13 and a valid Sec-WebSocket-Key");
        resp.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return resp;
    };
    let accept = codec::accept_key(key.as_bytes());
    let offered = offered_protocols(&req);
    let path = req.uri().path();
    let (target, selected): (Target, Option<&'static str>) = match &*state.profile {
        Profile::Wamp1 { app, strict_subprotocol } => {
            let wamp = offered.iter().any(|p| p == "wamp");
            if *strict_subprotocol && !wamp {
                // Ratchet's strict WsServer answers 426 when `wamp` is not offered (spec E2).
                let mut resp = text_response(StatusCode::UPGRADE_REQUIRED, "This endpoint requires the wamp subprotocol");
                resp.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("wamp"));
                return resp;
            }
            let Some(app) = state.hub.apps().by_id(app) else {
                return text_response(StatusCode::NOT_FOUND, "Unknown app");
            };
            (Target::Wamp1(Arc::clone(app)), wamp.then_some("wamp"))
        }
        Profile::Espo(espo) => {
            // Ratchet's strict WsServer (spec E2): no `wamp` offered, no upgrade.
            if !offered.iter().any(|p| p == "wamp") {
                let mut resp = text_response(StatusCode::UPGRADE_REQUIRED, "This endpoint requires the wamp subprotocol");
                resp.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("wamp"));
                return resp;
            }
            let Some(app) = state.hub.apps().by_id(espo.app()) else {
                return text_response(StatusCode::NOT_FOUND, "Unknown app");
            };
            let query = req.uri().query().unwrap_or("").to_owned();
            (Target::Espo(espo.clone(), Arc::clone(app), query), Some("wamp"))
        }
        // Oro listeners run their own accept loop and never reach hyper.
        Profile::Oro(_) => return text_response(StatusCode::NOT_FOUND, "Not found"),
        Profile::Pusher if state.echo && path == "/echo" => (Target::Echo, None),
        Profile::Pusher if path.starts_with("/app/") => {
            (resolve(&state.hub, path, req.uri().query().unwrap_or("")), None)
        }
        Profile::Pusher => match offered.iter().find_map(|p| Serializer::from_subprotocol(p)) {
            Some(ser) => {
                let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(Box::from);
                (Target::Wamp2(ser, origin), Some(ser.subprotocol()))
            }
            None => (resolve(&state.hub, path, req.uri().query().unwrap_or("")), None),
        },
    };
    let hub = Arc::clone(&state.hub);
    let tracker = state.tracker.clone();
    state.tracker.spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => start_session(&tracker, hub, target, upgraded),
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
/// The upgrade task ends here. A task is as large as the largest state of its future, so
/// awaiting the session inside the upgrade task would make every connection carry hyper's
/// request, the largest stream type (TLS, ~1.2 KB of rustls state in `Parts`) and the session at
/// once; a fresh task per stream type holds only the session it runs (idle memory, issue 3).
fn start_session(tracker: &TaskTracker, hub: Arc<Hub>, target: Target, upgraded: hyper::upgrade::Upgraded) {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            spawn_session(tracker, hub, target, parts.io.into_inner(), parts.read_buf);
        }
        // A TLS listener hands hyper the rustls stream; take it back the same way.
        Err(upgraded) => match upgraded.downcast::<TokioIo<crate::listen::TlsStream>>() {
            Ok(parts) => {
                spawn_session(tracker, hub, target, parts.io.into_inner(), parts.read_buf);
            }
            Err(upgraded) => {
                spawn_session(tracker, hub, target, TokioIo::new(upgraded), Bytes::new());
            }
        },
    }
}

/// Maps `/app/{key}?protocol=7&client=..&version=..` to an app or a Pusher close code
/// (pusher-protocol.md §1-2).
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
    match hub.apps().by_key(key) {
        // A profile's app is reachable only through the profile's listeners unless shared.
        None => Target::Refuse(CloseCode::AppNotFound),
        Some(app) if app.config.profile_only => Target::Refuse(CloseCode::AppNotFound),
        Some(app) if !app.config.enabled => Target::Refuse(CloseCode::AppDisabled),
        Some(app) => Target::Session(Arc::clone(app)),
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
fn spawn_session<S>(tracker: &TaskTracker, hub: Arc<Hub>, target: Target, io: S, leftover: Bytes)
where
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
    match target {
        Target::Session(app) => match app.try_connect() {
            Some(slot) => tracker.spawn(pusher::run(hub, app, slot, socket)),
            None => tracker.spawn(refuse(socket, CloseCode::OverQuota)),
        },
        Target::Echo => tracker.spawn(echo::run(socket)),
        Target::Wamp1(app) => tracker.spawn(wamp1::run(hub, app, socket)),
        Target::Wamp2(ser, origin) => tracker.spawn(wamp2::run(hub, ser, origin, socket)),
        Target::Espo(espo, app, query) => {
            tracker.spawn(crate::profile::espo::session::run(hub, espo.0, app, query, socket))
        }
        Target::Refuse(code) => tracker.spawn(refuse(socket, code)),
    };
}

/// Sends `pusher:error` and the close frame with `code`, then closes.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut socket: Socket<S>, code: CloseCode) {
    tracing::debug!(code = code.code(), "refusing pusher connection");
    socket.queue(codec::encode_text(&server_msg::error(Some(code.code()), code.reason())));
    let outbox = herald_core::Outbox::new(herald_core::OutboxLimits::default());
    socket.close(Some(pusher::close(code)), &outbox, false).await;
}
