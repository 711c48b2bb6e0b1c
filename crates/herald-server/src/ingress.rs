//! Ingress: publications that enter herald from outside a WebSocket or the HTTP API.

pub(crate) mod zmq;
