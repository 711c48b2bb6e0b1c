//! The Oro listener's upgrade mode of the common edge: the accept loop (`listen.rs`) has
//! accepted the connection and, on a TLS listener, completed the handshake; here the request head
//! is read without hyper, checked the way Ratchet's `HttpServer` → GOS `OriginCheck` → `WsServer`
//! stack does, and answered with the 101 and the WELCOME in one write (`handshake.rs` says why
//! hyper cannot). The session ([`super::session::run`]) then runs on the session tracker.
//!
//! What every listener gets from the edge applies here too: the client address from a trusted
//! proxy's `X-Forwarded-For`, the proxy's path prefix, and the per-address connection limits.

use std::net::IpAddr;
use std::sync::Arc;

use herald_core::Wire;
use herald_protocol::wamp::v1;
use herald_protocol::ws;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handshake::{self, HEAD_TIMEOUT, Refusal};
use super::{Oro, SERVER_IDENT, session};
use crate::listen::edge::Edge;
use crate::listen::per_ip::PerIpRefusal;
use crate::listen::{forwarded, prefix};
use crate::session::wamp1::session_id;
use crate::ws::socket::Socket;

/// Upgrades one accepted connection of an Oro listener and spawns its session on `sessions`.
pub(crate) async fn serve<S>(
    mut io: S,
    peer: IpAddr,
    oro: Arc<Oro>,
    edge: Arc<Edge>,
    sessions: TaskTracker,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let head = tokio::select! {
        () = stop.cancelled() => return,
        r = tokio::time::timeout(HEAD_TIMEOUT, handshake::read_request(&mut io)) => r,
    };
    let (upgrade, leftover) = match head {
        Err(_) | Ok(Err(None)) => return,
        Ok(Err(Some(refusal))) => return refuse(io, refusal).await,
        Ok(Ok(request)) => request,
    };
    let client = forwarded::client_addr_of(peer, upgrade.forwarded_for.iter().map(String::as_str), &edge.trusted);
    // Oro serves every path and reads only the query; the stripped path is for the log.
    let path = edge.prefix.as_deref().and_then(|p| prefix::strip(&upgrade.path, p)).unwrap_or(&upgrade.path);
    tracing::debug!(%client, path, "oro: upgrade request");
    if !oro.origin_allowed(upgrade.origin.as_deref()) {
        tracing::debug!(origin = ?upgrade.origin, "oro: origin refused");
        return refuse(io, Refusal::Forbidden).await;
    }
    let accept = match &upgrade.accept {
        Ok(a) => a.as_str(),
        Err(refusal) => return refuse(io, *refusal).await,
    };
    // Counted after the checks, as on the other listeners: only an upgrade that will happen
    // takes a place.
    let place = match edge.status.per_ip.acquire(client) {
        Ok(place) => place,
        Err(refusal) => {
            tracing::debug!(%client, %refusal, "oro: upgrade refused by the per-address limits");
            let retry_after = match refusal {
                PerIpRefusal::TooMany => None,
                PerIpRefusal::TooFast { retry_after } => Some(retry_after),
            };
            return refuse(io, Refusal::TooManyRequests { retry_after }).await;
        }
    };
    let Some(slot) = oro.app.try_connect() else {
        return refuse(io, Refusal::Unavailable).await;
    };
    let conn = oro.hub.connect(Wire::WampV1);
    let welcome = ws::encode_text(&v1::welcome(&session_id(&conn), Some(SERVER_IDENT)));
    // One write: Oro's backend client reads for one burst (`handshake.rs`).
    if io.write_all(&upgrade.switching_protocols(accept, &welcome)).await.is_err() {
        oro.hub.disconnect(&conn);
        return;
    }
    let socket = Socket::new(io, leftover, oro.app.config.max_message_bytes);
    let query = upgrade.query;
    // A task of its own on the session tracker, as hyper's upgrades get (ws.rs): a drain waits
    // for this connection task first, then asks the sessions to close.
    sessions.spawn(async move {
        session::run(oro, conn, slot, query, socket).await;
        drop(place);
    });
}

/// Answers a refused request with a bare HTTP response and closes.
async fn refuse<S: AsyncWrite + Unpin>(mut io: S, refusal: Refusal) {
    let _ = io.write_all(&refusal.response()).await;
    let _ = io.shutdown().await;
}
