//! [`LinkState`]: whether each connection is up, and the link's counters. The backend reads it to
//! accept or refuse publishes; the publisher and subscriber tasks write it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Link state and counters, shared by the backend, its tasks and `/health`.
#[derive(Debug, Default)]
pub(crate) struct LinkState {
    pub(crate) publisher_up: AtomicBool,
    pub(crate) subscriber_up: AtomicBool,
    /// Publications handed to Redis.
    pub(crate) sent: AtomicU64,
    /// Publications from other nodes delivered here.
    pub(crate) received: AtomicU64,
    /// Publications delivered locally only because the queue was full.
    pub(crate) dropped: AtomicU64,
    /// Publications resent after a failed pipeline.
    pub(crate) retried: AtomicU64,
    /// Envelopes refused because another format version wrote them (never delivered).
    pub(crate) refused_version: AtomicU64,
    /// Reconnects that found entries trimmed before this node read them (away longer than the
    /// replay window).
    pub(crate) gaps: AtomicU64,
    /// Entries lost to those gaps.
    pub(crate) missed: AtomicU64,
    /// Publications delivered while catching up after a reconnect.
    pub(crate) replayed: AtomicU64,
    /// Streams found gone or behind the reader's cursor (Redis restarted without its data).
    pub(crate) resets: AtomicU64,
}

impl LinkState {
    /// Every counter by name, as `/health` and `/metrics` show them.
    pub(crate) fn counters(&self) -> Vec<(&'static str, u64)> {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("sent", read(&self.sent)),
            ("received", read(&self.received)),
            ("dropped", read(&self.dropped)),
            ("retried", read(&self.retried)),
            ("refused_version", read(&self.refused_version)),
            ("gaps", read(&self.gaps)),
            ("missed", read(&self.missed)),
            ("replayed", read(&self.replayed)),
            ("resets", read(&self.resets)),
        ]
    }
}
