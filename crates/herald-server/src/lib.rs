//! herald's server: listeners, WebSocket sessions, the Pusher HTTP API, config and shutdown.
//!
//! `main.rs` parses the command line and calls [`Server::bind`] then [`Server::run`]; tests do
//! the same on `127.0.0.1:0`.

pub mod cli;
pub mod config;
mod http;
mod listen;
pub mod shutdown;
pub mod telemetry;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use herald_core::{AppRegistry, Hub, LocalBackend};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::http::HttpState;

/// Why the server could not start (exit code 69: service unavailable).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Two apps share an id or key (config validation normally catches this first).
    #[error(transparent)]
    Apps(#[from] herald_core::app::DuplicateApp),
}

/// A bound, not yet running, herald.
#[derive(Debug)]
pub struct Server {
    settings: Settings,
    hub: Arc<Hub>,
    listener: TcpListener,
}

impl Server {
    /// Builds the hub and binds the listener.
    ///
    /// # Errors
    /// [`StartError`] when the port cannot be bound.
    pub async fn bind(settings: Settings) -> Result<Self, StartError> {
        let registry = AppRegistry::new(settings.apps.clone())?;
        let hub = Arc::new(Hub::new(registry, Arc::new(LocalBackend), settings.outbox));
        let addr = format!("{}:{}", settings.host, settings.port);
        let listener = listen::bind(&addr).await.map_err(|source| StartError::Bind { addr, source })?;
        Ok(Self { settings, hub, listener })
    }

    /// The address actually bound (the real port when 0 was asked for).
    ///
    /// # Errors
    /// When the OS cannot tell (should not happen on a bound socket).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The hub, for in-process tests.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let state = HttpState { hub: Arc::clone(&self.hub), tracker: tracker.clone(), echo: self.settings.test_echo_endpoint };
        let accept = tokio::spawn(listen::accept_loop(self.listener, state, stop.clone()));
        shutdown.await;
        shutdown::drain(&self.hub, &stop, &tracker, self.settings.shutdown_grace).await;
        let _ = accept.await;
    }
}
