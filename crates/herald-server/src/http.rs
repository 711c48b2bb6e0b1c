//! The HTTP side of a listener: WebSocket upgrades, the Pusher HTTP API and health.
//!
//! One port serves everything, as Pusher clients and SDKs expect (pusher-js connects to the
//! same host and port the backend publishes to).

mod api_error;
mod body_budget;
pub(crate) mod health;
pub(crate) mod metrics;
pub(crate) mod outbound;
pub(crate) mod pusher_api;
pub(crate) mod response;
pub(crate) mod state;

use std::convert::Infallible;

use hyper::{Request, Response, StatusCode};

use crate::http_transport;
use crate::runtime::Serves;
use crate::ws;
use http_body_util::Either;
use response::{AnyBody, text_response};
use state::HttpState;

/// Routes one request.
pub(crate) async fn route(
    state: HttpState,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<AnyBody>, Infallible> {
    // Apps from the `[app_store]` table join the hub before the handlers look them up.
    if state.directory.has_store() {
        state.directory.prepare(req.method(), req.uri().path()).await;
    }
    if ws::is_upgrade(&req) {
        return Ok(ws::upgrade(&state, req).map(Either::Left));
    }
    if !matches!(*state.profile, Serves::Pusher) {
        // A WAMP v1 listener is WebSocket only, like Ratchet.
        let resp = text_response(StatusCode::UPGRADE_REQUIRED, "This endpoint speaks WAMP v1 over WebSocket");
        return Ok(resp.map(Either::Left));
    }
    let path = req.uri().path();
    if http_transport::is_transport_path(path) {
        return Ok(http_transport::handle(&state, req).await);
    }
    if http_transport::is_event_stream(&req) {
        return Ok(http_transport::event_stream(&state, &req));
    }
    // `/users/` too: one SDK sends user termination without the `/apps/{id}` prefix.
    let resp = if path.starts_with("/apps/") || path.starts_with("/users/") {
        pusher_api::handle(&state.hub, state.cluster.as_deref(), req).await
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
    Ok(resp.map(Either::Left))
}
