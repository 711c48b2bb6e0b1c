//! What the request handlers of one listener share: the hub, the session tracker and what the
//! listener serves.

use std::sync::Arc;

use herald_core::Hub;
use tokio_util::task::TaskTracker;

use crate::listen::edge::Edge;
use crate::runtime::Serves;

/// What request handlers share.
#[derive(Debug, Clone)]
pub(crate) struct HttpState {
    /// The hub.
    pub(crate) hub: Arc<Hub>,
    /// Tracks WebSocket session tasks so shutdown can wait for them.
    pub(crate) tracker: TaskTracker,
    /// Whether the `/echo` conformance endpoint is mounted.
    pub(crate) echo: bool,
    /// What this listener serves.
    pub(crate) profile: Arc<Serves>,
    /// The listener's TLS, proxy and health settings (`listen/edge.rs`).
    pub(crate) edge: Arc<Edge>,
    /// Channel and user queries answered from Redis when scaled out (`[scale_out]`).
    pub(crate) cluster: Option<Arc<herald_redis::ClusterQueries>>,
    /// The sessions of pusher-js's HTTP transports and SSE streams on this listener (`http_transport.rs`).
    pub(crate) transports: Arc<crate::http_transport::link::Sessions>,
    /// Where apps unknown to the hub are looked up (`[app_store]`); shared by every listener.
    pub(crate) directory: Arc<crate::app_store::AppDirectory>,
}
