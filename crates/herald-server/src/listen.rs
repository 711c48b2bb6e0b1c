//! The accept loop of every listener: one task per TCP connection, TLS when the listener has a
//! certificate, then one of two upgrade modes: hyper serving HTTP/1.1 and WebSocket upgrades
//! (the main listener, `[[listeners]]`, EspoCRM), or the Oro raw-head upgrade that answers the
//! 101 and the WAMP WELCOME in one write (`profile/oro/upgrade.rs`). Both get the same fd
//! reserve, per-address limits, proxy trust, path prefix and drain.
//!
//! Every task is spawned on a `TaskTracker`, including upgraded WebSocket sessions
//! (axum/hyper do not track those), so a drain can wait for all of them. Plain HTTP
//! connections go on the edge's own tracker: a drain waits for them (publishes in flight)
//! before it asks the sessions to close. Each request is tagged with its client address
//! (`X-Forwarded-For` from trusted proxies only) and has the proxy's path prefix stripped.

pub(crate) mod edge;
pub(crate) mod fd_reserve;
pub(crate) mod forwarded;
pub(crate) mod per_ip;
pub(crate) mod prefix;

use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use herald_core::Hub;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::dashboard::{self, ConsoleBody, Dashboard};
use crate::http::response::AnyBody;
use crate::http::state::HttpState;
use crate::http::{self, health};
use crate::profile::oro::{self, Oro};
use crate::runtime::Serves;
use edge::Edge;
use forwarded::ClientAddr;
use http_body_util::Either;

/// How long a client may take to send its request headers (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error such as EMFILE, so a full fd table does not spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 1024;

/// What a listener's hyper connections answer with: the main listener's bodies, or a
/// dashboard console's stream.
type ListenerBody = Either<AnyBody, ConsoleBody>;

/// What a listener answers, and in which upgrade mode.
#[derive(Clone, Debug)]
enum Service {
    /// Pusher, WAMP and the HTTP API, served by hyper.
    Main(HttpState),
    /// The Oro profile: the raw-head upgrade, its sessions spawned on `sessions`.
    Oro {
        /// The listener's Oro runtime.
        oro: Arc<Oro>,
        /// The session tracker a drain waits for.
        sessions: TaskTracker,
    },
    /// `/up`, `/ready`, `/health`, `/metrics` and, when on, `/dashboard` (the separate
    /// metrics listener).
    Ops(Arc<Hub>, Option<Arc<Dashboard>>),
}

/// Accepts connections until `stop` is cancelled.
pub(crate) async fn accept_loop(listener: TcpListener, state: HttpState, stop: CancellationToken) {
    let edge = Arc::clone(&state.edge);
    let service = match &*state.profile {
        // Oro needs the 101 and the WELCOME in one write, which hyper cannot do
        // (profile/oro/handshake.rs says why).
        Serves::Oro(oro) => Service::Oro { oro: Arc::clone(oro), sessions: state.tracker.clone() },
        Serves::Pusher | Serves::Wamp1 { .. } | Serves::Espo(_) => Service::Main(state),
    };
    run(listener, service, edge, stop).await;
}

/// Serves `/up`, `/ready`, `/health`, `/metrics` and the dashboard until `stop` is cancelled.
pub(crate) async fn ops_loop(
    listener: TcpListener,
    hub: Arc<Hub>,
    dashboard: Option<Arc<Dashboard>>,
    edge: Arc<Edge>,
    stop: CancellationToken,
) {
    run(listener, Service::Ops(hub, dashboard), edge, stop).await;
}

async fn run(listener: TcpListener, service: Service, edge: Arc<Edge>, stop: CancellationToken) {
    fd_reserve::arm();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => spawn(stream, peer, &service, &edge, &stop),
            Err(e) => {
                // Out of descriptors: turn the newcomer away at once; existing connections carry on.
                if fd_reserve::is_fd_exhaustion(&e) && fd_reserve::turn_away(&listener, edge.tls.is_none()).await {
                    continue;
                }
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    // Serve what the kernel already queued instead of resetting it when the socket closes: with
    // SO_REUSEPORT a successor takes every later connection.
    let mut swept = 0;
    while let Some(Ok((stream, peer))) = std::future::poll_fn(|cx| {
        Poll::Ready(match listener.poll_accept(cx) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        })
    })
    .await
    {
        spawn(stream, peer, &service, &edge, &stop);
        swept += 1;
    }
    if swept > 0 {
        tracing::debug!(swept, "served connections queued at close");
    }
}

fn spawn(stream: TcpStream, peer: SocketAddr, service: &Service, edge: &Arc<Edge>, stop: &CancellationToken) {
    let (service, edge_c, stop) = (service.clone(), Arc::clone(edge), stop.clone());
    edge.conns.spawn(serve_connection(stream, peer, service, edge_c, stop));
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: Service,
    edge: Arc<Edge>,
    stop: CancellationToken,
) {
    // Frames are small and latency matters more than packet count; writes are coalesced anyway.
    let _ = stream.set_nodelay(true);
    let Some(acceptor) = edge.tls.clone() else {
        return serve_stream(stream, peer, service, edge, stop).await;
    };
    let handshake = tokio::time::timeout(edge.handshake_timeout, acceptor.accept(crate::tls::framed(stream)));
    let tls = tokio::select! {
        r = handshake => r,
        () = stop.cancelled() => return,
    };
    match tls {
        Ok(Ok(tls)) => serve_stream(tls, peer, service, edge, stop).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// Hands the (possibly TLS) stream to the listener's upgrade mode.
async fn serve_stream<I>(io: I, peer: SocketAddr, service: Service, edge: Arc<Edge>, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match service {
        Service::Oro { oro, sessions } => oro::upgrade::serve(io, peer.ip(), oro, edge, sessions, stop).await,
        Service::Main(_) | Service::Ops(..) => serve_http(io, peer, service, edge, stop).await,
    }
}

async fn serve_http<I>(io: I, peer: SocketAddr, service: Service, edge: Arc<Edge>, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_ref = service.clone();
    let svc = service_fn(move |req| {
        let (service, edge) = (service.clone(), Arc::clone(&edge));
        async move { Ok::<_, Infallible>(handle(req, peer.ip(), &service, &edge).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let result: Result<(), hyper::Error> = tokio::select! {
        r = conn.as_mut() => r,
        () = stop.cancelled() => {
            // HTTP transport sessions say goodbye now: their receive requests are requests in
            // flight, which would otherwise hold the drain until its grace period is half over.
            if let Service::Main(state) = &service_ref {
                state.transports.drain();
            }
            // Finish the request in flight, then close keep-alive connections.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::trace!(%peer, error = %e, "http connection ended with an error");
    }
}

async fn handle(
    mut req: Request<hyper::body::Incoming>,
    peer: IpAddr,
    service: &Service,
    edge: &Edge,
) -> Response<ListenerBody> {
    let client = forwarded::client_addr(peer, req.headers(), &edge.trusted);
    req.extensions_mut().insert(ClientAddr(client));
    if let Some(p) = &edge.prefix {
        prefix::strip_request(&mut req, p);
    }
    let api = req.uri().path().starts_with("/apps/");
    let logged = tracing::enabled!(tracing::Level::DEBUG).then(|| (req.method().clone(), req.uri().path().to_owned()));
    let resp = match service {
        Service::Main(state) => match http::route(state.clone(), req).await {
            Ok(r) => r.map(Either::Left),
            Err(never) => match never {},
        },
        // Only the metrics listener routes `/dashboard`, to async handlers; the rest of it is sync.
        Service::Ops(hub, Some(d)) if dashboard::is_dashboard_path(req.uri().path()) => {
            dashboard::route(d, hub, req).await.map(|b| match b {
                Either::Left(full) => Either::Left(Either::Left(full)),
                Either::Right(console) => Either::Right(console),
            })
        }
        Service::Ops(hub, _) => health::route_ops(hub, &edge.status, &req).map(|b| Either::Left(Either::Left(b))),
        // The Oro upgrade never reaches hyper (`serve_stream`).
        Service::Oro { .. } => http::response::text_response(hyper::StatusCode::NOT_FOUND, "Not found")
            .map(|b| Either::Left(Either::Left(b))),
    };
    if api && matches!(service, Service::Main(_)) {
        edge.status.api.record(resp.status());
    }
    if let Some((method, path)) = logged {
        tracing::debug!(client = %client, %method, path, status = resp.status().as_u16(), "http request");
    }
    resp
}

/// Binds the listening socket, with SO_REUSEPORT when `reuse_port` (so a successor herald can
/// bind the same port while this one still listens).
///
/// # Errors
/// The bind error (address in use, permission denied...).
pub(crate) fn bind_with(addr: &str, reuse_port: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    // `host:port`, where an IPv6 host may come without brackets (`::1:6001`).
    let resolved = match addr.to_socket_addrs() {
        Ok(it) => it.collect::<Vec<_>>(),
        Err(e) => match addr.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?))) {
            Some((host, port)) => (host.trim_matches(['[', ']']), port).to_socket_addrs()?.collect(),
            None => return Err(e),
        },
    };
    let sa = resolved
        .into_iter()
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "the host resolves to no address"))?;
    let socket = Socket::new(Domain::for_address(sa), Type::STREAM, Some(Protocol::TCP))?;
    // Rebind at once after a restart, whatever TIME_WAIT connections remain.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&sa.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_reuse_port_listeners_share_a_port_and_plain_ones_do_not() {
        let a = bind_with("127.0.0.1:0", true).unwrap();
        let port = a.local_addr().unwrap().port();
        let b = bind_with(&format!("127.0.0.1:{port}"), true).unwrap();
        assert_eq!(b.local_addr().unwrap().port(), port);
        let e = bind_with(&format!("127.0.0.1:{port}"), false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
    }
}
