//! Starts herald in-process on 127.0.0.1:0 and connects raw WebSocket clients to it.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_core::{AppConfig, Hub, OutboxLimits};
use herald_server::Server;
use herald_server::config::Settings;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound on any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running herald; stopped (drained) on drop of `stop`.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The metrics listener (`/metrics`, `/health`), when the settings ask for one.
    pub metrics: Option<SocketAddr>,
    pub hub: Arc<Hub>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

pub fn app(id: &str, key: &str) -> AppConfig {
    AppConfig { id: id.into(), key: key.into(), secret: format!("{key}-secret"), ..AppConfig::default() }
}

/// `base` with a metrics listener on 127.0.0.1 and any free port (`/metrics`, `/health`).
pub fn with_metrics(mut base: Settings) -> Settings {
    base.ops.metrics_addr = Some(("127.0.0.1".into(), 0));
    base
}

pub fn settings(apps: Vec<AppConfig>) -> Settings {
    Settings {
        host: "127.0.0.1".into(),
        port: 0,
        apps,
        dev_credentials: false,
        outbox: OutboxLimits::default(),
        shutdown_grace: Duration::from_secs(5),
        test_echo_endpoint: false,
        listeners: Vec::new(),
        ops: Default::default(),
        scale_out: None,
    }
}

impl TestServer {
    pub async fn start(settings: Settings) -> Self {
        let server = Server::bind(settings).await.expect("bind");
        let addr = server.local_addr().unwrap();
        let metrics = server.addrs().into_iter().find(|(_, l)| l.as_deref() == Some("metrics")).map(|(a, _)| a);
        let hub = Arc::clone(server.hub());
        let (tx, rx) = oneshot::channel::<()>();
        let done = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self { addr, metrics, hub, stop: Some(tx), done: Some(done) }
    }

    /// The metrics listener's address; panics when the settings did not ask for one.
    pub fn metrics(&self) -> SocketAddr {
        self.metrics.expect("settings with ops.metrics_addr")
    }

    /// Drains the server and waits until it has stopped.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            tokio::time::timeout(WAIT, done).await.expect("drain within the grace period").unwrap();
        }
    }

    pub async fn ws(&self, path_and_query: &str) -> Ws {
        let url = format!("ws://{}{}", self.addr, path_and_query);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
        ws
    }

    /// Connects to app `key` with protocol 7 and returns the socket and its socket_id.
    pub async fn pusher(&self, key: &str) -> (Ws, String) {
        let mut ws = self.ws(&format!("/app/{key}?protocol=7&client=js&version=8.4.0")).await;
        let hello = next_json(&mut ws).await;
        assert_eq!(hello["event"], "pusher:connection_established");
        let data: Value = serde_json::from_str(hello["data"].as_str().unwrap()).unwrap();
        (ws, data["socket_id"].as_str().unwrap().to_owned())
    }
}

/// The next text message as JSON (skipping nothing: pings are answered by tungstenite).
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("message in time");
        match msg.expect("socket open").expect("no error") {
            Message::Text(t) => return serde_json::from_str(&t).expect("server sends JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame and returns it.
pub async fn close_frame(ws: &mut Ws) -> Option<CloseFrame> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("close in time");
        match msg {
            Some(Ok(Message::Close(f))) => return f,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("socket error before the close frame: {e}"),
            None => return None,
        }
    }
}

pub async fn send_json(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// Subscribes to a public channel and waits for the acknowledgement.
pub async fn subscribe(ws: &mut Ws, channel: &str) {
    send_json(ws, serde_json::json!({"event":"pusher:subscribe","data":{"channel":channel}})).await;
    let ack = next_json(ws).await;
    assert_eq!(ack["event"], "pusher_internal:subscription_succeeded", "{ack}");
}
