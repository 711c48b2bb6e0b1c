//! Counters for metrics: plain relaxed atomics bumped on the hot paths, read by the exporter.
//!
//! Nothing here allocates, locks or looks up a label at count time: each counter is a field
//! reached through a handle the caller already holds (the `App`, the `Hub`). Rendering them in
//! a metrics format is the server's business.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::wire::Wire;

/// The protocol families herald speaks, as metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Pusher Channels protocol 7.
    Pusher,
    /// WAMP v1 (subprotocol `wamp`).
    WampV1,
    /// WAMP v2, any serializer.
    WampV2,
}

impl Protocol {
    /// Every protocol, in label order.
    pub const ALL: [Protocol; 3] = [Protocol::Pusher, Protocol::WampV1, Protocol::WampV2];

    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Pusher => "pusher",
            Protocol::WampV1 => "wamp1",
            Protocol::WampV2 => "wamp2",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl From<Wire> for Protocol {
    fn from(wire: Wire) -> Self {
        match wire {
            Wire::Pusher => Protocol::Pusher,
            Wire::WampV1 => Protocol::WampV1,
            Wire::WampV2(_) => Protocol::WampV2,
        }
    }
}

/// One counter per protocol.
#[derive(Debug, Default)]
pub struct PerProtocol([AtomicU64; 3]);

impl PerProtocol {
    /// Adds `n` to the protocol's counter.
    pub fn add(&self, protocol: Protocol, n: u64) {
        self.0[protocol.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// The protocol's current value.
    pub fn get(&self, protocol: Protocol) -> u64 {
        self.0[protocol.index()].load(Ordering::Relaxed)
    }
}

/// Upper bounds of the publish latency buckets, in microseconds (the last bucket is `+Inf`).
pub const LATENCY_BOUNDS_US: [u64; 12] = [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 25_000, 100_000];

/// A fixed-bucket latency histogram (Prometheus semantics: buckets are rendered cumulatively).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per-bucket counts, not cumulative; index `LATENCY_BOUNDS_US.len()` is the overflow bucket.
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

/// A point-in-time copy of a [`Histogram`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Cumulative counts for each bound of [`LATENCY_BOUNDS_US`], then `+Inf`.
    pub cumulative: Vec<u64>,
    /// Sum of all observations, in nanoseconds.
    pub sum_ns: u64,
    /// Number of observations.
    pub count: u64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BOUNDS_US.iter().position(|b| us <= *b).unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The current counts, cumulative per bucket.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        // The count is the overflow bucket's cumulative value, so the two always agree.
        HistogramSnapshot { cumulative, sum_ns: self.sum_ns.load(Ordering::Relaxed), count: total }
    }
}

/// What one app has seen since start.
#[derive(Debug, Default)]
pub struct AppStats {
    /// WebSocket messages received from clients, per protocol.
    pub messages_in: PerProtocol,
    /// Frames queued to subscribers by fan-out, per protocol of the receiver.
    pub messages_out: PerProtocol,
    /// Publications accepted on this node (HTTP API, client events, WAMP publishes).
    pub publications: AtomicU64,
    /// Time from accepting a publication to having it in every local subscriber's outbox.
    pub publish_latency: Histogram,
    /// WebSocket upgrades refused because their `Origin` is not in `allowed_origins`.
    pub origin_refused: AtomicU64,
    /// Live consoles watching this app (the server's dashboard): while zero, each place that
    /// could report to one costs this one relaxed load.
    pub watchers: AtomicU64,
}

impl AppStats {
    /// Counts one client message of `protocol`.
    pub fn message_in(&self, protocol: Protocol) {
        self.messages_in.add(protocol, 1);
    }
}

/// Process-wide connection counters, kept by the hub.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Connections opened since start, per protocol.
    pub opened: PerProtocol,
    /// Connections closed since start, per protocol.
    pub closed: PerProtocol,
    /// WAMP v2 upgrades refused before any realm was named: no WAMP app admits their origin.
    pub origin_refused_no_realm: AtomicU64,
}

impl HubStats {
    /// Connections open now, per protocol.
    pub fn open(&self, protocol: Protocol) -> u64 {
        self.opened.get(protocol).saturating_sub(self.closed.get(protocol))
    }
}

/// Sockets closed because their outbox overflowed, process-wide.
static SLOW_CONSUMERS: AtomicU64 = AtomicU64::new(0);

/// Counts one socket marked as a slow consumer.
pub(crate) fn slow_consumer_marked() {
    SLOW_CONSUMERS.fetch_add(1, Ordering::Relaxed);
}

/// Sockets marked as slow consumers (and so closed) since the process started.
pub fn slow_consumers_total() -> u64 {
    SLOW_CONSUMERS.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(3));
        h.observe(Duration::from_micros(7));
        h.observe(Duration::from_secs(2));
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1, "<= 5us");
        assert_eq!(s.cumulative[1], 2, "<= 10us");
        assert_eq!(s.cumulative[LATENCY_BOUNDS_US.len() - 1], 2);
        assert_eq!(*s.cumulative.last().unwrap(), 3, "+Inf holds everything");
        assert_eq!(s.count, 3);
        assert_eq!(s.sum_ns, 3_000 + 7_000 + 2_000_000_000);
    }

    #[test]
    fn open_connections_never_go_negative() {
        let s = HubStats::default();
        s.opened.add(Protocol::Pusher, 2);
        s.closed.add(Protocol::Pusher, 1);
        assert_eq!(s.open(Protocol::Pusher), 1);
        assert_eq!(s.open(Protocol::WampV2), 0);
    }
}
