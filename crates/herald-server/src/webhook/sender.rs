//! One endpoint's HTTP/1.1 client: a kept-alive connection, opened again when it breaks, that
//! POSTs a signed body and reports the status (any status is an answer) within a deadline.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one request may take, connecting included.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of an answer's body read before the connection is given up instead.
const MAX_ANSWER: usize = 64 << 10;

/// Why a request brought no status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// No connection, or TLS failed.
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// The exchange broke off.
    #[error("HTTP exchange failed: {0}")]
    Http(#[source] hyper::Error),
    /// No answer within [`REQUEST_TIMEOUT`].
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Where and how an endpoint is reached.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    tls: bool,
    host: String,
    port: u16,
    authority: HeaderValue,
    path: String,
    /// The operator's extra headers, then herald's.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Target {
    /// The target of a validated `url` with extra `headers`; `None` when they cannot be used.
    pub(crate) fn new<'a>(url: &str, headers: impl IntoIterator<Item = (&'a String, &'a String)>) -> Option<Self> {
        let uri: Uri = url.parse().ok()?;
        let tls = match uri.scheme_str()? {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = HeaderValue::from_str(uri.authority()?.as_str()).ok()?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let mut extra = Vec::new();
        for (k, v) in headers {
            extra.push((HeaderName::from_bytes(k.as_bytes()).ok()?, HeaderValue::from_str(v).ok()?));
        }
        Some(Self { tls, host, port, authority, path, headers: extra })
    }
}

/// A connection to one endpoint, kept between requests.
pub(crate) struct Client {
    target: Target,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("target", &self.target).field("connected", &self.conn.is_some()).finish()
    }
}

impl Client {
    /// A client of `target`; it connects on the first request.
    pub(crate) fn new(target: Target) -> Self {
        Self { target, conn: None }
    }

    /// POSTs `body` with the Pusher headers, within `within`.
    ///
    /// # Errors
    /// [`SendError`] when no status came back; the connection is dropped then.
    pub(crate) async fn post(
        &mut self,
        key: &HeaderValue,
        signature: &str,
        body: Vec<u8>,
        within: Duration,
    ) -> Result<StatusCode, SendError> {
        let result = tokio::time::timeout(within, self.exchange(key, signature, body)).await;
        let result = result.unwrap_or(Err(SendError::Timeout(within)));
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn exchange(&mut self, key: &HeaderValue, signature: &str, body: Vec<u8>) -> Result<StatusCode, SendError> {
        let body = Bytes::from(body);
        let reusable = match self.conn.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if reusable {
            match self.round_trip(self.request(key, signature, body.clone())?).await {
                // The endpoint closed the idle connection as the request went out: that says
                // nothing about the endpoint, so the request goes again at once, on a new one.
                Err(SendError::Http(e)) if e.is_canceled() || e.is_incomplete_message() => {
                    tracing::debug!(error = %e, "kept-alive webhook connection was closed; reconnecting");
                }
                done => return done,
            }
        }
        self.conn = Some(self.connect().await?);
        self.round_trip(self.request(key, signature, body)?).await
    }

    fn request(&self, key: &HeaderValue, signature: &str, body: Bytes) -> Result<Request<Full<Bytes>>, SendError> {
        let t = &self.target;
        let mut req = Request::post(t.path.as_str()).body(Full::new(body)).map_err(|_| {
            SendError::Connect(std::io::Error::new(std::io::ErrorKind::InvalidInput, "unusable request path"))
        })?;
        let h = req.headers_mut();
        for (k, v) in &t.headers {
            h.append(k.clone(), v.clone());
        }
        h.insert(header::HOST, t.authority.clone());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        h.insert("x-pusher-key", key.clone());
        if let Ok(sig) = HeaderValue::from_str(signature) {
            h.insert("x-pusher-signature", sig);
        }
        Ok(req)
    }

    /// Sends `req` on the current connection and reads the answer to its end.
    async fn round_trip(&mut self, req: Request<Full<Bytes>>) -> Result<StatusCode, SendError> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(SendError::Connect(std::io::ErrorKind::NotConnected.into()));
        };
        let resp = conn.send_request(req).await.map_err(SendError::Http)?;
        let status = resp.status();
        // Read the answer to its end so the connection can carry the next request.
        let mut body = resp.into_body();
        let mut read = 0;
        while let Some(frame) = body.frame().await {
            read += frame.map_err(SendError::Http)?.data_ref().map_or(0, Bytes::len);
            if read > MAX_ANSWER {
                // Not worth reading on: a fresh connection is cheaper.
                self.conn = None;
                break;
            }
        }
        Ok(status)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let t = &self.target;
        let tcp = TcpStream::connect((t.host.as_str(), t.port)).await.map_err(SendError::Connect)?;
        let _ = tcp.set_nodelay(true);
        if t.tls {
            let name = rustls_pki_types::ServerName::try_from(t.host.clone())
                .map_err(|e| SendError::Connect(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
            let stream = crate::http::outbound::tls_connector().connect(name, tcp).await.map_err(SendError::Connect)?;
            handshake(TokioIo::new(stream)).await
        } else {
            handshake(TokioIo::new(tcp)).await
        }
    }
}

async fn handshake<IO>(io: IO) -> Result<SendRequest<Full<Bytes>>, SendError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await.map_err(SendError::Http)?;
    // Drives the socket for as long as the client keeps the sender; ends when it is dropped.
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "webhook connection ended with an error");
        }
    });
    Ok(sender)
}
