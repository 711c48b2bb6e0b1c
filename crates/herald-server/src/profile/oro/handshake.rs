//! The Oro listener's own HTTP/1.1 upgrade: read one request, check it the way
//! Ratchet's `HttpServer` → GOS `OriginCheck` → `WsServer` stack does, and build the bytes of
//! the answer.
//!
//! hyper cannot be used here: it writes the `101` itself, while Oro's PHP backend client reads for
//! one second, stops at the first empty read after any data, and needs the WELCOME in that same
//! burst (OroPlatform's `SyncBundle/Client/Wamp/WampClient.php`). So the 101 and the WELCOME are
//! built here and go out in one write.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use herald_protocol::ws;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 64;
/// How long a client may take to send its request head (the same slow-loris guard as hyper's).
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A request that may be upgraded.
#[derive(Debug)]
pub(crate) struct Upgrade {
    /// The request path, without the query.
    pub(crate) path: String,
    /// The query string (without `?`), where the ticket is.
    pub(crate) query: String,
    /// The `X-Forwarded-For` lines, in order (believed only from trusted proxies).
    pub(crate) forwarded_for: Vec<String>,
    /// The `Origin` header, if any.
    pub(crate) origin: Option<String>,
    /// Whether the client offered the `wamp` subprotocol.
    pub(crate) wamp: bool,
    /// The `Sec-WebSocket-Accept` value, or what the WebSocket headers call for. Kept apart
    /// because Ratchet's origin check runs before the WebSocket checks and must win.
    pub(crate) accept: Result<String, Refusal>,
}

/// Why a request is not upgraded; each maps to a bare HTTP response, then close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// Unparsable HTTP, not GET, not HTTP/1.1, a path not starting with `/`, not exactly one
    /// Host, or a missing or malformed WebSocket header.
    #[error("400 Bad Request")]
    BadRequest,
    /// The origin check failed (Oro's `OriginCheck`).
    #[error("403 Forbidden")]
    Forbidden,
    /// A WebSocket version other than 13.
    #[error("426 Upgrade Required")]
    UpgradeRequired,
    /// The request head is larger than herald accepts.
    #[error("431 Request Header Fields Too Large")]
    TooLarge,
    /// The client address is over its per-address limits (`listen/per_ip.rs`).
    #[error("429 Too Many Requests")]
    TooManyRequests {
        /// Whole seconds until a new connection may be opened, when that is what is over.
        retry_after: Option<u64>,
    },
    /// The app is at its `max_connections`.
    #[error("503 Service Unavailable")]
    Unavailable,
}

impl Refusal {
    /// The complete response, as Ratchet's `CloseResponseTrait` sends it: status line, a few
    /// headers, no body.
    pub(crate) fn response(self) -> Bytes {
        let mut out = format!("HTTP/1.1 {self}\r\nX-Powered-By: {}\r\n", super::SERVER_IDENT);
        match self {
            Refusal::UpgradeRequired => out.push_str("Sec-WebSocket-Version: 13\r\n"),
            Refusal::TooManyRequests { retry_after: Some(secs) } => out.push_str(&format!("Retry-After: {secs}\r\n")),
            _ => {}
        }
        out.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
        Bytes::from(out)
    }
}

/// Reads one request head from `io`. Bytes past it (a client that did not wait for the 101)
/// are returned as well.
///
/// # Errors
/// The [`Refusal`] to answer with; `None` when the client went away or said nothing.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(io: &mut S) -> Result<(Upgrade, Bytes), Option<Refusal>> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let n = io.read_buf(&mut buf).await.map_err(|_| None)?;
        if n == 0 {
            return Err(None);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let upgrade = check(&req)?;
                let _ = buf.split_to(len);
                return Ok((upgrade, buf.freeze()));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err(Some(Refusal::TooLarge)),
            Err(httparse::Error::TooManyHeaders) => return Err(Some(Refusal::TooLarge)),
            Err(_) => return Err(Some(Refusal::BadRequest)),
        }
    }
}

/// Ratchet's HTTP checks; the WebSocket header checks are only recorded, because the origin
/// check (in the caller) comes first: a bad origin is a 403 even on a non-WebSocket request.
fn check(req: &httparse::Request<'_, '_>) -> Result<Upgrade, Option<Refusal>> {
    let bad = Some(Refusal::BadRequest);
    if req.method != Some("GET") || req.version != Some(1) {
        return Err(bad);
    }
    let path = req.path.ok_or(bad)?;
    if !path.starts_with('/') {
        return Err(bad);
    }
    let values = |name: &str| -> Vec<&str> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| std::str::from_utf8(h.value).unwrap_or(""))
            .collect()
    };
    let text = |name: &str| values(name).first().map(|v| v.trim());
    if values("host").len() != 1 {
        return Err(bad);
    }
    let tokens = |name: &str, token: &str| {
        values(name).iter().any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    let origin = text("origin").map(str::to_owned);
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let forwarded_for = values("x-forwarded-for").into_iter().map(str::to_owned).collect();
    let wamp = tokens("sec-websocket-protocol", "wamp");
    let ws_ok = tokens("upgrade", "websocket") && tokens("connection", "upgrade");
    let key = text("sec-websocket-key").filter(|k| valid_key(k));
    let version = text("sec-websocket-version");
    let accept = match (ws_ok, key, version) {
        (true, Some(k), Some("13")) => Ok(ws::accept_key(k.as_bytes())),
        (true, Some(_), Some(_)) => Err(Refusal::UpgradeRequired),
        _ => Err(Refusal::BadRequest),
    };
    Ok(Upgrade { path: path.to_owned(), query: query.to_owned(), forwarded_for, origin, wamp, accept })
}

impl Upgrade {
    /// The 101 response followed by `first_frame`, as one buffer for one write. No header
    /// contains `[` or `]`, since Oro's client takes the WELCOME from the first `[`.
    pub(crate) fn switching_protocols(&self, accept: &str, first_frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(192 + first_frame.len());
        out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
        out.extend_from_slice(b"Sec-WebSocket-Accept: ");
        out.extend_from_slice(accept.as_bytes());
        out.extend_from_slice(b"\r\n");
        if self.wamp {
            out.extend_from_slice(b"Sec-WebSocket-Protocol: wamp\r\n");
        }
        out.extend_from_slice(b"X-Powered-By: ");
        out.extend_from_slice(super::SERVER_IDENT.as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(first_frame);
        out
    }
}

/// A `Sec-WebSocket-Key` must be the base64 of 16 bytes (RFC 6455 §4.2.1).
fn valid_key(key: &str) -> bool {
    use base64::Engine as _;
    key.len() == 24 && base64::engine::general_purpose::STANDARD.decode(key).is_ok_and(|k| k.len() == 16)
}

/// The host an `Origin` header names: its URL host, or the raw value when it is not a URL
/// (PHP `parse_url($origin, PHP_URL_HOST) ?: $origin`).
pub(crate) fn origin_host(origin: &str) -> &str {
    let origin = origin.trim();
    let after_scheme = match origin.find("://") {
        Some(i) => &origin[i + 3..],
        None => match origin.strip_prefix("//") {
            Some(rest) => rest,
            None => {
                // `host:port` is a host and a port to parse_url as well.
                return match origin.rsplit_once(':') {
                    Some((h, p)) if !h.is_empty() && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
                    _ => origin,
                };
            }
        },
    };
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split_once(']').map_or(hostport, |(h, _)| h)
    } else {
        hostport.rsplit_once(':').map_or(hostport, |(h, _)| h)
    };
    if host.is_empty() { origin } else { host }
}

#[cfg(test)]
mod tests;
