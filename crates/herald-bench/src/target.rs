//! The server under test: where it listens, which protocol it speaks, the app credentials, and
//! the labels a result line carries.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::tls::TlsClient;

/// The wire protocol the subscribers and the publisher speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Pusher Channels protocol 7: subscribe over WebSocket, publish through the signed HTTP API.
    Pusher,
    /// WAMP v2 with the `wamp.2.json` serializer: subscribe and publish over WebSocket.
    Wamp2,
}

/// Pusher app credentials (the HTTP API signs with the key and secret).
#[derive(Clone, Debug)]
pub struct AppCreds {
    /// `app_id`, part of the HTTP API path.
    pub id: String,
    /// `key`, part of the WebSocket path and of every signed request.
    pub key: String,
    /// The signing secret.
    pub secret: String,
}

/// Everything a generator needs to reach one server.
#[derive(Clone, Debug)]
pub struct Target {
    /// Where the server listens (always on 127.0.0.0/8).
    pub server: SocketAddr,
    /// Protocol spoken.
    pub protocol: Protocol,
    /// Pusher app credentials.
    pub app: AppCreds,
    /// WebSocket request path (for Pusher it includes the key and `protocol=7`).
    pub ws_path: String,
    /// WAMP realm to join.
    pub realm: String,
    /// The Pusher channel or WAMP topic every subscriber joins.
    pub channel: String,
    /// Source addresses the subscriber sockets are spread over (empty: let the kernel pick).
    pub sources: Vec<IpAddr>,
    /// Pid of the server (root of its process tree), for memory and CPU readings.
    pub server_pid: Option<u32>,
    /// Speak TLS (`wss://`, `https://`) with this client configuration.
    pub tls: Option<TlsClient>,
    /// Labels copied into every result line.
    pub labels: Labels,
}

/// What a result line says about the server beyond the numbers.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    /// Short name: `herald`, `soketi`, `sockudo`, `crossbar`.
    pub server: String,
    /// The server's version string.
    pub version: Option<String>,
    /// The configuration that matters for the numbers (e.g. `WEBSOCKET_MAX_MESSAGES=100`).
    pub knobs: Option<String>,
    /// The clients spoke TLS: the comparison gives these results rows of their own.
    pub tls: bool,
}

impl Target {
    /// The source address for the `i`-th client socket: round-robin over [`Self::sources`].
    pub fn source_for(&self, i: usize) -> Option<IpAddr> {
        if self.sources.is_empty() { None } else { Some(self.sources[i % self.sources.len()]) }
    }
}

/// The source addresses `127.0.0.2 ..= 127.0.0.(1+count)`, each giving its own 28k ephemeral
/// ports towards one server address.
pub fn loopback_sources(count: u8) -> Vec<IpAddr> {
    (0..count).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i))).collect()
}

/// The Pusher WebSocket path for an app key.
pub fn pusher_path(key: &str) -> String {
    format!("/app/{key}?protocol=7&client=herald-bench&version={}&flash=false", env!("CARGO_PKG_VERSION"))
}
