//! The accept loop: one task per TCP connection, TLS when the listener has a certificate,
//! serving HTTP/1.1 and WebSocket upgrades.
//!
//! Every task is spawned on a `TaskTracker`, including upgraded WebSocket sessions
//! (axum/hyper do not track those), so a drain can wait for all of them. Plain HTTP
//! connections go on the edge's own tracker: a drain waits for them (publishes in flight)
//! before it asks the sessions to close. Each request is tagged with its client address
//! (`X-Forwarded-For` from trusted proxies only) and has the proxy's path prefix stripped.

pub(crate) mod fd_reserve;
pub(crate) mod forwarded;
pub(crate) mod per_ip;

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
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::health::{self, ServerStatus};
use crate::http::{self, Body, HttpState};
use forwarded::IpNet;

/// How long a client may take to send its request headers (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error such as EMFILE, so a full fd table does not spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Pending connections the kernel queues per listener.
const BACKLOG: i32 = 1024;

/// A server-side TLS stream, as upgraded WebSockets find it under hyper.
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// How one listener meets the network: TLS, proxy trust, path prefix.
#[derive(Clone)]
pub(crate) struct Edge {
    /// Terminates TLS when the listener has a certificate.
    pub(crate) tls: Option<TlsAcceptor>,
    /// Longest a TLS handshake may take.
    pub(crate) handshake_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub(crate) trusted: Arc<[IpNet]>,
    /// The reverse proxy's path prefix, stripped before routing.
    pub(crate) prefix: Option<Arc<str>>,
    /// Readiness, metrics and API counters.
    pub(crate) status: Arc<ServerStatus>,
    /// Tracks plain HTTP connections (not upgraded sessions).
    pub(crate) conns: TaskTracker,
}

impl Edge {
    /// The edge of a listener with these settings; `tls` when it terminates TLS.
    pub(crate) fn new(
        ops: &crate::config::OpsSettings,
        tls: Option<Arc<rustls::ServerConfig>>,
        status: &Arc<ServerStatus>,
        conns: &TaskTracker,
    ) -> Arc<Self> {
        Arc::new(Self {
            tls: tls.map(TlsAcceptor::from),
            handshake_timeout: ops.tls_handshake_timeout,
            trusted: ops.trusted_proxies.clone().into(),
            prefix: ops.path_prefix.as_deref().map(Arc::from),
            status: Arc::clone(status),
            conns: conns.clone(),
        })
    }
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge").field("tls", &self.tls.is_some()).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// What a listener answers.
#[derive(Clone, Debug)]
enum Service {
    /// Pusher, WAMP and the HTTP API.
    Main(HttpState),
    /// `/up`, `/ready` and `/metrics` only (the separate metrics listener).
    Ops(Arc<Hub>),
}

/// The client address of a request, after `X-Forwarded-For` from trusted proxies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

/// The request path as the client sent it, before the proxy prefix was stripped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OriginalPath(pub(crate) String);

/// Accepts connections until `stop` is cancelled.
pub(crate) async fn accept_loop(listener: TcpListener, state: HttpState, stop: CancellationToken) {
    if let crate::config::Profile::Oro(oro) = &*state.profile {
        // Oro needs the 101 and the WELCOME in one write, which hyper cannot do
        // (profile/oro/handshake.rs says why).
        let oro = std::sync::Arc::clone(oro);
        return crate::profile::oro::serve(listener, oro, state, stop).await;
    }
    let edge = Arc::clone(&state.edge);
    run(listener, Service::Main(state), edge, stop).await;
}

/// Serves `/up`, `/ready` and `/metrics` until `stop` is cancelled.
pub(crate) async fn ops_loop(listener: TcpListener, hub: Arc<Hub>, edge: Arc<Edge>, stop: CancellationToken) {
    run(listener, Service::Ops(hub), edge, stop).await;
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
        return serve_http(stream, peer, service, edge, stop).await;
    };
    let handshake = tokio::time::timeout(edge.handshake_timeout, acceptor.accept(stream));
    let tls = tokio::select! {
        r = handshake => r,
        () = stop.cancelled() => return,
    };
    match tls {
        Ok(Ok(tls)) => serve_http(tls, peer, service, edge, stop).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

async fn serve_http<I>(io: I, peer: SocketAddr, service: Service, edge: Arc<Edge>, stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
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
) -> Response<Body> {
    let client = forwarded::client_addr(peer, req.headers(), &edge.trusted);
    req.extensions_mut().insert(ClientAddr(client));
    if let Some(prefix) = &edge.prefix {
        strip_prefix(&mut req, prefix);
    }
    let api = req.uri().path().starts_with("/apps/");
    let logged = tracing::enabled!(tracing::Level::DEBUG).then(|| (req.method().clone(), req.uri().path().to_owned()));
    let resp = match service {
        Service::Main(state) => match http::route(state.clone(), req).await {
            Ok(r) => r,
            Err(never) => match never {},
        },
        Service::Ops(hub) => health::route_ops(hub, &edge.status, &req),
    };
    if api && matches!(service, Service::Main(_)) {
        edge.status.api.record(resp.status());
    }
    if let Some((method, path)) = logged {
        tracing::debug!(client = %client, %method, path, status = resp.status().as_u16(), "http request");
    }
    resp
}

/// Removes `prefix` from the front of the path (`/ws/app/key` -> `/app/key`, `/ws` -> `/`),
/// remembering the original path; paths outside the prefix are left alone.
fn strip_prefix<B>(req: &mut Request<B>, prefix: &str) {
    let path = req.uri().path();
    let rest = match path.strip_prefix(prefix) {
        Some("") => "/",
        Some(r) if r.starts_with('/') => r,
        _ => return,
    };
    let pq = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let original = OriginalPath(path.to_owned());
    let mut parts = req.uri().clone().into_parts();
    let Ok(pq) = pq.parse() else { return };
    parts.path_and_query = Some(pq);
    if let Ok(uri) = hyper::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
        req.extensions_mut().insert(original);
    }
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

    fn stripped(path: &str) -> (String, Option<OriginalPath>) {
        let mut req = Request::builder().uri(path).body(()).unwrap();
        strip_prefix(&mut req, "/ws");
        (req.uri().to_string(), req.extensions().get::<OriginalPath>().cloned())
    }

    #[test]
    fn prefix_is_stripped_and_remembered() {
        let (uri, orig) = stripped("/ws/app/key?protocol=7");
        assert_eq!(uri, "/app/key?protocol=7");
        assert_eq!(orig, Some(OriginalPath("/ws/app/key".into())));
        assert_eq!(stripped("/ws").0, "/");
    }

    #[test]
    fn paths_outside_the_prefix_are_untouched() {
        assert_eq!(stripped("/app/key"), ("/app/key".to_owned(), None));
        assert_eq!(stripped("/wsx/app").0, "/wsx/app");
    }

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
