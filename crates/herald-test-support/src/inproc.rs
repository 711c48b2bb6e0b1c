//! herald started inside the test process: [`herald_server::Server`] bound on 127.0.0.1:0 and
//! run on the test's runtime until [`TestServer::shutdown`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{AppConfig, Hub, OutboxLimits};
use herald_server::Server;
use herald_server::config::Settings;
use serde_json::Value;
use tokio::sync::Notify;

use crate::WAIT;
use crate::ws::{Ws, next_json};

/// A running herald; drained by [`TestServer::shutdown`], or on drop (without waiting).
pub struct TestServer {
    /// The main listener (Pusher, HTTP API, WAMP v2).
    pub addr: SocketAddr,
    /// The metrics listener (`/metrics`, `/health`), when the settings ask for one.
    pub metrics: Option<SocketAddr>,
    /// Every listener, the main one first: (address, label).
    pub listening: Vec<(SocketAddr, Option<String>)>,
    /// The server's hub, to look at connections and channels directly.
    pub hub: Arc<Hub>,
    stop: StopHandle,
    done: Option<tokio::task::JoinHandle<()>>,
}

/// Starts the drain of a [`TestServer`] from anywhere (a task, another thread); the first call
/// counts, later ones do nothing.
#[derive(Clone)]
pub struct StopHandle(Arc<Notify>);

impl StopHandle {
    /// Begins the drain, as SIGTERM does.
    pub fn stop(&self) {
        self.0.notify_one();
    }
}

/// An enabled app `id` with key `key` and secret `{key}-secret`, other settings default.
pub fn app(id: &str, key: &str) -> AppConfig {
    AppConfig { id: id.into(), key: key.into(), secret: format!("{key}-secret"), ..AppConfig::default() }
}

/// `base` with a metrics listener on 127.0.0.1 and any free port (`/metrics`, `/health`).
pub fn with_metrics(mut base: Settings) -> Settings {
    base.ops.metrics_addr = Some(("127.0.0.1".into(), 0));
    base
}

/// Settings serving `apps` on 127.0.0.1:0 and nothing else.
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
        history: Default::default(),
        app_store: None,
        dashboard: None,
    }
}

impl TestServer {
    /// Binds `settings` and runs the server on a task of the current runtime.
    pub async fn start(settings: Settings) -> Self {
        Self::run(Server::bind(settings).await.expect("bind"))
    }

    /// Runs a server the test bound itself (to look at a bind error first).
    pub fn run(server: Server) -> Self {
        let addr = server.local_addr().unwrap();
        let listening = server.addrs();
        let metrics = listening.iter().find(|(_, l)| l.as_deref() == Some("metrics")).map(|(a, _)| *a);
        let hub = Arc::clone(server.hub());
        let stop = Arc::new(Notify::new());
        let signal = Arc::clone(&stop);
        let done = tokio::spawn(server.run(async move { signal.notified().await }));
        Self { addr, metrics, listening, hub, stop: StopHandle(stop), done: Some(done) }
    }

    /// The metrics listener's address; panics when the settings did not ask for one.
    pub fn metrics(&self) -> SocketAddr {
        self.metrics.expect("settings with ops.metrics_addr")
    }

    /// A handle that begins the drain without waiting for its end.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Drains the server (if no one began it yet) and waits until it has stopped.
    pub async fn shutdown(mut self) {
        self.stop.stop();
        if let Some(done) = self.done.take() {
            tokio::time::timeout(WAIT, done).await.expect("drain within the grace period").unwrap();
        }
    }

    /// A WebSocket upgraded on `path_and_query` of the main listener.
    pub async fn ws(&self, path_and_query: &str) -> Ws {
        let url = format!("ws://{}{}", self.addr, path_and_query);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
        ws
    }

    /// Connects to app `key` with protocol 7 and returns the socket and its socket_id.
    pub async fn pusher(&self, key: &str) -> (Ws, String) {
        let mut ws = self.ws(&crate::ws::pusher_path(key)).await;
        let hello = next_json(&mut ws).await;
        assert_eq!(hello["event"], "pusher:connection_established");
        let data: Value = serde_json::from_str(hello["data"].as_str().unwrap()).unwrap();
        (ws, data["socket_id"].as_str().unwrap().to_owned())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.stop();
    }
}
