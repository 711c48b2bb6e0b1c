//! The generator's single time base: microseconds since the process started.
//!
//! Publishers stamp each payload with this clock and subscribers subtract the stamp from the
//! time their read returned, so publisher and subscribers must live in one process (they do:
//! a fan-out run is one generator process).
#![allow(
    clippy::disallowed_types,
    reason = "a load generator measures wall-clock latency; nothing here runs on paused time"
)]

use std::sync::OnceLock;
use std::time::Instant;

/// The instant every timestamp counts from.
static BASE: OnceLock<Instant> = OnceLock::new();

/// The base instant, fixed by the first call of any function in this module.
pub fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

/// Microseconds elapsed since [`base`].
pub fn now_us() -> u64 {
    u64::try_from(base().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// The instant `us` microseconds after [`base`], for sleeping until a publish is due.
pub fn instant_at(us: u64) -> Instant {
    base() + std::time::Duration::from_micros(us)
}
