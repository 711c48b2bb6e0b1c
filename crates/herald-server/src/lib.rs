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

use crate::config::{Profile, Settings};
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
    /// The main listener first, then the `[[listeners]]`, each with its profile and label.
    listeners: Vec<(TcpListener, Profile, Option<String>)>,
}

impl Server {
    /// Builds the hub and binds the listener.
    ///
    /// # Errors
    /// [`StartError`] when the port cannot be bound.
    pub async fn bind(settings: Settings) -> Result<Self, StartError> {
        let registry = AppRegistry::new(settings.apps.clone())?;
        let hub = Arc::new(Hub::new(registry, Arc::new(LocalBackend), settings.outbox));
        let main = config::ListenerSettings { host: settings.host.clone(), port: settings.port, profile: Profile::Pusher };
        let mut listeners = Vec::new();
        for l in std::iter::once(&main).chain(&settings.listeners) {
            let addr = format!("{}:{}", l.host, l.port);
            let tcp = listen::bind(&addr).await.map_err(|source| StartError::Bind { addr, source })?;
            listeners.push((tcp, l.profile.clone(), l.label()));
        }
        Ok(Self { settings, hub, listeners })
    }

    /// Every bound address with its label (`None` for the main listener).
    pub fn addrs(&self) -> Vec<(SocketAddr, Option<String>)> {
        self.listeners
            .iter()
            .filter_map(|(l, _, label)| l.local_addr().ok().map(|a| (a, label.clone())))
            .collect()
    }

    /// The address actually bound (the real port when 0 was asked for).
    ///
    /// # Errors
    /// When the OS cannot tell (should not happen on a bound socket).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self.listeners.first() {
            Some((l, _, _)) => l.local_addr(),
            None => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// The hub, for in-process tests.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut accepts = Vec::new();
        for (listener, profile, _) in self.listeners {
            let state = HttpState {
                hub: Arc::clone(&self.hub),
                tracker: tracker.clone(),
                echo: self.settings.test_echo_endpoint,
                profile: Arc::new(profile),
            };
            accepts.push(tokio::spawn(listen::accept_loop(listener, state, stop.clone())));
        }
        shutdown.await;
        shutdown::drain(&self.hub, &stop, &tracker, self.settings.shutdown_grace).await;
        for a in accepts {
            let _ = a.await;
        }
    }
}
