//! The seam between this node and the others.
//!
//! Every publication accepted on a node is delivered locally by the hub and handed to the
//! backend, whose job is to make the other nodes deliver it too (they call `Hub::deliver`).
//! The embedded default, [`LocalBackend`], is a single node: there is nobody to tell. A Redis
//! pub/sub backend implements the same trait without touching protocol code.

use crate::app::App;
use crate::publication::Publication;

/// Carries publications to the other nodes of a cluster.
pub trait Backend: Send + Sync + 'static {
    /// Forwards a publication accepted on this node. Must not block: queue and return.
    fn broadcast(&self, app: &App, publication: &std::sync::Arc<Publication>);
}

/// One process, in-memory state: nothing to forward.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalBackend;

impl Backend for LocalBackend {
    fn broadcast(&self, _app: &App, _publication: &std::sync::Arc<Publication>) {}
}
