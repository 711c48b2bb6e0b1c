//! The token bucket behind every rate limit: the per-app budget of events the backend may
//! publish through the HTTP API (`max_backend_events_per_second`, one bucket behind a lock in
//! [`App`](crate::App)), and the per-connection limits a session keeps in its own task (client
//! events, WAMP publishes).
//!
//! Time is a parameter, on tokio's clock, so tests can pause and advance it. A request costs
//! one token per event and channel (what hosted Pusher counts as messages), capped at one
//! second's budget so that a single large batch can still pass once the bucket is full.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket refilling `rate` tokens per second, holding at most `rate`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Option<Instant>,
}

/// The budget is spent; the request should be retried later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{per_second} backend events per second exceeded; retry after {retry_after:?}")]
pub struct OverBudget {
    /// The limit.
    pub per_second: u32,
    /// When enough tokens will have been refilled for this request.
    pub retry_after: Duration,
}

impl TokenBucket {
    /// A full bucket of `per_second` tokens. `0` gives a bucket that never holds a token and
    /// refuses everything; where 0 means "no limit", the caller keeps no bucket at all.
    pub fn per_second(per_second: u32) -> Self {
        let rate = f64::from(per_second);
        Self { rate, tokens: rate, last: None }
    }

    /// Takes `cost` tokens at `now`, or none at all.
    ///
    /// # Errors
    /// [`OverBudget`] with the wait after which the same request would pass
    /// ([`Duration::MAX`] for a bucket of rate 0).
    pub fn take(&mut self, cost: usize, now: Instant) -> Result<(), OverBudget> {
        if self.rate == 0.0 {
            return Err(OverBudget { per_second: 0, retry_after: Duration::MAX });
        }
        let cost = (cost.max(1) as f64).min(self.rate);
        match self.last {
            // A shared bucket's callers read the clock before taking its lock, so `now` may be
            // older than `last`: never move `last` back, or the same interval would be refilled
            // twice.
            Some(last) if now <= last => {}
            Some(last) => {
                let refill = (now - last).as_secs_f64() * self.rate;
                self.tokens = (self.tokens + refill).min(self.rate);
                self.last = Some(now);
            }
            None => self.last = Some(now),
        }
        if self.tokens >= cost {
            self.tokens -= cost;
            return Ok(());
        }
        let wait = (cost - self.tokens) / self.rate;
        Err(OverBudget { per_second: self.rate as u32, retry_after: Duration::from_secs_f64(wait) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_of_budget_then_refused_then_refilled() {
        let mut budget = TokenBucket::per_second(100);
        let t0 = Instant::now();
        assert!((0..100).all(|_| budget.take(1, t0).is_ok()));
        let refused = budget.take(1, t0).unwrap_err();
        assert_eq!(refused.per_second, 100);
        assert!(refused.retry_after <= Duration::from_millis(10) && refused.retry_after > Duration::ZERO);
        assert!(budget.take(1, t0 + Duration::from_millis(10)).is_ok(), "one token refills in 10 ms");
    }

    #[test]
    fn a_refused_request_takes_nothing_and_a_huge_one_costs_one_second() {
        let mut budget = TokenBucket::per_second(10);
        let t0 = Instant::now();
        assert!(budget.take(6, t0).is_ok());
        assert!(budget.take(5, t0).is_err());
        assert!(budget.take(4, t0).is_ok(), "the refused request took no tokens");
        assert!(budget.take(1000, t0 + Duration::from_secs(1)).is_ok(), "capped at one second's budget");
        assert!(budget.take(1, t0 + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_late_caller_with_an_older_clock_reading_does_not_refill_twice() {
        let mut budget = TokenBucket::per_second(10);
        let t0 = Instant::now();
        assert!(budget.take(10, t0).is_ok());
        assert!(budget.take(10, t0 + Duration::from_secs(1)).is_ok());
        assert!(budget.take(1, t0 + Duration::from_millis(500)).is_err(), "an older reading refills nothing");
        assert!(budget.take(1, t0 + Duration::from_secs(1)).is_err(), "and does not move the refill point back");
    }

    #[test]
    fn rate_zero_refuses_everything() {
        let mut none = TokenBucket::per_second(0);
        let t0 = Instant::now();
        assert!(none.take(1, t0).is_err());
        assert!(none.take(1, t0 + Duration::from_secs(60)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn ten_per_second_on_paused_time() {
        let mut b = TokenBucket::per_second(10);
        let now = Instant::now();
        assert!((0..10).all(|_| b.take(1, now).is_ok()));
        assert!(b.take(1, now).is_err(), "the 11th event within the same second is refused");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.take(1, Instant::now()).is_ok());
    }
}
