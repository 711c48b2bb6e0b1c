//! The dashboard's routes: the page and its assets, login and logout, and the API the page
//! calls (apps, chart series, the console's event stream, the event creator).
//!
//! Every route first checks the client address; the API then wants a session, and anything
//! that changes state wants the dashboard's own `Origin` (or an allowed one). Every answer
//! forbids framing and carries a strict Content-Security-Policy; API answers are never cached.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use herald_core::{App, Hub};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde_json::json;
use tokio_util::sync::WaitForCancellationFutureOwned;

use super::Dashboard;
use super::auth::{self, COOKIE, SESSION_TTL};
use super::tap::{self, Entry, Watch};
use crate::http::response::Body;
use crate::listen::forwarded::ClientAddr;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The page may load its own script, style and API only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// How long a client may take to send a body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest login body.
const LOGIN_BODY: usize = 4096;
/// A console stream's keep-alive comment, so proxies and the browser see it alive.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The body of a dashboard answer: complete, or the console's endless stream.
pub(crate) type DashboardBody = Either<Body, ConsoleBody>;

/// Routes a request under `/dashboard`.
pub(crate) async fn route(
    d: &Dashboard,
    hub: &Arc<Hub>,
    req: Request<hyper::body::Incoming>,
) -> Response<DashboardBody> {
    let mut resp = answer(d, hub, req).await;
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn answer(d: &Dashboard, hub: &Arc<Hub>, req: Request<hyper::body::Incoming>) -> Response<DashboardBody> {
    // The accept loop tags every request with its client address (trusted proxies applied).
    let Some(client) = req.extensions().get::<ClientAddr>().map(|c| c.0) else {
        return status(StatusCode::FORBIDDEN, "Forbidden");
    };
    if !auth::address_allowed(&d.settings, client) {
        return status(StatusCode::FORBIDDEN, "Forbidden");
    }
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    match path.as_str() {
        "/dashboard" | "/dashboard/" if get => asset(INDEX_HTML, "text/html; charset=utf-8"),
        "/dashboard/app.js" if get => asset(APP_JS, "text/javascript; charset=utf-8"),
        "/dashboard/app.css" if get => asset(APP_CSS, "text/css; charset=utf-8"),
        "/dashboard/login" if method == Method::POST => login(d, client, req).await,
        "/dashboard/logout" if method == Method::POST => {
            if !auth::origin_allowed(&d.settings, req.headers()) {
                return status(StatusCode::FORBIDDEN, "Cross-origin request refused");
            }
            d.sessions.close(req.headers());
            let mut resp = status(StatusCode::OK, "Logged out");
            let gone = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=0");
            if let Ok(v) = HeaderValue::from_str(&gone) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        p if p.starts_with("/dashboard/api/") => api(d, hub, req).await,
        "/dashboard" | "/dashboard/" | "/dashboard/app.js" | "/dashboard/app.css" | "/dashboard/login"
        | "/dashboard/logout" => status(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
        _ => status(StatusCode::NOT_FOUND, "Not found"),
    }
}

async fn login(
    d: &Dashboard,
    client: std::net::IpAddr,
    req: Request<hyper::body::Incoming>,
) -> Response<DashboardBody> {
    if !auth::origin_allowed(&d.settings, req.headers()) {
        return status(StatusCode::FORBIDDEN, "Cross-origin request refused");
    }
    let now = Instant::now();
    if d.brake.blocked(client, now) {
        return status(StatusCode::TOO_MANY_REQUESTS, "Too many wrong passwords; wait a minute");
    }
    let Some(body) = read_body(req, LOGIN_BODY).await else {
        return status(StatusCode::BAD_REQUEST, "Could not read the form");
    };
    let given = form_value(&body, "password").unwrap_or_default();
    if !auth::password_matches(&d.settings, &given) {
        d.brake.failed(client, now);
        tracing::info!(%client, "dashboard login refused");
        return status(StatusCode::UNAUTHORIZED, "Wrong password");
    }
    let token = d.sessions.open(now);
    let mut resp = status(StatusCode::OK, "Logged in");
    let cookie =
        format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age={}", SESSION_TTL.as_secs());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn api(d: &Dashboard, hub: &Arc<Hub>, req: Request<hyper::body::Incoming>) -> Response<DashboardBody> {
    let method = req.method().clone();
    let changes = method != Method::GET && method != Method::HEAD;
    if changes && !auth::origin_allowed(&d.settings, req.headers()) {
        return status(StatusCode::FORBIDDEN, "Cross-origin request refused");
    }
    if !d.sessions.valid(req.headers(), Instant::now()) {
        return status(StatusCode::UNAUTHORIZED, "Log in first");
    }
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches("/dashboard/api/").split('/').collect();
    // Each request resolves its app afresh, owning the handle: apps may come and go meanwhile.
    let app_of = |id: &str| hub.app_by_id(&percent_decode_str(id).decode_utf8_lossy());
    match (&method, segments.as_slice()) {
        (&Method::GET, ["apps"]) => apps(hub),
        (&Method::GET, ["apps", id, "series"]) => match app_of(id) {
            Some(app) => json_ok(d.series.json(&app.config.id).to_string()),
            None => status(StatusCode::NOT_FOUND, "Unknown app"),
        },
        (&Method::GET, ["apps", id, "console"]) => match app_of(id) {
            Some(app) => console(d, app),
            None => status(StatusCode::NOT_FOUND, "Unknown app"),
        },
        (&Method::POST, ["apps", id, "events"]) => match app_of(id) {
            Some(app) => publish(hub, &app, req).await,
            None => status(StatusCode::NOT_FOUND, "Unknown app"),
        },
        (_, ["apps"] | ["apps", _, "series" | "console" | "events"]) => {
            status(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
        }
        _ => status(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// Every app: id, key, and what it speaks.
fn apps(hub: &Hub) -> Response<DashboardBody> {
    let mut list: Vec<Arc<App>> = hub.apps().iter().cloned().collect();
    list.sort_by(|a, b| a.config.id.cmp(&b.config.id));
    let apps: Vec<_> = list
        .iter()
        .map(|a| {
            json!({
                "id": a.config.id, "key": a.config.key, "enabled": a.config.enabled,
                "wamp": a.config.wamp, "connections": a.connection_count(),
            })
        })
        .collect();
    json_ok(json!({ "apps": apps }).to_string())
}

/// The event creator: the HTTP API's own publish, with its validation, limits and errors.
async fn publish(hub: &Hub, app: &App, req: Request<hyper::body::Incoming>) -> Response<DashboardBody> {
    let limit = app.config.max_event_data_bytes.saturating_mul(2).saturating_add(64 * 1024);
    let Some(body) = read_body(req, limit).await else {
        return status(StatusCode::PAYLOAD_TOO_LARGE, "The event is too large, or did not arrive");
    };
    let mut resp = crate::http::pusher_api::publish_trusted(hub, app, &body).await;
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.map(Either::Left)
}

/// The console's Server-Sent Events stream.
fn console(d: &Dashboard, app: Arc<App>) -> Response<DashboardBody> {
    let hello = tap::sse(&Entry { kind: "hello", detail: Some(&app.config.id), ..Entry::default() });
    let mut beat = tokio::time::interval(KEEP_ALIVE);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let body = ConsoleBody {
        watch: Watch::start(app),
        first: Some(hello),
        beat,
        stop: Box::pin(d.stop.clone().cancelled_owned()),
    };
    let mut resp = Response::new(Either::Right(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A console's stream: its queue as events, what it lost as a notice, a keep-alive comment
/// now and then; it ends when herald stops.
pub(crate) struct ConsoleBody {
    watch: Watch,
    first: Option<Bytes>,
    beat: tokio::time::Interval,
    stop: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl HttpBody for ConsoleBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.stop.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let lost = self.watch.lost.swap(0, std::sync::atomic::Ordering::Relaxed);
        if lost > 0 {
            let notice = tap::sse(&Entry { kind: "lost", count: Some(lost), ..Entry::default() });
            return Poll::Ready(Some(Ok(Frame::data(notice))));
        }
        match self.watch.rx.poll_recv(cx) {
            Poll::Ready(Some(b)) => return Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if self.beat.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b": keep-alive\n\n")))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        false
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// Reads a body of at most `limit` bytes within [`BODY_TIMEOUT`].
async fn read_body(req: Request<hyper::body::Incoming>, limit: usize) -> Option<Bytes> {
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), limit).collect()).await;
    collected.ok()?.ok().map(http_body_util::Collected::to_bytes)
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode_str(&v.replace('+', " ")).decode_utf8_lossy().into_owned())
    })
}

fn asset(text: &'static str, content_type: &'static str) -> Response<DashboardBody> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from_static(text.as_bytes()))));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn json_ok(text: String) -> Response<DashboardBody> {
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(text))));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A JSON `{"error": …}` (or `{"ok": …}`) answer.
fn status(code: StatusCode, message: &str) -> Response<DashboardBody> {
    let key = if code.is_success() { "ok" } else { "error" };
    let mut resp = json_ok(json!({ key: message }).to_string());
    *resp.status_mut() = code;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(form_value(b"a=1&password=p%26ss+word", "password").as_deref(), Some("p&ss word"));
        assert_eq!(form_value(b"a=1", "password"), None);
    }
}
