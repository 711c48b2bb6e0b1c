//! The Oro listener behind the common edge, over real sockets: TLS (`[oro] tls_cert`/`tls_key`)
//! with the 101 and the WELCOME still in one read, the drain closing sessions over TLS, the proxy
//! path prefix, the client address from a trusted proxy's `X-Forwarded-For`, and the
//! per-address connection limits.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use herald_protocol::ws::{OpCode, encode_client_frame};
use herald_test_support::WAIT;
use herald_test_support::oro::client::{Upgrade, php_welcome, request};
use herald_test_support::oro::{OroServer, backend_query};
use herald_test_support::process::TempDir;
use herald_test_support::tls::{make_certs, tls_connect};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `head` and does ONE read of at most 1 s, as Oro's PHP client does.
async fn one_read<S: AsyncRead + AsyncWrite + Unpin>(io: &mut S, head: &str) -> Vec<u8> {
    io.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n =
        tokio::time::timeout(Duration::from_secs(1), io.read(&mut buf)).await.expect("an answer within 1 s").unwrap();
    buf.truncate(n);
    buf
}

/// Asserts that `first` is the 101 head followed by exactly one frame, the WELCOME.
fn assert_101_and_welcome(first: &[u8]) {
    let welcome = php_welcome(first).unwrap_or_else(|| panic!("no WELCOME in {}", String::from_utf8_lossy(first)));
    assert_eq!(welcome[0], 0);
    let end = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let frame = &first[end..];
    assert_eq!(frame[0], 0x81);
    assert_eq!(usize::from(frame[1]), frame.len() - 2, "exactly one frame after the head");
}

/// Reads one small unmasked text frame.
async fn text_frame<S: AsyncRead + Unpin>(io: &mut S) -> String {
    let mut head = [0u8; 2];
    tokio::time::timeout(WAIT, io.read_exact(&mut head)).await.unwrap().unwrap();
    assert_eq!(head[0], 0x81, "a text frame");
    assert!(head[1] < 126, "a short frame");
    let mut payload = vec![0u8; usize::from(head[1])];
    tokio::time::timeout(WAIT, io.read_exact(&mut payload)).await.unwrap().unwrap();
    String::from_utf8(payload).unwrap()
}

/// Everything until the server closes (a TLS peer may close without `close_notify`).
async fn until_closed<S: AsyncRead + Unpin>(io: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, io.read(&mut chunk)).await.expect("closed within the wait") {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An upgrade request with the backend's ticket on `path`, from `forwarded_for` when given.
fn upgrade_from(path: &str, forwarded_for: Option<&str>) -> String {
    let path = format!("{path}{}", backend_query());
    let head = request(&Upgrade { path: &path, ..Upgrade::default() });
    match forwarded_for {
        Some(ip) => head.replacen("\r\n\r\n", &format!("\r\nX-Forwarded-For: {ip}\r\n\r\n"), 1),
        None => head,
    }
}

#[tokio::test]
async fn over_tls_the_101_and_welcome_come_in_one_read_and_the_drain_closes_the_session() {
    let dir = TempDir::new("oro-tls");
    make_certs(&dir.0);
    let section = format!("tls_cert = {:?}\ntls_key = {:?}", dir.path("leaf.pem"), dir.path("leaf.key"));
    let s = OroServer::start(&section, &[]).await;

    let mut tls = tls_connect(s.addr, &dir.path("ca.pem")).await;
    let first = one_read(&mut tls, &upgrade_from("/ws", None)).await;
    assert_101_and_welcome(&first);
    // The session runs over TLS: a CALL on a routed topic is answered with CALLERROR.
    let call = encode_client_frame(OpCode::Text, br#"[2,"sync","oro/data/update"]"#, [1, 2, 3, 4]);
    tls.write_all(&call).await.unwrap();
    let answer: serde_json::Value = serde_json::from_str(&text_frame(&mut tls).await).unwrap();
    assert_eq!((answer[0].clone(), answer[1].clone()), (4.into(), "sync".into()), "{answer}");

    // Plain HTTP on the TLS port fails the handshake instead of being upgraded.
    let mut plain = TcpStream::connect(s.addr).await.unwrap();
    plain.write_all(upgrade_from("/ws", None).as_bytes()).await.unwrap();
    assert!(!until_closed(&mut plain).await.starts_with(b"HTTP/"), "no answer in clear on the TLS port");

    // The drain asks the session to close (1001), over TLS, and waits for it.
    let reader = tokio::spawn(async move { until_closed(&mut tls).await });
    s.shutdown().await;
    let rest = reader.await.unwrap();
    assert_eq!(rest.get(..4), Some(&[0x88, 0x02, 0x03, 0xe9][..]), "close 1001: {rest:?}");
}

/// The status line of the answer to `head`; an upgraded connection is kept in `open` (with its
/// per-address place).
async fn upgrade_status(addr: SocketAddr, head: &str, open: &mut Vec<TcpStream>) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let first = one_read(&mut stream, head).await;
    let text = String::from_utf8_lossy(&first).into_owned();
    if text.starts_with("HTTP/1.1 101 ") {
        assert_101_and_welcome(&first);
        open.push(stream);
    }
    text.lines().next().unwrap_or_default().to_owned()
}

const SWITCHING: &str = "HTTP/1.1 101 Switching Protocols";
const TOO_MANY: &str = "HTTP/1.1 429 Too Many Requests";

#[tokio::test]
async fn path_prefix_trusted_proxies_and_per_address_limits_apply_to_oro() {
    let vars = [
        ("HERALD__SERVER__PATH_PREFIX", "/ws"),
        ("HERALD__SERVER__TRUSTED_PROXIES", "127.0.0.1"),
        ("HERALD__SERVER__MAX_CONNECTIONS_PER_IP", "1"),
    ];
    let s = OroServer::start("", &vars).await;
    let mut open = Vec::new();
    // Under the prefix or not, the ticket in the query survives: the backend gets its WELCOME.
    assert_eq!(upgrade_status(s.addr, &upgrade_from("/ws/", Some("203.0.113.1")), &mut open).await, SWITCHING);
    // Behind the trusted proxy, another client is another address...
    assert_eq!(upgrade_status(s.addr, &upgrade_from("/", Some("203.0.113.2")), &mut open).await, SWITCHING);
    // ...and the first one is at its limit.
    assert_eq!(upgrade_status(s.addr, &upgrade_from("/ws", Some("203.0.113.1")), &mut open).await, TOO_MANY);
    s.until("two sessions", |s| s.connections() == 2).await;
    drop(open);
    s.shutdown().await;

    // Without trusted proxies the header is the client's own claim: every connection counts
    // for 127.0.0.1.
    let s = OroServer::start("", &[("HERALD__SERVER__MAX_CONNECTIONS_PER_IP", "1")]).await;
    let mut open = Vec::new();
    assert_eq!(upgrade_status(s.addr, &upgrade_from("/", Some("203.0.113.1")), &mut open).await, SWITCHING);
    assert_eq!(upgrade_status(s.addr, &upgrade_from("/", Some("203.0.113.2")), &mut open).await, TOO_MANY);
    drop(open);
    s.shutdown().await;
}
