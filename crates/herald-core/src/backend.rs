//! The seam between this node and the others.
//!
//! Every publication accepted on a node is delivered locally by the hub and handed to the
//! backend, whose job is to make the other nodes deliver it too (they call `Hub::deliver`).
//! The embedded default, [`LocalBackend`], is a single node: there is nobody to tell. A Redis
//! pub/sub backend implements the same trait without touching protocol code.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use herald_protocol::pusher::channel_name::{Access, ChannelName};

use crate::app::App;
use crate::events::{Event, EventSink};
use crate::history::RecoverError;
use crate::publication::Publication;

/// The answer of [`Backend::history_after`]: runs on the runtime, never under a hub lock.
pub type HistoryFetch = Pin<Box<dyn Future<Output = Result<Vec<Arc<Publication>>, FetchError>> + Send + 'static>>;

/// Why the backend's shared history could not hand out what a recovering client missed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The shared history does not hold it either (or the position is not one of its own).
    #[error("{0}")]
    Recover(RecoverError),
    /// The shared history could not be read.
    #[error("the shared history cannot be read: {0}")]
    Unavailable(String),
}

/// Carries publications to the other nodes of a cluster.
pub trait Backend: Send + Sync + 'static {
    /// Forwards a publication accepted on this node. Must not block: queue and return.
    fn broadcast(&self, app: &App, publication: &Arc<Publication>);

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

    /// Whether this backend gives the publications of `channel` (a channel with history) their
    /// position itself and delivers them on every node, this one included, once positioned:
    /// [`crate::Hub::publish`] then leaves the local delivery to it, so that every node
    /// delivers the channel's publications in one order with one serial.
    fn sequences(&self, _app: &App, _channel: &ChannelName) -> bool {
        false
    }

    /// The publications of `channel` after position `(epoch, serial)` as the backend's shared
    /// history holds them, oldest first, each positioned: for a recovering client whose gap
    /// this node does not hold (it started later, or lags). Counted in [`Backend::counters`].
    fn history_after(&self, _app: &App, _channel: &ChannelName, _epoch: &str, _serial: u64) -> HistoryFetch {
        Box::pin(std::future::ready(Err(FetchError::Recover(RecoverError::UnknownEpoch))))
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
    fn broadcast(&self, _app: &App, _publication: &Arc<Publication>) {}
}
