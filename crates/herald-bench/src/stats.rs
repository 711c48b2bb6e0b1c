//! Delivery bookkeeping shared by every subscriber task of the (single-threaded) generator:
//! a count and an HDR latency histogram per publish phase, and a running total.
//!
//! Phases keep a slow server honest: a publish stamped with phase 3 is counted in phase 3 even
//! when it arrives during phase 4, so a step's delivery ratio covers exactly its own publishes.

use std::cell::{Cell, RefCell};

use hdrhistogram::Histogram;

/// Highest latency the histograms track: 60 s, in microseconds. Anything later saturates.
const MAX_TRACKED_US: u64 = 60_000_000;

/// A new latency histogram: 1 µs to 60 s at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy the constructor (low ≥ 1, high ≥ 2·low, sigfig ≤ 5).
    Histogram::new_with_bounds(1, MAX_TRACKED_US, 3).unwrap_or_else(|_| unreachable!("valid constant bounds"))
}

/// Deliveries of one phase.
#[derive(Debug)]
pub struct Phase {
    /// How many deliveries arrived.
    pub count: u64,
    /// Send-to-receive latency of each, in microseconds.
    pub latency: Histogram<u64>,
}

/// The counters every subscriber task writes into.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Per-phase counts and histograms, indexed by phase number; grown on demand.
    phases: RefCell<Vec<Phase>>,
    /// All deliveries ever recorded, for rates over a wall-clock window.
    total: Cell<u64>,
    /// Subscriber connections that ended while the run still wanted them.
    lost: Cell<u64>,
}

impl Deliveries {
    /// Records one delivery of `phase` that took `latency_us`.
    pub fn record(&self, phase: u32, latency_us: u64) {
        let phase = phase as usize;
        let mut phases = self.phases.borrow_mut();
        if phases.len() <= phase {
            phases.resize_with(phase + 1, || Phase { count: 0, latency: new_histogram() });
        }
        let p = &mut phases[phase];
        p.count += 1;
        p.latency.saturating_record(latency_us.max(1));
        self.total.set(self.total.get() + 1);
    }

    /// All deliveries recorded so far.
    pub fn total(&self) -> u64 {
        self.total.get()
    }

    /// Deliveries recorded for `phase` so far.
    pub fn count(&self, phase: u32) -> u64 {
        self.phases.borrow().get(phase as usize).map_or(0, |p| p.count)
    }

    /// A copy of `phase`'s counters (empty if nothing arrived).
    pub fn snapshot(&self, phase: u32) -> Phase {
        self.phases.borrow().get(phase as usize).map_or_else(
            || Phase { count: 0, latency: new_histogram() },
            |p| Phase { count: p.count, latency: p.latency.clone() },
        )
    }

    /// Notes that a subscriber connection ended unexpectedly.
    pub fn connection_lost(&self) {
        self.lost.set(self.lost.get() + 1);
    }

    /// Subscriber connections that ended unexpectedly so far.
    pub fn lost(&self) -> u64 {
        self.lost.get()
    }
}

/// Percentiles of a latency histogram in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest value recorded.
    pub max_ms: f64,
}

impl Percentiles {
    /// Reads the percentiles of a histogram of microseconds; all zero when it is empty.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_counted_apart() {
        let d = Deliveries::default();
        d.record(1, 500);
        d.record(1, 1500);
        d.record(3, 10);
        assert_eq!((d.count(0), d.count(1), d.count(3), d.total()), (0, 2, 1, 3));
        let p = Percentiles::of(&d.snapshot(1).latency);
        assert!((p.max_ms - 1.5).abs() < 0.01, "{p:?}");
    }
}
