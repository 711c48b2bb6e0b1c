//! Process-wide counts of the HTTP transports, for `/metrics`.
//!
//! Statics rather than fields of a listener: `/metrics` is served by its own listener, which
//! shares only the hub and the process status with the others.

use std::sync::atomic::{AtomicU64, Ordering};

use super::path::Kind;

/// Open sessions, by the transport of their first receive request: streaming, polling.
static SESSIONS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
/// Requests: streaming receives, polling receives, sends.
static REQUESTS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn index(kind: Kind) -> usize {
    match kind {
        Kind::Streaming => 0,
        Kind::Polling => 1,
        Kind::Send => 2,
    }
}

/// A request to a transport URL.
pub(crate) fn request(kind: Kind) {
    REQUESTS[index(kind)].fetch_add(1, Ordering::Relaxed);
}

/// A session opened (`true`) or ended.
pub(crate) fn session(kind: Kind, opened: bool) {
    let Some(n) = SESSIONS.get(index(kind)) else { return };
    if opened {
        n.fetch_add(1, Ordering::Relaxed);
    } else {
        n.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Open sessions of `xhr_streaming` and `xhr_polling`.
pub(crate) fn sessions() -> [(&'static str, u64); 2] {
    [("xhr_streaming", SESSIONS[0].load(Ordering::Relaxed)), ("xhr_polling", SESSIONS[1].load(Ordering::Relaxed))]
}

/// Requests per transport URL kind.
pub(crate) fn requests() -> [(&'static str, u64); 3] {
    [
        ("xhr_streaming", REQUESTS[0].load(Ordering::Relaxed)),
        ("xhr_polling", REQUESTS[1].load(Ordering::Relaxed)),
        ("xhr_send", REQUESTS[2].load(Ordering::Relaxed)),
    ]
}
