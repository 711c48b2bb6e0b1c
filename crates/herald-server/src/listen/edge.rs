//! How one listener meets the network: TLS, proxy trust, path prefix, the process status (with
//! the per-address table) and the tracker of its plain connections.
//!
//! A leaf of the listening side: the accept loop (`listen.rs`), the HTTP handlers and the Oro
//! raw-head upgrade all read it, and it needs none of them.

use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use super::forwarded::IpNet;
use crate::config::OpsSettings;
use crate::status::ServerStatus;

/// How one listener meets the network.
#[derive(Clone)]
pub(crate) struct Edge {
    /// Terminates TLS when the listener has a certificate.
    pub(crate) tls: Option<TlsAcceptor>,
    /// Longest a TLS handshake may take.
    pub(crate) handshake_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub(crate) trusted: Arc<[IpNet]>,
    /// The reverse proxy's path prefix, stripped before routing.
    pub(crate) prefix: Option<Arc<str>>,
    /// Readiness, metrics and API counters.
    pub(crate) status: Arc<ServerStatus>,
    /// Tracks plain HTTP connections (not upgraded sessions).
    pub(crate) conns: TaskTracker,
}

impl Edge {
    /// The edge of a listener with these settings; `tls` when it terminates TLS.
    pub(crate) fn new(
        ops: &OpsSettings,
        tls: Option<Arc<rustls::ServerConfig>>,
        status: &Arc<ServerStatus>,
        conns: &TaskTracker,
    ) -> Arc<Self> {
        Arc::new(Self {
            tls: tls.map(TlsAcceptor::from),
            handshake_timeout: ops.tls_handshake_timeout,
            trusted: ops.trusted_proxies.clone().into(),
            prefix: ops.path_prefix.as_deref().map(Arc::from),
            status: Arc::clone(status),
            conns: conns.clone(),
        })
    }
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge").field("tls", &self.tls.is_some()).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}
