//! When a failed request is tried again, sans IO: after 1 s, doubling up to 60 s, for at most
//! [`RETRY_FOR`] after the first attempt (Pusher retries for 5 minutes); then the request is
//! dropped.

use std::time::Duration;

use tokio::time::Instant;

/// How long a request is retried before its events are dropped.
pub(crate) const RETRY_FOR: Duration = Duration::from_secs(300);
/// The first wait.
const FIRST: Duration = Duration::from_secs(1);
/// The longest wait.
const MAX: Duration = Duration::from_secs(60);

/// The retries of one request.
#[derive(Debug)]
pub(crate) struct Backoff {
    give_up_at: Instant,
    wait: Duration,
}

impl Backoff {
    /// The retries of a request first tried at `start`.
    pub(crate) fn new(start: Instant) -> Self {
        Self { give_up_at: start + RETRY_FOR, wait: FIRST }
    }

    /// When to try again after a failure at `now`; `None`: give up.
    pub(crate) fn next(&mut self, now: Instant) -> Option<Instant> {
        let at = now + self.wait;
        if at > self.give_up_at {
            return None;
        }
        self.wait = (self.wait * 2).min(MAX);
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_a_minute_then_gives_up_after_five() {
        let t0 = Instant::now();
        let mut b = Backoff::new(t0);
        let mut now = t0;
        let mut waits = Vec::new();
        while let Some(at) = b.next(now) {
            waits.push((at - now).as_secs());
            now = at;
        }
        assert_eq!(&waits[..7], &[1, 2, 4, 8, 16, 32, 60]);
        assert!(waits[7..].iter().all(|w| *w == 60));
        assert!(now <= t0 + RETRY_FOR && now + Duration::from_secs(60) > t0 + RETRY_FOR);
    }
}
