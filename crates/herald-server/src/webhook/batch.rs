//! Groups an endpoint's events into requests, sans IO: a request holds at most `max` events and
//! goes out `window` after its first event (at once with a window of 0), or as soon as it is full.

use std::time::Duration;

use herald_core::Event;
use tokio::time::Instant;

/// The events of the next request.
#[derive(Debug)]
pub(crate) struct Batcher<T = Event> {
    window: Duration,
    max: usize,
    pending: Vec<T>,
    /// When the first pending event came.
    opened: Option<Instant>,
}

impl<T> Batcher<T> {
    /// A batcher of requests of at most `max` (at least 1) events, waiting `window`.
    pub(crate) fn new(window: Duration, max: usize) -> Self {
        Self { window, max: max.max(1), pending: Vec::new(), opened: None }
    }

    /// Adds `event`, come at `now`.
    pub(crate) fn push(&mut self, event: T, now: Instant) {
        self.opened.get_or_insert(now);
        self.pending.push(event);
    }

    /// The next request's events, if one is due at `now`.
    pub(crate) fn take(&mut self, now: Instant) -> Option<Vec<T>> {
        let due = self.pending.len() >= self.max || self.deadline().is_some_and(|at| at <= now);
        if !due {
            return None;
        }
        let n = self.pending.len().min(self.max);
        let batch: Vec<T> = self.pending.drain(..n).collect();
        // What is left over from a full request starts its own window now.
        self.opened = (!self.pending.is_empty()).then_some(now);
        Some(batch)
    }

    /// Everything pending, in requests of at most `max` events (shutdown).
    pub(crate) fn flush(&mut self) -> Vec<Vec<T>> {
        self.opened = None;
        let mut out = Vec::new();
        while !self.pending.is_empty() {
            let n = self.pending.len().min(self.max);
            out.push(self.pending.drain(..n).collect());
        }
        out
    }

    /// When the pending events are due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.opened.map(|at| at + self.window)
    }

    /// Events pending.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use herald_protocol::pusher::channel_name::ChannelName;

    use super::*;

    fn ev(i: usize) -> Event {
        Event::CacheMiss { channel: ChannelName::parse(&format!("cache-{i}"), 200).unwrap() }
    }

    #[test]
    fn no_window_sends_at_once() {
        let t0 = Instant::now();
        let mut b = Batcher::<Event>::new(Duration::ZERO, 50);
        assert_eq!(b.take(t0), None);
        b.push(ev(1), t0);
        b.push(ev(2), t0);
        assert_eq!(b.take(t0), Some(vec![ev(1), ev(2)]));
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn a_window_waits_for_more_until_full() {
        let t0 = Instant::now();
        let window = Duration::from_millis(500);
        let mut b = Batcher::<Event>::new(window, 3);
        b.push(ev(1), t0);
        b.push(ev(2), t0 + Duration::from_millis(100));
        assert_eq!(b.take(t0 + Duration::from_millis(499)), None);
        assert_eq!(b.deadline(), Some(t0 + window));
        assert_eq!(b.take(t0 + window), Some(vec![ev(1), ev(2)]));
        for i in 0..4 {
            b.push(ev(i), t0 + window);
        }
        let t1 = t0 + window + Duration::from_millis(1);
        assert_eq!(b.take(t1), Some(vec![ev(0), ev(1), ev(2)]), "full: no wait");
        assert_eq!(b.take(t1), None, "the rest waits its own window");
        assert_eq!(b.deadline(), Some(t1 + window));
        b.push(ev(9), t1);
        assert_eq!(b.flush(), vec![vec![ev(3), ev(9)]]);
        assert_eq!(b.len(), 0);
    }
}
