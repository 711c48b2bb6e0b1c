//! WebSocket-level keep-alive for WAMP sessions: ping a peer silent for `idle`, give up when it
//! stays silent `grace` longer. (Pusher sessions use Pusher's own `pusher:ping`.)

use std::time::Duration;

use tokio::time::Instant;

/// What the session should do when its timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Nothing yet; sleep until this instant.
    Wait(Instant),
    /// Send a WebSocket ping, then sleep until this instant.
    Ping(Instant),
    /// The peer is gone: close.
    Expired,
}

/// Keep-alive state of one session.
#[derive(Debug)]
pub(crate) struct KeepAlive {
    idle: Duration,
    grace: Duration,
    last_seen: Instant,
    pinged_at: Option<Instant>,
}

impl KeepAlive {
    /// Starts counting from `now`.
    pub(crate) fn new(idle: Duration, grace: Duration, now: Instant) -> Self {
        Self { idle, grace, last_seen: now, pinged_at: None }
    }

    /// Changes the periods (once the app is known).
    pub(crate) fn set_periods(&mut self, idle: Duration, grace: Duration) {
        self.idle = idle;
        self.grace = grace;
    }

    /// The peer sent something.
    pub(crate) fn seen(&mut self, now: Instant) {
        self.last_seen = now;
        self.pinged_at = None;
    }

    /// When the timer should next fire.
    pub(crate) fn deadline(&self) -> Instant {
        match self.pinged_at {
            Some(at) => at + self.grace,
            None => self.last_seen + self.idle,
        }
    }

    /// Decides what a timer expiry means.
    pub(crate) fn tick(&mut self, now: Instant) -> Tick {
        let deadline = self.deadline();
        if now < deadline {
            return Tick::Wait(deadline);
        }
        if self.pinged_at.is_some() {
            return Tick::Expired;
        }
        self.pinged_at = Some(now);
        Tick::Ping(now + self.grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silent_peer_is_pinged_then_expires_and_traffic_resets() {
        let s = Duration::from_secs(1);
        let mut k = KeepAlive::new(10 * s, 2 * s, Instant::now());
        assert!(matches!(k.tick(Instant::now()), Tick::Wait(_)));
        tokio::time::advance(10 * s).await;
        assert!(matches!(k.tick(Instant::now()), Tick::Ping(_)));
        tokio::time::advance(s).await;
        k.seen(Instant::now());
        tokio::time::advance(9 * s).await;
        assert!(matches!(k.tick(Instant::now()), Tick::Wait(_)), "traffic reset the idle period");
        tokio::time::advance(s).await;
        assert!(matches!(k.tick(Instant::now()), Tick::Ping(_)));
        tokio::time::advance(2 * s).await;
        assert_eq!(k.tick(Instant::now()), Tick::Expired);
    }
}
