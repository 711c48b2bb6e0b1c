//! The accept loop: one task per TCP connection, serving HTTP/1.1 and WebSocket upgrades.
//!
//! Every task is spawned on the server's `TaskTracker`, including upgraded WebSocket sessions
//! (axum/hyper do not track those), so a drain can wait for all of them.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::http::{self, HttpState};

/// How long a client may take to send its request headers (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error such as EMFILE, so a full fd table does not spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections until `stop` is cancelled.
pub(crate) async fn accept_loop(listener: TcpListener, state: HttpState, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let state_c = state.clone();
                let stop_c = stop.clone();
                state.tracker.spawn(serve_connection(stream, peer, state_c, stop_c));
            }
            Err(e) => {
                // Out of descriptors or memory: existing connections carry on, new ones wait.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn serve_connection(stream: TcpStream, peer: SocketAddr, state: HttpState, stop: CancellationToken) {
    // Frames are small and latency matters more than packet count; writes are coalesced anyway.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| http::route(state.clone(), req));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result: Result<(), hyper::Error> = tokio::select! {
        r = conn.as_mut() => r,
        () = stop.cancelled() => {
            // Finish the request in flight, then close keep-alive connections.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::trace!(%peer, error = %e, "http connection ended with an error");
    }
}

/// Binds the listening socket.
///
/// # Errors
/// The bind error (address in use, permission denied...).
pub(crate) async fn bind(addr: &str) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
