//! The HTTP side of a listener: WebSocket upgrades, the Pusher HTTP API and health.
//!
//! One port serves everything, as Pusher clients and SDKs expect (pusher-js connects to the
//! same host and port the backend publishes to).

mod api_error;
mod body_budget;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod outbound;
mod pusher_api;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use herald_core::Hub;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tokio_util::task::TaskTracker;

use crate::config::Profile;
use crate::ws;

/// Response body type: every response herald sends is small and complete.
pub(crate) type Body = Full<Bytes>;

/// What request handlers share.
#[derive(Debug, Clone)]
pub(crate) struct HttpState {
    /// The hub.
    pub(crate) hub: Arc<Hub>,
    /// Tracks WebSocket session tasks so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Whether the `/echo` conformance endpoint is mounted.
    pub(crate) echo: bool,
    /// What this listener serves.
    pub(crate) profile: Arc<Profile>,
    /// The listener's TLS, proxy and health settings (listen.rs).
    pub(crate) edge: Arc<crate::listen::Edge>,
}

/// Routes one request.
pub(crate) async fn route(state: HttpState, req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    if ws::is_upgrade(&req) {
        return Ok(ws::upgrade(&state, req));
    }
    if !matches!(*state.profile, Profile::Pusher) {
        // A WAMP v1 listener is WebSocket only, like Ratchet.
        return Ok(text_response(StatusCode::UPGRADE_REQUIRED, "This endpoint speaks WAMP v1 over WebSocket"));
    }
    let path = req.uri().path();
    // `/users/` too: one SDK sends user termination without the `/apps/{id}` prefix.
    let resp = if path.starts_with("/apps/") || path.starts_with("/users/") {
        pusher_api::handle(&state.hub, req).await
    } else {
        match path {
            "/" => text_response(StatusCode::OK, "OK"),
            "/up" => health::up(),
            "/ready" => health::ready(&state.edge.status),
            // `/health` and `/metrics` tell whoever asks about the inside (backend errors,
            // app ids, load): only the metrics listener serves them.
            _ => text_response(StatusCode::NOT_FOUND, "Not found"),
        }
    };
    Ok(resp)
}

/// A plain-text response.
pub(crate) fn text_response(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}
