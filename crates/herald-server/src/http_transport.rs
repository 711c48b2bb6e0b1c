//! Sessions over plain HTTP, for clients whose network lets no WebSocket through: pusher-js's
//! fallback transports `xhr_streaming` and `xhr_polling`, and Server-Sent Events streams
//! ([`sse`]).
//!
//! A session here is the same session a WebSocket client gets: the same driver runs the same
//! Pusher adapter, with an HTTP session link ([`link::Link`]) as its transport instead of a
//! socket. Requests only move bytes in and out of that link: a receive request
//! (`…/xhr_streaming`, `…/xhr`) attaches to the session (creating it on the first one) and
//! streams its lines; `…/xhr_send` posts messages to it. The app's origin list, connection limit
//! and the per-address limits apply as to a WebSocket upgrade.

pub(crate) mod lines;
pub(crate) mod link;
pub(crate) mod path;
pub(crate) mod sse;
pub(crate) mod stats;

use std::sync::Arc;

use bytes::Bytes;
use herald_core::App;
use herald_core::app::ConnectionSlot;
use herald_protocol::pusher::close_code::CloseCode;
use http_body_util::{BodyExt, Either, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::http::response::{AnyBody, text_response};
use crate::http::state::HttpState;
use crate::listen::forwarded::ClientAddr;
use crate::listen::per_ip::PerIpSlot;
use crate::session::driver::Session;
use crate::session::pusher::Pusher;
use link::{PostError, ReceiveBody};
use path::Kind;

/// How long an `xhr_send` body may take to arrive.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether the path is one of the transports'.
pub(crate) fn is_transport_path(path: &str) -> bool {
    path.starts_with(path::MOUNT)
}

/// Answers one request to a transport URL.
pub(crate) async fn handle(state: &HttpState, req: Request<hyper::body::Incoming>) -> Response<AnyBody> {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let mut resp = answer(state, req).await;
    // Browsers call from the page's origin; the app's allow-list was checked on the way in.
    if let Some(origin) = origin {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response<AnyBody> {
    text_response(status, text).map(Either::Left)
}

async fn answer(state: &HttpState, req: Request<hyper::body::Incoming>) -> Response<AnyBody> {
    let uri_path = req.uri().path().to_owned();
    let target = match path::parse(&uri_path) {
        Ok(t) => t,
        Err(why) => return plain(StatusCode::NOT_FOUND, why),
    };
    if req.method() == Method::OPTIONS {
        // The preflight of a cross-origin POST with `Content-Type: application/json`.
        let mut resp = plain(StatusCode::NO_CONTENT, "");
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("Content-Type"));
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        return resp;
    }
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "The HTTP transports use POST");
    }
    stats::request(target.kind);
    let name = format!("{}/{}", target.key, target.session);
    match target.kind {
        Kind::Send => send(state, &name, target.key, req).await,
        Kind::Streaming | Kind::Polling => receive(state, &name, target.key, target.kind == Kind::Polling, &req),
        // Not a URL of this mount (`event_stream` answers those).
        Kind::Sse => plain(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// A receive request: attach to the session, or open it.
fn receive<B>(state: &HttpState, name: &str, key: &str, polling: bool, req: &Request<B>) -> Response<AnyBody> {
    if let Some(shared) = state.transports.get(name) {
        // The session's name is its only credential, as in pusher-js's protocol: a page of an
        // origin the app refuses may not take a live session over.
        if !state.hub.app_by_key(key).is_some_and(|app| origin_allowed(&app, req)) {
            return plain(StatusCode::FORBIDDEN, "Origin not allowed");
        }
        return streaming(shared.attach(polling, b""));
    }
    let app = match resolve(state, key, req.uri().query().unwrap_or("")) {
        Ok(app) => app,
        Err(code) => return refuse(code),
    };
    let (held, place) = match admit(state, &app, req) {
        Ok(admitted) => admitted,
        Err(refused) => return refused.answer(|| refuse(CloseCode::OverQuota)),
    };
    let kind = if polling { Kind::Polling } else { Kind::Streaming };
    let (shared, link) = state.transports.open(name.into(), kind, None);
    let body = shared.attach(polling, lines::OPEN);
    let session = Session::new(link, Pusher::new(Arc::clone(&state.hub), place));
    state.tracker.spawn(async move {
        session.await;
        drop(held);
    });
    streaming(body)
}

/// Why a new HTTP session is not admitted.
enum Refused {
    /// The request's origin is not on the app's allow-list.
    Origin,
    /// The client's address holds as many connections as it may.
    PerAddress,
    /// The app has no connection place left.
    Quota,
}

impl Refused {
    /// The answer, where the quota's is the caller's (a Pusher close code or a status).
    fn answer(self, over_quota: impl FnOnce() -> Response<AnyBody>) -> Response<AnyBody> {
        match self {
            Refused::Origin => plain(StatusCode::FORBIDDEN, "Origin not allowed"),
            Refused::PerAddress => plain(StatusCode::TOO_MANY_REQUESTS, "Too many connections from your address"),
            Refused::Quota => over_quota(),
        }
    }
}

/// Whether `app` takes requests from the request's origin (counted when it does not).
fn origin_allowed<B>(app: &App, req: &Request<B>) -> bool {
    let origin = req.headers().get(header::ORIGIN).map(|v| v.to_str().unwrap_or(""));
    let allowed = herald_core::origin::allowed(&app.config.allowed_origins, origin);
    if !allowed {
        app.stats.origin_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    allowed
}

/// Admits a new HTTP session of `app` as a WebSocket upgrade is admitted: the app's origin
/// allow-list, the per-address limits, then one of the app's connection places. The places are
/// held for as long as the session runs.
fn admit<B>(
    state: &HttpState,
    app: &Arc<App>,
    req: &Request<B>,
) -> Result<(Option<PerIpSlot>, ConnectionSlot), Refused> {
    if !origin_allowed(app, req) {
        return Err(Refused::Origin);
    }
    let client = req.extensions().get::<ClientAddr>().map(|c| c.0);
    let held = match client.map(|ip| state.edge.status.per_ip.acquire(ip)) {
        Some(Err(_)) => return Err(Refused::PerAddress),
        Some(Ok(slot)) => slot,
        None => None,
    };
    Ok((held, app.try_connect().ok_or(Refused::Quota)?))
}

/// The app a receive URL names, or the Pusher close code a WebSocket would get.
fn resolve(state: &HttpState, key: &str, query: &str) -> Result<Arc<App>, CloseCode> {
    let protocol = query.split('&').find_map(|p| p.strip_prefix("protocol="));
    match protocol.map(str::parse::<u32>) {
        None => return Err(CloseCode::NoProtocol),
        Some(Ok(p)) if p >= 7 => {}
        Some(_) => return Err(CloseCode::UnsupportedProtocol),
    }
    match state.hub.app_by_key(key) {
        None => Err(CloseCode::AppNotFound),
        Some(app) if app.config.profile_only => Err(CloseCode::AppNotFound),
        Some(app) if !app.config.enabled => Err(CloseCode::AppDisabled),
        Some(app) => Ok(app),
    }
}

/// A refusal in the framing pusher-js reads: as over a WebSocket, the session opens and gets the
/// error, then the close with its code (a close before the open would be a failed transport,
/// which pusher-js retries instead of reporting the code).
fn refuse(code: CloseCode) -> Response<AnyBody> {
    let mut out = bytes::BytesMut::from(lines::OPEN);
    let error = herald_protocol::pusher::server_msg::error(Some(code.code()), code.reason());
    lines::push_messages(&mut out, [&herald_protocol::ws::encode_text(&error)]);
    lines::push_close(&mut out, &crate::session::pusher::close(code));
    streaming(ReceiveBody::once(out.freeze()))
}

/// A receive response: lines as they come, never buffered on the way.
fn streaming(body: ReceiveBody) -> Response<AnyBody> {
    let mut resp = Response::new(Either::Right(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/javascript; charset=UTF-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
    // nginx buffers proxied responses unless told not to.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// An `xhr_send`: queue the posted messages for the session.
async fn send(state: &HttpState, name: &str, key: &str, req: Request<hyper::body::Incoming>) -> Response<AnyBody> {
    let Some(shared) = state.transports.get(name) else {
        return plain(StatusCode::NOT_FOUND, "Unknown session");
    };
    let Some(app) = state.hub.app_by_key(key) else {
        return plain(StatusCode::NOT_FOUND, "Unknown session");
    };
    if !origin_allowed(&app, &req) {
        return plain(StatusCode::FORBIDDEN, "Origin not allowed");
    }
    let max_message = app.config.max_message_bytes;
    // A message's JSON escaping at most doubles it (`"` → `\"`); `\u00XX` escapes of control
    // characters are counted against the message after decoding.
    let limit = max_message.saturating_mul(2).saturating_add(64);
    let collected = tokio::time::timeout(SEND_TIMEOUT, Limited::new(req.into_body(), limit).collect()).await;
    let body: Bytes = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "Message over the app's max_message_bytes");
        }
        Ok(Err(_)) => return plain(StatusCode::BAD_REQUEST, "Could not read the body"),
        Err(_) => return plain(StatusCode::REQUEST_TIMEOUT, "The body took too long"),
    };
    let messages = match lines::parse_send(&body, max_message) {
        Ok(m) => m,
        Err(lines::SendError::Malformed) => {
            return plain(StatusCode::BAD_REQUEST, "Expected a JSON array of messages, each a string");
        }
        Err(lines::SendError::TooLarge) => {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "Message over the app's max_message_bytes");
        }
    };
    match shared.post(messages) {
        Ok(()) => plain(StatusCode::NO_CONTENT, ""),
        Err(PostError::Full) => plain(StatusCode::TOO_MANY_REQUESTS, "Too many messages waiting for this session"),
        Err(PostError::Closed) => plain(StatusCode::NOT_FOUND, "Unknown session"),
    }
}

/// Whether the request is an SSE stream request: `GET /apps/{key}/events`.
pub(crate) fn is_event_stream<B>(req: &Request<B>) -> bool {
    req.method() == Method::GET
        && req
            .uri()
            .path()
            .strip_prefix("/apps/")
            .and_then(|r| r.strip_suffix("/events"))
            .is_some_and(|k| !k.contains('/'))
}

/// Answers `GET /apps/{key}/events?channels=…`: a Server-Sent Events stream (`http_transport/sse.rs`).
pub(crate) fn event_stream<B>(state: &HttpState, req: &Request<B>) -> Response<AnyBody> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STREAMS: AtomicU64 = AtomicU64::new(0);
    stats::request(Kind::Sse);
    let path = req.uri().path();
    let key = path.strip_prefix("/apps/").and_then(|r| r.strip_suffix("/events")).unwrap_or("");
    let query = req.uri().query().unwrap_or("");
    let Some(app) = state.hub.app_by_key(key).filter(|a| !a.config.profile_only) else {
        // `/apps/{id}/events` is also the HTTP API's publish path: a GET there is a wrong
        // method, not a stream of an unknown key.
        if state.hub.app_by_id(key).is_some() {
            return plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST /apps/{app_id}/events publishes; the event stream is GET /apps/{app_key}/events",
            );
        }
        return plain(StatusCode::NOT_FOUND, "Unknown app key");
    };
    if !app.config.enabled {
        return plain(StatusCode::FORBIDDEN, "App disabled");
    }
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .map(|v| percent_encoding::percent_decode_str(&v.replace('+', " ")).decode_utf8_lossy().into_owned())
    };
    let refused = |r: sse::Refusal| match r {
        sse::Refusal::BadChannels(why) => plain(StatusCode::BAD_REQUEST, why),
        sse::Refusal::Unsupported => {
            plain(StatusCode::BAD_REQUEST, "Presence and encrypted channels are not available over SSE")
        }
        sse::Refusal::Unauthorized(why) => {
            let mut resp = plain(StatusCode::UNAUTHORIZED, "");
            let text = format!("Private channels need a request signed with the app's secret: {why}");
            *resp.body_mut() = Either::Left(http_body_util::Full::new(Bytes::from(text)));
            resp
        }
    };
    let channels = match sse::parse_channels(param("channels").as_deref()) {
        Ok(c) => c,
        Err(r) => return refused(r),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    // Signed as sent, or (behind a path prefix) as the SDKs sign it, without the prefix.
    let sent = req.extensions().get::<crate::listen::prefix::OriginalPath>().map(|p| p.0.as_str());
    let auth = sse::authorize(&channels, path, query, &app.config.key, &app.config.secret, now);
    if let Err(r) = auth.or_else(|e| match sent {
        Some(sent) => sse::authorize(&channels, sent, query, &app.config.key, &app.config.secret, now),
        None => Err(e),
    }) {
        return refused(r);
    }
    let (held, place) = match admit(state, &app, req) {
        Ok(admitted) => admitted,
        Err(refused) => {
            return refused.answer(|| plain(StatusCode::SERVICE_UNAVAILABLE, "Over the app's connection quota"));
        }
    };
    // The browser resends the last id it saw as a header; tools may pass it in the query.
    let last_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| param("lastEventId"));
    let stream = sse::Sse::new(&app.config.key, &app.config.secret, channels, last_id.as_deref());
    // `#` is never in a name the transport URLs can reach: no `xhr_send` can post to a stream.
    let name = format!("{key}/#sse/{}", STREAMS.fetch_add(1, Ordering::Relaxed));
    let (shared, link) = state.transports.open(name.into(), Kind::Sse, Some(Box::new(stream)));
    let body = shared.attach_sse(sse::PREAMBLE);
    let session = Session::new(link, Pusher::new(Arc::clone(&state.hub), place));
    state.tracker.spawn(async move {
        session.await;
        drop(held);
    });
    let mut resp = Response::new(Either::Right(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(o) = req.headers().get(header::ORIGIN) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    resp
}
