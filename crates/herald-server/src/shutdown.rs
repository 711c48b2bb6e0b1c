//! Shutdown: the signals that start it and the drain that follows.
//!
//! Order (STYLE.md §3.4): stop accepting, ask every session to close with its protocol's
//! goodbye (Pusher 4200: reconnect now), then wait for the tracked tasks, at most the grace
//! period. A second signal exits at once.

use std::time::Duration;

use herald_core::Hub;
use herald_protocol::pusher::close_code::CloseCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Resolves on the first SIGINT or SIGTERM, and arms an immediate exit on the second.
pub async fn signal() {
    wait_for_signal().await;
    tracing::info!("shutdown signal received; draining (send it again to exit at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers there is nothing to wait for; never resolve.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Drains the server: stops accepting, closes sessions, waits up to `grace`.
pub(crate) async fn drain(hub: &Hub, stop: &CancellationToken, tracker: &TaskTracker, grace: Duration) {
    stop.cancel();
    let code = CloseCode::ReconnectNow;
    let asked = hub.close_all(code.code(), code.reason());
    tracing::info!(sessions = asked, "closing sessions");
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(left = tracker.len(), "grace period over; exiting with tasks still running");
    }
}
