//! Keep-alive of one session: ping a peer silent for `idle`, give up when it stays silent
//! `grace` longer. The session chooses the probe (a WebSocket ping, or Pusher's `pusher:ping`)
//! and the close that follows; this only keeps the time.
//!
//! Two ways of counting, one state machine:
//! - Pusher and WAMP sessions call [`KeepAlive::seen`] on every message, so only a silent peer
//!   is pinged.
//! - EspoCRM sessions reproduce Ratchet's `WsServer::enableKeepAlive`: a ping every period
//!   whatever the traffic, and a close for a peer that did not answer the previous one. They
//!   call [`KeepAlive::answered`] on the matching pong only, with `idle = grace = period`.

use std::time::Duration;

use tokio::time::Instant;

/// What the session should do when its timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Nothing yet; sleep until this instant.
    Wait(Instant),
    /// Send a ping, then sleep until this instant.
    Ping(Instant),
    /// The peer is gone: close.
    Expired,
}

/// Keep-alive state of one session.
#[derive(Debug)]
pub(crate) struct KeepAlive {
    idle: Duration,
    grace: Duration,
    /// When the peer was last seen, or when it was pinged while `pinged` is set.
    since: Instant,
    /// A ping is waiting for its answer.
    pinged: bool,
}

impl KeepAlive {
    /// Starts counting from `now`.
    pub(crate) fn new(idle: Duration, grace: Duration, now: Instant) -> Self {
        Self { idle, grace, since: now, pinged: false }
    }

    /// Changes the periods (once the app is known).
    pub(crate) fn set_periods(&mut self, idle: Duration, grace: Duration) {
        self.idle = idle;
        self.grace = grace;
    }

    /// The peer sent something: the idle period starts again from `now`.
    pub(crate) fn seen(&mut self, now: Instant) {
        self.since = now;
        self.pinged = false;
    }

    /// The peer answered the last ping: the next ping is due `idle` after that ping, not after
    /// the answer, so pings keep a fixed schedule.
    pub(crate) fn answered(&mut self) {
        self.pinged = false;
    }

    /// When the timer should next fire.
    pub(crate) fn deadline(&self) -> Instant {
        self.since + if self.pinged { self.grace } else { self.idle }
    }

    /// Decides what a timer expiry means.
    pub(crate) fn tick(&mut self, now: Instant) -> Tick {
        let deadline = self.deadline();
        if now < deadline {
            return Tick::Wait(deadline);
        }
        if self.pinged {
            return Tick::Expired;
        }
        self.since = now;
        self.pinged = true;
        Tick::Ping(now + self.grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn silent_peer_is_pinged_then_expires_and_traffic_resets() {
        let mut k = KeepAlive::new(10 * S, 2 * S, Instant::now());
        assert!(matches!(k.tick(Instant::now()), Tick::Wait(_)));
        tokio::time::advance(10 * S).await;
        assert!(matches!(k.tick(Instant::now()), Tick::Ping(_)));
        tokio::time::advance(S).await;
        k.seen(Instant::now());
        tokio::time::advance(9 * S).await;
        assert!(matches!(k.tick(Instant::now()), Tick::Wait(_)), "traffic reset the idle period");
        tokio::time::advance(S).await;
        assert!(matches!(k.tick(Instant::now()), Tick::Ping(_)));
        tokio::time::advance(2 * S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Expired);
    }

    #[tokio::test(start_paused = true)]
    async fn answered_pings_keep_a_fixed_schedule() {
        let start = Instant::now();
        let mut k = KeepAlive::new(60 * S, 60 * S, start);
        tokio::time::advance(60 * S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Ping(start + 120 * S));
        tokio::time::advance(3 * S).await;
        k.answered();
        assert_eq!(k.deadline(), start + 120 * S, "the next ping is a period after the last one");
        tokio::time::advance(57 * S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Ping(start + 180 * S));
        tokio::time::advance(60 * S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Expired, "the previous ping was not answered");
    }
}
