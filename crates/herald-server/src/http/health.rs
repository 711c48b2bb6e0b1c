//! Liveness and readiness, and the small router of the separate metrics listener.
//!
//! `/up` answers 200 while the process serves at all. `/ready` answers 503 from the moment a
//! drain starts, so a load balancer stops sending new clients before the sockets close. Both
//! say nothing about the inside, so they can face the public. `/health` (with the backend's
//! error text) and `/metrics` are served only on the metrics listener, which binds loopback
//! unless told otherwise.

use std::sync::Arc;

use bytes::Bytes;
use herald_core::Hub;
use hyper::{Method, Request, Response, StatusCode};

use super::metrics;
use super::response::{Body, json_response, text_response};
use crate::status::ServerStatus;

/// `GET /up`: the process is alive.
pub(crate) fn up() -> Response<Body> {
    json_response(StatusCode::OK, Bytes::from_static(br#"{"health":"OK"}"#))
}

/// `GET /health` (metrics listener only): the process and its backend. 200 with
/// `"backend_available": true`, or 503 with the reason while the scale-out link is down (HTTP
/// publishes are refused meanwhile).
pub(crate) fn health(hub: &Hub) -> Response<Body> {
    let backend = hub.backend();
    let counters: serde_json::Map<String, serde_json::Value> =
        backend.counters().into_iter().map(|(name, n)| (name.to_owned(), n.into())).collect();
    let (status, mut body) = match backend.available() {
        Ok(()) => (
            StatusCode::OK,
            serde_json::json!({ "health": "OK", "backend": backend.name(), "backend_available": true }),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "health": "degraded", "backend": backend.name(), "backend_available": false, "reason": e.to_string(),
            }),
        ),
    };
    if !counters.is_empty() {
        body["backend_counters"] = counters.into();
    }
    json_response(status, body.to_string().into())
}

/// `GET /ready`: 200 while accepting new clients, 503 while draining.
pub(crate) fn ready(status: &ServerStatus) -> Response<Body> {
    if status.is_draining() {
        json_response(StatusCode::SERVICE_UNAVAILABLE, Bytes::from_static(br#"{"ready":false,"reason":"draining"}"#))
    } else {
        json_response(StatusCode::OK, Bytes::from_static(br#"{"ready":true}"#))
    }
}

/// Routes a request on the separate metrics listener: `/up`, `/ready`, `/health`, `/metrics`.
pub(crate) fn route_ops<B>(hub: &Hub, status: &Arc<ServerStatus>, req: &Request<B>) -> Response<Body> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text_response(StatusCode::METHOD_NOT_ALLOWED, "GET only");
    }
    match req.uri().path() {
        "/up" => up(),
        "/health" => health(hub),
        "/ready" => ready(status),
        "/metrics" => metrics::response(hub, status),
        _ => text_response(StatusCode::NOT_FOUND, "Not found"),
    }
}
