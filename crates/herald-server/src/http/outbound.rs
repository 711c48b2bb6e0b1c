//! HTTP requests herald makes to an app's backend (the WAMP dynamic authenticator): one signed
//! JSON POST on a fresh connection, bounded in time and in the size of the answer.
//!
//! The body is signed the way Pusher signs webhooks, so a backend that already verifies
//! Pusher webhooks verifies these with the same code: `X-Pusher-Key` is the app key and
//! `X-Pusher-Signature` the hex HMAC-SHA256 of the raw body with the app secret.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Largest answer read from a backend.
const MAX_ANSWER: usize = 64 << 10;

/// Why a request to the backend brought no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OutboundError {
    /// The URL is not `http://host[:port]/path` or `https://…`.
    #[error("not an http:// or https:// URL")]
    BadUrl,
    /// No connection, TLS failure, or the connection broke.
    #[error("cannot reach the backend: {0}")]
    Connect(#[source] std::io::Error),
    /// HTTP-level failure while sending or reading.
    #[error("HTTP exchange failed: {0}")]
    Http(#[source] hyper::Error),
    /// The answer was larger than [`MAX_ANSWER`] or broke off.
    #[error("the answer is too large or incomplete")]
    Body,
    /// No answer within the time allowed.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The backend's answer: status and body.
#[derive(Debug)]
pub(crate) struct Answer {
    /// HTTP status.
    pub(crate) status: StatusCode,
    /// The body, at most [`MAX_ANSWER`] bytes.
    pub(crate) body: Bytes,
}

/// POSTs `body` (JSON) to `url`, signed with the app's key and secret, and waits at most `within`.
///
/// # Errors
/// [`OutboundError`] when no complete answer arrived in time; any HTTP status is an answer.
pub(crate) async fn post_signed(
    url: &str,
    app_key: &str,
    secret: &str,
    body: Vec<u8>,
    within: Duration,
) -> Result<Answer, OutboundError> {
    let signature = herald_protocol::pusher::socket_auth::sign(secret, &String::from_utf8_lossy(&body));
    tokio::time::timeout(within, exchange(url, app_key, &signature, body))
        .await
        .map_err(|_| OutboundError::Timeout(within))?
}

async fn exchange(url: &str, app_key: &str, signature: &str, body: Vec<u8>) -> Result<Answer, OutboundError> {
    let uri: Uri = url.parse().map_err(|_| OutboundError::BadUrl)?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(OutboundError::BadUrl),
    };
    let host = uri.host().ok_or(OutboundError::BadUrl)?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let authority = uri.authority().map(|a| a.as_str().to_owned()).ok_or(OutboundError::BadUrl)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut req = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Pusher-Key", app_key)
        .header("X-Pusher-Signature", signature)
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| OutboundError::BadUrl)?;
    req.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));

    let tcp = TcpStream::connect((host.as_str(), port)).await.map_err(OutboundError::Connect)?;
    if tls {
        let name = rustls_pki_types::ServerName::try_from(host).map_err(|_| OutboundError::BadUrl)?;
        let stream = tls_connector().connect(name, tcp).await.map_err(OutboundError::Connect)?;
        send(TokioIo::new(stream), req).await
    } else {
        send(TokioIo::new(tcp), req).await
    }
}

async fn send<IO>(io: IO, req: Request<Full<Bytes>>) -> Result<Answer, OutboundError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(OutboundError::Http)?;
    // The connection future drives the socket; it ends with the exchange (Connection: close).
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "backend connection ended with an error");
        }
    });
    let resp = sender.send_request(req).await.map_err(OutboundError::Http)?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_ANSWER).collect().await.map_err(|_| OutboundError::Body)?.to_bytes();
    Ok(Answer { status, body })
}

/// A TLS client trusting the system's roots (built once: reading the store takes milliseconds).
pub(crate) fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "reading the system's trusted certificates");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, ignored, "trusted roots for outbound HTTPS");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        match rustls::ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(b) => Arc::new(b.with_root_certificates(roots).with_no_client_auth()),
            // The ring provider supports the default versions; keep a usable value regardless.
            Err(_) => Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()),
        }
    });
    tokio_rustls::TlsConnector::from(Arc::clone(config))
}
