//! What moves through an endpoint's pipeline: an event and, when it came from a durable queue
//! (Redis, in a cluster), the receipt that queue waits for before it moves past the event.
//!
//! The pipeline's stages are generic over [`Item`], so they settle a receipt wherever they are
//! done with an event: filtered out, cancelled by the debounce, delivered, refused or given up.

use herald_core::{Event, Receipt};

/// An event on its way to an endpoint.
pub(crate) trait Item {
    /// The event.
    fn event(&self) -> &Event;
    /// The endpoint is done with it (sent, refused, given up, filtered or cancelled).
    fn settle(self);
}

impl Item for Event {
    fn event(&self) -> &Event {
        self
    }

    fn settle(self) {}
}

/// An event and its queue's receipt.
#[derive(Debug)]
pub(crate) struct Hook {
    pub(crate) event: Event,
    pub(crate) receipt: Receipt,
}

impl Item for Hook {
    fn event(&self) -> &Event {
        &self.event
    }

    fn settle(self) {
        self.receipt.complete();
    }
}
