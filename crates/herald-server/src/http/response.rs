//! The response body type and the small responses every part of the HTTP side builds.
//!
//! Apart from the router (`http.rs`) so that the WebSocket upgrade, which the router calls,
//! and the endpoints can answer without importing the router back.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// Response body type: every response herald sends is small and complete...
pub(crate) type Body = Full<Bytes>;

/// ...except the receive responses of the HTTP transports, which stream.
pub(crate) type AnyBody = http_body_util::Either<Body, crate::http_transport::link::ReceiveBody>;

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
