//! Raw HTTP/1.1 over any stream (one request, `Connection: close`), signed publishes through
//! the Pusher HTTP API, and the Prometheus text format.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;
use crate::sign::signed_query;

/// One request over `s` (TCP, TLS...), read until the server closes; returns status and body.
pub async fn http_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await.expect("response in time");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// A request without body over a new TCP connection to `addr`.
pub async fn http(addr: SocketAddr, method: &str, target: &str) -> (u16, String) {
    http_on(TcpStream::connect(addr).await.unwrap(), method, target, &[], "").await
}

/// Target and body of `POST {sent_prefix}/apps/{id}/events` publishing event `ev` with `data` on
/// `channel`, signed over `{signed_prefix}/apps/{id}/events` (a proxy strips or adds a prefix).
pub fn signed_publish(
    app_id: &str,
    key: &str,
    secret: &str,
    channel: &str,
    data: &str,
    sent_prefix: &str,
    signed_prefix: &str,
) -> (String, String) {
    let body = serde_json::json!({"name": "ev", "channel": channel, "data": data}).to_string();
    let path = format!("/apps/{app_id}/events");
    let q = signed_query("POST", &format!("{signed_prefix}{path}"), &[], &body, key, secret);
    (format!("{sent_prefix}{path}?{q}"), body)
}

/// Publishes event `ev` with `data` on `channel` for `app` (id, key, secret); the status.
pub async fn publish_data(addr: SocketAddr, app: (&str, &str, &str), channel: &str, data: &str) -> u16 {
    let (target, body) = signed_publish(app.0, app.1, app.2, channel, data, "", "");
    http_on(TcpStream::connect(addr).await.unwrap(), "POST", &target, &[], &body).await.0
}

/// A signed `POST /apps/{id}/events` of `event` (a JSON object with name, channel(s), data...)
/// for `app` (id, key, secret); status and body.
pub async fn publish(addr: SocketAddr, app: (&str, &str, &str), event: Value) -> (u16, String) {
    let body = event.to_string();
    let path = format!("/apps/{}/events", app.0);
    let q = signed_query("POST", &path, &[], &body, app.1, app.2);
    http_on(TcpStream::connect(addr).await.unwrap(), "POST", &format!("{path}?{q}"), &[], &body).await
}

/// Parses the Prometheus text format into `series -> value` (`name{labels}` as written).
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad metrics line {line:?}"));
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(out.insert(series.to_owned(), v).is_none(), "duplicate series {series}");
    }
    out
}
