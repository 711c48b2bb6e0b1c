//! A token bucket for per-connection limits (client events: 10 per second by default).
//!
//! Task-local state, so no lock and no shared limiter are needed.

use tokio::time::Instant;

/// Allows `rate` events per second with bursts of up to `rate`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket refilling `rate` tokens per second.
    pub(crate) fn per_second(rate: u32) -> Self {
        Self { rate: f64::from(rate), tokens: f64::from(rate), last: None }
    }

    /// Takes one token at `now`; false when the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + refill).min(self.rate);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn ten_per_second_then_refused_then_refilled() {
        let mut b = TokenBucket::per_second(10);
        let now = Instant::now();
        assert!((0..10).all(|_| b.take(now)));
        assert!(!b.take(now), "the 11th event within the same second is refused");
        tokio::time::advance(SECOND).await;
        assert!(b.take(Instant::now()));
    }
}
