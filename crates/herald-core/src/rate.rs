//! The per-app budget of events the backend may publish through the HTTP API
//! (`max_backend_events_per_second`): a token bucket shared by every API connection of the app.
//!
//! Time is a parameter, so the bucket is tested without a clock. A request costs one token per
//! event and channel (what hosted Pusher counts as messages), capped at one second's budget so
//! that a single large batch can still pass once the bucket is full.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A token bucket refilling `rate` tokens per second, holding at most `rate`.
#[derive(Debug)]
pub struct EventBudget {
    rate: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Option<Instant>,
}

/// The budget is spent; the request should be retried later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{per_second} backend events per second exceeded; retry after {retry_after:?}")]
pub struct OverBudget {
    /// The app's limit.
    pub per_second: u32,
    /// When enough tokens will have been refilled for this request.
    pub retry_after: Duration,
}

impl EventBudget {
    /// A full bucket of `per_second` tokens; `per_second` must not be 0 (0 means "no limit" and
    /// is represented by having no budget at all).
    pub fn per_second(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self { rate, state: Mutex::new(Bucket { tokens: rate, last: None }) }
    }

    /// Takes `cost` tokens at `now`, or none at all.
    ///
    /// # Errors
    /// [`OverBudget`] with the wait after which the same request would pass.
    pub fn take(&self, cost: usize, now: Instant) -> Result<(), OverBudget> {
        let cost = (cost.max(1) as f64).min(self.rate);
        let mut b = self.state.lock();
        match b.last {
            // Callers read the clock before taking the lock, so `now` may be older than `last`:
            // never move `last` back, or the same interval would be refilled twice.
            Some(last) if now <= last => {}
            Some(last) => {
                let refill = (now - last).as_secs_f64() * self.rate;
                b.tokens = (b.tokens + refill).min(self.rate);
                b.last = Some(now);
            }
            None => b.last = Some(now),
        }
        if b.tokens >= cost {
            b.tokens -= cost;
            return Ok(());
        }
        let wait = (cost - b.tokens) / self.rate;
        Err(OverBudget { per_second: self.rate as u32, retry_after: Duration::from_secs_f64(wait) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_of_budget_then_refused_then_refilled() {
        let budget = EventBudget::per_second(100);
        let t0 = Instant::now();
        assert!((0..100).all(|_| budget.take(1, t0).is_ok()));
        let refused = budget.take(1, t0).unwrap_err();
        assert_eq!(refused.per_second, 100);
        assert!(refused.retry_after <= Duration::from_millis(10) && refused.retry_after > Duration::ZERO);
        assert!(budget.take(1, t0 + Duration::from_millis(10)).is_ok(), "one token refills in 10 ms");
    }

    #[test]
    fn a_refused_request_takes_nothing_and_a_huge_one_costs_one_second() {
        let budget = EventBudget::per_second(10);
        let t0 = Instant::now();
        assert!(budget.take(6, t0).is_ok());
        assert!(budget.take(5, t0).is_err());
        assert!(budget.take(4, t0).is_ok(), "the refused request took no tokens");
        assert!(budget.take(1000, t0 + Duration::from_secs(1)).is_ok(), "capped at one second's budget");
        assert!(budget.take(1, t0 + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_late_caller_with_an_older_clock_reading_does_not_refill_twice() {
        let budget = EventBudget::per_second(10);
        let t0 = Instant::now();
        assert!(budget.take(10, t0).is_ok());
        assert!(budget.take(10, t0 + Duration::from_secs(1)).is_ok());
        assert!(budget.take(1, t0 + Duration::from_millis(500)).is_err(), "an older reading refills nothing");
        assert!(budget.take(1, t0 + Duration::from_secs(1)).is_err(), "and does not move the refill point back");
    }
}
