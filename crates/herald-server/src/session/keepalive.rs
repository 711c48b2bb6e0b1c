//! Keep-alive of one session: ping a silent peer, give up on one that stays silent. The driver
//! sends the probe and closes; this only keeps the time, so it is tested with a paused clock.
//!
//! Three plans, one state machine:
//! - [`Plan::Silence`] (Pusher, WAMP): every message from the peer counts, so only a peer
//!   silent for `idle` is pinged, and one silent `grace` longer is gone.
//! - [`Plan::Fixed`] reproduces Ratchet's `WsServer::enableKeepAlive` (EspoCRM): a ping every
//!   period whatever the traffic, and a close for a peer that did not answer the previous one
//!   with a pong carrying that ping's payload.
//! - [`Plan::Off`]: no probe at all (GosWebSocketBundle, which Oro runs, has none).

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// How a session proves its peer is alive.
///
/// Periods are kept in milliseconds in 32 bits (up to 49 days): every session holds its plan,
/// and `Duration`s would double the size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// No probes.
    Off,
    /// Ping a peer silent for `idle`; close one silent `grace` longer.
    Silence {
        /// Silence before the ping, in milliseconds.
        idle: u32,
        /// Silence after the ping before the close, in milliseconds.
        grace: u32,
    },
    /// Ping every `period`; close a peer that did not answer the previous ping.
    Fixed {
        /// Time between pings, in milliseconds.
        period: u32,
    },
}

/// `d` in milliseconds, saturating.
fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn duration(ms: u32) -> Duration {
    Duration::from_millis(ms.into())
}

impl Plan {
    /// The silence plan of an app's `activity_timeout` and `pong_timeout`, in seconds.
    pub(crate) fn silence(activity_timeout: u32, pong_timeout: u32) -> Self {
        Plan::Silence { idle: activity_timeout.saturating_mul(1000), grace: pong_timeout.saturating_mul(1000) }
    }

    /// Ratchet's fixed plan: a ping every `period`.
    pub(crate) fn fixed(period: Duration) -> Self {
        Plan::Fixed { period: millis(period) }
    }
}

/// What the driver should do when its timer fires.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Nothing yet.
    Wait,
    /// Send a ping.
    Ping,
    /// The peer is gone: close.
    Expired,
}

/// Keep-alive state of one session.
#[derive(Debug)]
pub(crate) struct KeepAlive {
    plan: Plan,
    /// When the peer was last seen, or when it was last pinged while `pinged` is set.
    since: Instant,
    /// A ping is waiting for its answer.
    pinged: bool,
    /// Pings sent under [`Plan::Fixed`]; the payload of the last one names it.
    pings: u32,
}

impl KeepAlive {
    /// Starts counting from `now`.
    pub(crate) fn new(plan: Plan, now: Instant) -> Self {
        Self { plan, since: now, pinged: false, pings: 0 }
    }

    /// The plan in force.
    pub(crate) fn plan(&self) -> Plan {
        self.plan
    }

    /// Changes the plan (a WAMP v2 session learns its app's periods at WELCOME); the count
    /// starts again from `now`.
    pub(crate) fn set_plan(&mut self, plan: Plan, now: Instant) {
        self.plan = plan;
        self.since = now;
        self.pinged = false;
    }

    /// The peer sent something: under [`Plan::Silence`] the idle period starts again.
    pub(crate) fn seen(&mut self, now: Instant) {
        if matches!(self.plan, Plan::Silence { .. }) {
            self.since = now;
            self.pinged = false;
        }
    }

    /// The peer sent a pong: under [`Plan::Fixed`] it answers the last ping only when it carries
    /// that ping's payload. The next ping stays due a period after the last one, not after the
    /// answer, so pings keep a fixed schedule.
    pub(crate) fn pong(&mut self, payload: &[u8]) {
        if matches!(self.plan, Plan::Fixed { .. }) && self.pinged && payload == self.payload() {
            self.pinged = false;
        }
    }

    /// The payload of the ping to send now, or last sent.
    pub(crate) fn payload(&self) -> Bytes {
        match self.plan {
            // Numbered, so a late pong to an earlier ping does not count as an answer.
            Plan::Fixed { .. } => Bytes::from(format!("herald-{}", self.pings)),
            Plan::Off | Plan::Silence { .. } => Bytes::from_static(b"herald"),
        }
    }

    /// When the timer should next fire; `None` when nothing is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.plan {
            Plan::Off => None,
            Plan::Silence { idle, grace } => Some(self.since + duration(if self.pinged { grace } else { idle })),
            Plan::Fixed { period } => Some(self.since + duration(period)),
        }
    }

    /// Decides what the time `now` means.
    pub(crate) fn tick(&mut self, now: Instant) -> Tick {
        match self.deadline() {
            None => Tick::Wait,
            Some(deadline) if now < deadline => Tick::Wait,
            Some(_) if self.pinged => Tick::Expired,
            Some(_) => {
                self.since = now;
                self.pinged = true;
                self.pings = self.pings.wrapping_add(1);
                Tick::Ping
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn silent_peer_is_pinged_then_expires_and_traffic_resets() {
        let mut k = KeepAlive::new(Plan::Silence { idle: 10_000, grace: 2_000 }, Instant::now());
        assert_eq!(k.tick(Instant::now()), Tick::Wait);
        tokio::time::advance(10 * S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Ping);
        tokio::time::advance(S).await;
        k.seen(Instant::now());
        tokio::time::advance(9 * S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Wait, "traffic reset the idle period");
        tokio::time::advance(S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Ping);
        tokio::time::advance(2 * S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Expired);
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_pings_keep_their_schedule_and_want_their_own_payload() {
        let start = Instant::now();
        let mut k = KeepAlive::new(Plan::fixed(60 * S), start);
        tokio::time::advance(60 * S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Ping);
        let first = k.payload();
        tokio::time::advance(3 * S).await;
        k.seen(Instant::now());
        assert_eq!(k.deadline(), Some(start + 120 * S), "traffic does not move a fixed schedule");
        k.pong(b"herald-0");
        k.pong(&first);
        tokio::time::advance(57 * S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Ping, "the first ping was answered");
        k.pong(&first);
        tokio::time::advance(60 * S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Expired, "a pong to an older ping is no answer");
    }

    #[tokio::test(start_paused = true)]
    async fn off_never_fires_and_a_new_plan_starts_from_now() {
        let mut k = KeepAlive::new(Plan::Off, Instant::now());
        assert_eq!(k.deadline(), None);
        tokio::time::advance(3600 * S).await;
        assert_eq!(k.tick(Instant::now()), Tick::Wait);
        k.set_plan(Plan::silence(120, 30), Instant::now());
        assert_eq!(k.deadline(), Some(Instant::now() + 120 * S));
    }
}
