//! [`Queued`], the item of the bounded queue from the backend (filled by the hub) to the
//! publisher task (drained into Redis).

use std::sync::Arc;

use herald_core::Publication;
use herald_core::app::HistoryPolicy;

/// One publication on its way to Redis.
pub(crate) struct Queued {
    /// The app's Redis stream.
    pub(crate) channel: Arc<str>,
    pub(crate) publication: Arc<Publication>,
    /// The channel's history policy when Redis sequences it (`history.lua`); `None`: a plain
    /// append, delivered locally already.
    pub(crate) history: Option<HistoryPolicy>,
}
