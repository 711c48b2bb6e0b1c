//! herald's server: listeners, WebSocket sessions, the Pusher HTTP API, config and shutdown.
//!
//! `main.rs` parses the command line and calls [`Server::bind`] then [`Server::run`]; tests do
//! the same on `127.0.0.1:0`.

mod app_store;
pub mod apps;
mod civil_date;
pub mod cli;
pub mod config;
mod dashboard;
pub mod fd_limit;
mod http;
mod http_transport;
mod ingress;
mod listen;
mod profile;
pub mod reload;
pub mod restart;
mod runtime;
pub mod scale_out;
mod session;
pub mod shutdown;
mod status;
pub mod telemetry;
pub mod tls;
mod webhook;
mod ws;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use herald_core::{AppRegistry, Hub};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Profile, Settings};
use crate::http::state::HttpState;
use crate::runtime::Serves;

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
    /// A certificate or key cannot be used (exit code 64: it is a configuration problem).
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The scale-out Redis URL cannot be used (exit code 64).
    #[error(transparent)]
    ScaleOut(#[from] scale_out::ScaleOutError),
    /// The Oro profile's app or routes cannot be used (exit code 64; config validation normally
    /// refuses them first).
    #[error(transparent)]
    Oro(#[from] profile::oro::OroError),
    /// A webhook endpoint cannot be used (exit code 64; config validation normally refuses it
    /// first).
    #[error("{0}")]
    Webhook(String),
}

impl StartError {
    /// The process exit code (sysexits): 64 for configuration problems, 69 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Tls(_)
            | StartError::Apps(_)
            | StartError::ScaleOut(_)
            | StartError::Oro(_)
            | StartError::Webhook(_) => 64,
            StartError::Bind { .. } => 69,
        }
    }
}

/// A TLS listener's certificate store and the rustls configuration resolving through it.
type ListenerTls = Option<(Arc<tls::CertStore>, Arc<rustls::ServerConfig>)>;

/// A bound, not yet running, herald.
#[derive(Debug)]
pub struct Server {
    settings: Settings,
    hub: Arc<Hub>,
    /// The main listener first, then the `[[listeners]]`, each with what it serves and its label.
    listeners: Vec<runtime::Bound>,
    /// Bound ZeroMQ ingress sockets (EspoCRM profile), started by `run`.
    ingress: Vec<ingress::zmq::PullIngress>,
    /// TLS of `listeners[i]` (same order).
    tls: Vec<ListenerTls>,
    /// The separate `/up`, `/ready`, `/health`, `/metrics` listener (`[server] metrics_port`).
    metrics: Option<TcpListener>,
    /// The Redis link to the other nodes (`[scale_out]`), started by `run`.
    scale_out: Option<herald_redis::RedisLink>,
    /// SIGHUP, taken over from its default action (exit) at bind time, before the ports are
    /// announced: `systemctl reload` right after start must not kill herald.
    hangup: std::io::Result<tokio::signal::unix::Signal>,
    /// The hub's apps, changed at runtime through this (SIGHUP, app stores) so that their
    /// webhooks follow.
    apps: Arc<apps::Apps>,
    /// The apps' webhooks (`[[apps.webhooks]]`), delivering from bind time on; apps may gain
    /// them at runtime, so they exist (and cost an emptiness check per event) even when none has.
    webhooks: Arc<webhook::Webhooks>,
    /// In a cluster with webhooks: their queue in Redis, started by `run`.
    hooks: Option<herald_redis::hooks::HookQueue>,
    /// How SIGHUP reloads the apps; `None`: it reloads certificates only.
    apps_reload: Option<reload::AppsReload>,
    /// Where the edge finds apps: the hub, then the `[app_store]` table; refreshed by `run`.
    directory: Arc<app_store::AppDirectory>,
}

impl Server {
    /// Builds the hub and binds the listener.
    ///
    /// # Errors
    /// [`StartError`] when the port cannot be bound.
    pub async fn bind(settings: Settings) -> Result<Self, StartError> {
        let registry = AppRegistry::new(settings.apps.clone())?;
        let (backend, scale_out) = scale_out::start(settings.scale_out.as_ref(), &registry).await?;
        let webhooks = webhook::Webhooks::start(&registry).map_err(|e| StartError::Webhook(e.to_string()))?;
        let webhooks = Arc::new(webhooks);
        // On a shared Redis (one server or a cluster), webhook events go through it: sent once,
        // by one node, surviving nodes.
        let hooks = match &settings.scale_out {
            Some(s) => {
                let apps: Vec<Arc<herald_core::App>> = registry.iter().cloned().collect();
                let queue = if s.redis_cluster.is_empty() {
                    herald_redis::hooks::HookQueue::new(&s.redis_url, &s.prefix, &apps, webhooks.consumer())
                } else {
                    herald_redis::hooks::HookQueue::new_cluster(&s.redis_cluster, &s.prefix, &apps, webhooks.consumer())
                };
                let queue = queue.map_err(|source| scale_out::ScaleOutError::Url { url: s.redacted_url(), source })?;
                Some(queue)
            }
            None => None,
        };
        let hub = Hub::new(registry, backend, settings.outbox).with_history_budget(settings.history.max_bytes);
        let hub = Arc::new(match &hooks {
            Some(q) => hub.with_events(q.sink()),
            None => hub.with_events(webhooks.sink()),
        });
        let apps = apps::Apps::new(Arc::clone(&hub))
            .with_webhooks(Arc::clone(&webhooks), hooks.as_ref().map(herald_redis::hooks::HookQueue::apps));
        let apps = Arc::new(apps);
        let directory = Arc::new(app_store::AppDirectory::new(Arc::clone(&apps), settings.app_store.as_ref()));
        let main = config::ListenerSettings {
            host: settings.host.clone(),
            port: settings.port,
            profile: Profile::Pusher,
            tls: settings.ops.tls.clone(),
        };
        // Certificates first: a bad file stops herald before any port is bound.
        let mut tls = Vec::new();
        for l in std::iter::once(&main).chain(&settings.listeners) {
            let Some(files) = &l.tls else {
                tls.push(None);
                continue;
            };
            let store = tls::CertStore::open(files.clone())?;
            let config = store.server_config()?;
            tls.push(Some((store, config)));
        }
        let reuse_port = settings.ops.reuse_port;
        let mut listeners = Vec::new();
        for l in std::iter::once(&main).chain(&settings.listeners) {
            let addr = format!("{}:{}", l.host, l.port);
            let tcp = listen::bind_with(&addr, reuse_port).map_err(|source| StartError::Bind { addr, source })?;
            // The runtime objects need the bound port (the Oro profile checks its backend DSN).
            let port = tcp.local_addr().map_or(l.port, |a| a.port());
            let serves = runtime::serves(&l.profile, &hub, port)?;
            listeners.push((tcp, serves, l.label()));
        }
        let metrics = match &settings.ops.metrics_addr {
            Some((host, port)) => {
                let addr = format!("{host}:{port}");
                Some(listen::bind_with(&addr, reuse_port).map_err(|source| StartError::Bind { addr, source })?)
            }
            None => None,
        };
        runtime::install_authorizers(&hub, &listeners);
        let ingress = runtime::bind_ingress(&hub, &mut listeners)
            .await
            .map_err(|e| StartError::Bind { addr: e.endpoint, source: e.source })?;
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        let apps_reload = None;
        Ok(Self {
            settings,
            hub,
            apps,
            listeners,
            ingress,
            tls,
            metrics,
            scale_out,
            hangup,
            webhooks,
            hooks,
            apps_reload,
            directory,
        })
    }

    /// This server, loading its apps again with `load` on each SIGHUP (see `reload.rs`).
    #[must_use]
    pub fn with_apps_reload(mut self, load: reload::LoadApps) -> Self {
        self.apps_reload = Some(reload::AppsReload::new(load, &self.settings.apps));
        self
    }

    /// Every bound address with its label (`None` for the main listener).
    pub fn addrs(&self) -> Vec<(SocketAddr, Option<String>)> {
        self.listeners
            .iter()
            .filter_map(|(l, _, label)| l.local_addr().ok().map(|a| (a, label.clone())))
            .chain(self.metrics.iter().filter_map(|l| l.local_addr().ok().map(|a| (a, Some("metrics".to_owned())))))
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

    /// The apps, to change while the server runs (an app store): changes made through this
    /// reach the webhooks too, unlike those made on the hub directly.
    pub fn apps(&self) -> &Arc<apps::Apps> {
        &self.apps
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let stop = CancellationToken::new();
        let tracker = TaskTracker::new();
        let ops = &self.settings.ops;
        let mut status = status::ServerStatus::new(ops.per_ip);
        status.webhooks = Some(self.webhooks.metrics());
        status.app_store = self.directory.has_store().then(|| Arc::clone(&self.directory.metrics));
        let status = Arc::new(status);
        let hooks = self.hooks.map(herald_redis::hooks::HookQueue::spawn);
        // Plain HTTP connections, drained before the sessions (shutdown.rs).
        let conns = TaskTracker::new();
        let mut accepts = Vec::new();
        let cluster = self.scale_out.as_ref().and_then(herald_redis::RedisLink::queries);
        for (i, (listener, serves, _)) in self.listeners.into_iter().enumerate() {
            let config = self.tls.get(i).and_then(|t| t.as_ref().map(|(_, c)| Arc::clone(c)));
            if let Serves::Oro(oro) = &serves {
                oro.start(&tracker, &stop);
            }
            let state = HttpState {
                hub: Arc::clone(&self.hub),
                tracker: tracker.clone(),
                echo: self.settings.test_echo_endpoint,
                profile: Arc::new(serves),
                edge: listen::edge::Edge::new(ops, config, &status, &conns),
                cluster: cluster.clone(),
                transports: Arc::default(),
                directory: Arc::clone(&self.directory),
            };
            // On the connection tracker: a drain waits for the loops' final sweep of the backlog.
            accepts.push(conns.spawn(listen::accept_loop(listener, state, stop.clone())));
        }
        // The metrics listener and certificate reloads outlive the drain, so `/ready` can be
        // seen failing and a SIGHUP during it still works.
        let ops_stop = CancellationToken::new();
        if let Some(listener) = self.metrics {
            let edge = listen::edge::Edge::new(ops, None, &status, &TaskTracker::new());
            let dashboard =
                self.settings.dashboard.clone().map(|d| dashboard::Dashboard::start(d, &self.hub, &ops_stop));
            tokio::spawn(listen::ops_loop(listener, Arc::clone(&self.hub), dashboard, edge, ops_stop.clone()));
        }
        let stores = self.tls.iter().flatten().map(|(s, _)| Arc::clone(s)).collect();
        let apps = self.apps_reload.map(|r| (r, Arc::clone(&self.apps)));
        tokio::spawn(reload::on_sighup(stores, apps, self.hangup, ops_stop.clone()));
        for i in self.ingress {
            tracker.spawn(i.run(stop.clone()));
        }
        let scale_out = self.scale_out.map(|link| link.spawn(Arc::clone(&self.hub)));
        let app_store_stop = CancellationToken::new();
        let app_store = self.directory.spawn(&app_store_stop);
        shutdown.await;
        shutdown::drain(shutdown::Drain {
            hub: &self.hub,
            status: &status,
            stop: &stop,
            conns: &conns,
            sessions: &tracker,
            grace: self.settings.shutdown_grace,
            history_snapshot: self.settings.history.snapshot_file.as_deref(),
        })
        .await;
        // After the drain: the departures of the sessions it closed are sent too, for a bounded time.
        self.webhooks.stop().await;
        // Then the cluster's queue: what the delivery settled moves the cursor, the rest stays
        // in Redis for the node that takes the lease next.
        if let Some(h) = hooks {
            h.stop().await;
        }
        ops_stop.cancel();
        app_store_stop.cancel();
        if let Some(task) = app_store {
            let _ = task.await;
        }
        // After the drain: publications accepted until the end are still handed to Redis.
        if let Some(link) = scale_out {
            link.stop().await;
        }
        for a in accepts {
            let _ = a.await;
        }
    }
}
