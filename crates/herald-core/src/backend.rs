//! The seam between this node and the others.
//!
//! Every publication accepted on a node is delivered locally by the hub and handed to the
//! backend, whose job is to make the other nodes deliver it too (they call `Hub::deliver`).
//! The embedded default, [`LocalBackend`], is a single node: there is nobody to tell. A Redis
//! pub/sub backend implements the same trait without touching protocol code.

use herald_protocol::pusher::channel_name::Access;

use crate::app::App;
use crate::events::{Event, EventSink};
use crate::publication::Publication;

/// Carries publications to the other nodes of a cluster.
pub trait Backend: Send + Sync + 'static {
    /// Forwards a publication accepted on this node. Must not block: queue and return.
    fn broadcast(&self, app: &App, publication: &std::sync::Arc<Publication>);

    /// Whether a publication handed over now would reach the other nodes.
    ///
    /// Publishers that can be told to retry (the HTTP API) ask first and refuse when this fails,
    /// so that nothing they accept is lost while the link is down.
    ///
    /// # Errors
    /// [`Unavailable`] while the link to the other nodes is down or its queue is full.
    fn available(&self) -> Result<(), Unavailable> {
        Ok(())
    }

    /// A short name for health reports (`local`, `redis`).
    fn name(&self) -> &'static str {
        "local"
    }

    /// The backend's counters (name, value), for `/health` and `/metrics`: what it sent,
    /// received, replayed or lost. Names are `snake_case`; none on one node.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Whether this backend keeps channel and user state across nodes. The hub then reports
    /// every change of this node to [`Backend::changed`], whether or not a sink wants it.
    fn shares_state(&self) -> bool {
        false
    }

    /// Takes a change the hub made on this node (called under the channel's lock: queue and
    /// return). On one node it is a change of the cluster: it goes to `events` as it is.
    fn changed(&self, app: &App, change: Event, events: &dyn EventSink) {
        emit_as_the_cluster(app, change, events);
    }
}

/// Emits a change of this node as the cluster's: what a backend that shares no state does.
fn emit_as_the_cluster(app: &App, change: Event, events: &dyn EventSink) {
    // Pusher sends no `subscription_count` for presence channels (members are counted).
    if let Event::SubscriptionCount { channel, .. } = &change
        && channel.kind().access == Access::Presence
    {
        return;
    }
    if events.wants(app, change.kind()) {
        events.emit(app, change);
    }
}

/// Why a backend cannot take publications right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// The connection to the other nodes is down; the backend is reconnecting.
    #[error("the {0} link to the other nodes is down; retry later")]
    LinkDown(&'static str),
    /// Publications are queued faster than the backend can forward them.
    #[error("the {0} publish queue is full; retry later")]
    QueueFull(&'static str),
}

/// One process, in-memory state: nothing to forward.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalBackend;

impl Backend for LocalBackend {
    fn broadcast(&self, _app: &App, _publication: &std::sync::Arc<Publication>) {}
}
