//! Process-wide counts of the HTTP transports, for `/metrics`.
//!
//! Statics rather than fields of a listener: `/metrics` is served by its own listener, which
//! shares only the hub and the process status with the others.

use std::sync::atomic::{AtomicU64, Ordering};

use super::path::Kind;

/// Open sessions, by the transport of their first receive request: streaming, polling, SSE.
static SESSIONS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
/// Requests: streaming receives, polling receives, sends, SSE streams.
static REQUESTS: [AtomicU64; 4] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn index(kind: Kind) -> usize {
    match kind {
        Kind::Streaming => 0,
        Kind::Polling => 1,
        Kind::Send => 2,
        Kind::Sse => 3,
    }
}

/// A request to a transport URL.
pub(crate) fn request(kind: Kind) {
    REQUESTS[index(kind)].fetch_add(1, Ordering::Relaxed);
}

/// A session opened (`true`) or ended.
pub(crate) fn session(kind: Kind, opened: bool) {
    // Sessions are streaming, polling or SSE (sends open none).
    let i = match kind {
        Kind::Streaming => 0,
        Kind::Polling => 1,
        Kind::Send | Kind::Sse => 2,
    };
    let Some(n) = SESSIONS.get(i) else { return };
    if opened {
        n.fetch_add(1, Ordering::Relaxed);
    } else {
        n.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Open sessions of `xhr_streaming`, `xhr_polling` and SSE.
pub(crate) fn sessions() -> [(&'static str, u64); 3] {
    [
        ("xhr_streaming", SESSIONS[0].load(Ordering::Relaxed)),
        ("xhr_polling", SESSIONS[1].load(Ordering::Relaxed)),
        ("sse", SESSIONS[2].load(Ordering::Relaxed)),
    ]
}

/// Requests per transport URL kind.
pub(crate) fn requests() -> [(&'static str, u64); 4] {
    [
        ("xhr_streaming", REQUESTS[0].load(Ordering::Relaxed)),
        ("xhr_polling", REQUESTS[1].load(Ordering::Relaxed)),
        ("xhr_send", REQUESTS[2].load(Ordering::Relaxed)),
        ("sse", REQUESTS[3].load(Ordering::Relaxed)),
    ]
}
