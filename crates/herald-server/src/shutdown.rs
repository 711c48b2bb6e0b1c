//! Shutdown: the signals that start it and the drain that follows.
//!
//! Order: stop accepting, ask every session to close with its protocol's
//! goodbye (Pusher 4200: reconnect now), then wait for the tracked tasks, at most the grace
//! period. A second signal exits at once.

use std::time::Duration;

use herald_core::Hub;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::status::ServerStatus;

/// Installs the SIGINT and SIGTERM handlers now and returns a future that resolves on the first
/// of them, arming an immediate exit on the second.
///
/// Installing is not left to the first poll: a supervisor may stop herald as soon as it has
/// announced its ports, and a signal that arrives before the handler exists takes its default
/// action (the process dies without a drain). Call this before announcing. The streams are
/// created once, so a second signal right after the first is never lost either.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let streams = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        let (Ok(mut term), Ok(mut int)) = streams else {
            // Without signal handlers there is nothing to wait for; never resolve.
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown signal received; draining (send it again to exit at once)");
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::warn!("second signal: exiting now");
            std::process::exit(130);
        });
    }
}

/// What a drain stops and waits for.
#[derive(Debug)]
pub(crate) struct Drain<'a> {
    /// The hub whose sessions get their goodbyes.
    pub(crate) hub: &'a Hub,
    /// Readiness: fails from the first step on.
    pub(crate) status: &'a ServerStatus,
    /// Stops the accept loops and asks HTTP connections to finish.
    pub(crate) stop: &'a CancellationToken,
    /// Plain HTTP connections (requests in flight).
    pub(crate) conns: &'a TaskTracker,
    /// Sessions, ingress and every other task.
    pub(crate) sessions: &'a TaskTracker,
    /// The whole drain's budget.
    pub(crate) grace: Duration,
    /// Where channel history is saved before the goodbyes (`[history] snapshot_file`).
    pub(crate) history_snapshot: Option<&'a std::path::Path>,
}

/// Drains the server within `grace`:
/// 1. `/ready` fails and the listeners stop accepting (what the kernel queued is still served);
/// 2. HTTP requests in flight finish, so a publish answered 200 is in the subscribers' outboxes
///    before they are told to close (at most half the grace period);
/// 3. channel history is saved (`[history] snapshot_file`), before clients are told to
///    reconnect, so their successor can replay what they miss;
/// 4. every session gets its protocol's goodbye after the frames already queued: Pusher 4200,
///    WAMP v2 GOODBYE `wamp.close.system_shutdown`, WAMP v1 close 1001; sessions that upgrade
///    later are closed as soon as they connect;
/// 5. wait for the sessions to close, until the grace period is over.
pub(crate) async fn drain(d: Drain<'_>) {
    let deadline = Instant::now() + d.grace;
    d.status.start_draining();
    d.stop.cancel();
    d.conns.close();
    if tokio::time::timeout(d.grace / 2, d.conns.wait()).await.is_err() {
        tracing::warn!(left = d.conns.len(), "HTTP requests still running after half the grace period");
    }
    if let Some(path) = d.history_snapshot {
        crate::restart::history::save(d.hub, path);
    }
    let asked = d.hub.close_all();
    tracing::info!(sessions = asked, "closing sessions");
    d.sessions.close();
    if tokio::time::timeout_at(deadline, d.sessions.wait()).await.is_err() {
        tracing::warn!(left = d.sessions.len(), "grace period over; exiting with tasks still running");
    } else {
        tracing::info!("drained");
    }
}
