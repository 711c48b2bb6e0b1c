//! What herald's integration tests (crates/herald-server/tests) share.
//!
//! - [`inproc`]: herald started inside the test process on 127.0.0.1:0, with its hub at hand;
//! - [`process`]: herald started as a child process, its listening lines and log lines awaited;
//! - [`ws`]: WebSocket clients (tungstenite, and raw upgrades) and their bounded reads;
//! - [`http`]: raw HTTP/1.1 requests, signed Pusher HTTP API publishes, Prometheus parsing;
//! - [`sign`]: Pusher signatures, from herald-protocol's signer;
//! - [`tls`]: a test CA made with `openssl`, and a TLS client trusting it;
//! - [`redis`]: a `redis-server` child per test, for the scale-out tests;
//! - [`cluster`]: herald child processes sharing one Redis, with their clients and API calls;
//! - [`redis_cluster`]: a Redis Cluster of several `redis-server` children, for sharded scale-out;
//! - [`webhooks`]: a webhook receiver, for the tests of webhooks across nodes;
//! - [`oro`]: the Oro profile's fixtures (php-cli tickets and publisher, raw WAMP v1, PostgreSQL);
//! - [`sql`]: a private MariaDB per test, and what it shares with the PostgreSQL cluster.
//!
//! Every wait is bounded by [`WAIT`] and reads a socket, a pipe or a channel; nothing sleeps to
//! synchronise, except the Redis Cluster's wait for its nodes to agree, which only `redis-cli`
//! polling can observe. Helpers panic on what a test would fail on anyway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

pub mod cluster;
pub mod http;
pub mod inproc;
pub mod oro;
pub mod process;
pub mod redis;
pub mod redis_cluster;
pub mod sign;
pub mod sql;
pub mod tls;
pub mod webhooks;
pub mod ws;

pub use inproc::{StopHandle, TestServer, app, settings, with_metrics};
pub use ws::{Ws, close_frame, next_json, send_json, subscribe};

/// Upper bound on any single wait: a message, a log line, a process start or exit.
pub const WAIT: Duration = Duration::from_secs(15);

/// Seconds since the Unix epoch (the `auth_timestamp` of signed requests).
pub fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_secs(),
    )
    .expect("a timestamp that fits")
}
