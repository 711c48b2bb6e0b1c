//! A raw WAMP v1 client over a plain TCP socket: it writes the upgrade request by hand, sees
//! every byte the server sends (so close frames with status 0 are visible as they are), and
//! masks its frames like a browser or Oro's PHP client.

use std::net::SocketAddr;
use std::time::Duration;

use herald_protocol::ws::{OpCode, encode_client_frame};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// A close frame with its raw payload.
    Close(Vec<u8>),
    /// A ping with its payload.
    Ping(Vec<u8>),
    /// A pong with its payload.
    Pong(Vec<u8>),
}

/// How to upgrade.
pub struct Upgrade<'a> {
    /// The request target.
    pub path: &'a str,
    /// The `Origin` header, if any.
    pub origin: Option<&'a str>,
    /// Whether to offer the `wamp` subprotocol.
    pub wamp: bool,
}

impl Default for Upgrade<'_> {
    fn default() -> Self {
        Self { path: "/", origin: Some("127.0.0.1"), wamp: true }
    }
}

/// The upgrade request bytes.
pub fn request(u: &Upgrade<'_>) -> String {
    let mut r = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        u.path
    );
    if u.wamp {
        r.push_str("Sec-WebSocket-Protocol: wamp\r\n");
    }
    if let Some(o) = u.origin {
        r.push_str(&format!("Origin: {o}\r\n"));
    }
    r.push_str("\r\n");
    r
}

/// A connected client.
pub struct Client {
    /// The connection.
    pub stream: TcpStream,
    buf: Vec<u8>,
    /// The response head (status line and headers).
    pub head: String,
    /// The session id from WELCOME.
    pub session: String,
}

/// Sends the upgrade and does ONE read of at most 1 s, as Oro's PHP client effectively does on
/// loopback; returns the stream and exactly what that read returned.
pub async fn upgrade_one_read(addr: SocketAddr, u: &Upgrade<'_>) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request(u).as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf))
        .await
        .expect("an answer within 1 s")
        .unwrap();
    buf.truncate(n);
    (stream, buf)
}

/// The HTTP response to a refused upgrade, read to the end.
pub async fn refused(addr: SocketAddr, u: &Upgrade<'_>) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request(u).as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut out)).await.unwrap().unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

impl Client {
    /// Upgrades and reads WELCOME.
    pub async fn connect(addr: SocketAddr, u: &Upgrade<'_>) -> Client {
        let (stream, first) = upgrade_one_read(addr, u).await;
        let text = String::from_utf8_lossy(&first);
        assert!(text.starts_with("HTTP/1.1 101 "), "not upgraded: {text}");
        let end = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&first[..end]).into_owned();
        let mut c = Client { stream, buf: first[end..].to_vec(), head, session: String::new() };
        let welcome = c.json().await;
        assert_eq!(welcome[0], 0, "WELCOME first: {welcome}");
        c.session = welcome[1].as_str().unwrap().to_owned();
        c
    }

    /// Connects with a ticket query on `/ws`.
    pub async fn with_query(addr: SocketAddr, query: &str) -> Client {
        let path = format!("/ws{query}");
        Client::connect(addr, &Upgrade { path: &path, ..Upgrade::default() }).await
    }

    /// Sends a masked text frame.
    pub async fn send(&mut self, text: &str) {
        let frame = encode_client_frame(OpCode::Text, text.as_bytes(), [0x37, 0xfa, 0x21, 0x3d]);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// Sends a masked frame of any kind.
    pub async fn send_frame(&mut self, op: OpCode, payload: &[u8]) {
        let frame = encode_client_frame(op, payload, [1, 2, 3, 4]);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// The next frame; `None` when the server closed TCP first.
    pub async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 8192];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .expect("a frame within the wait")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next text frame, which must be there.
    pub async fn text(&mut self) -> String {
        match self.frame().await {
            Some(Frame::Text(t)) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text frame as JSON.
    pub async fn json(&mut self) -> Value {
        let t = self.text().await;
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t:?}"))
    }

    /// Everything until the server closes TCP, raw.
    pub async fn rest(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        tokio::time::timeout(WAIT, self.stream.read_to_end(&mut out)).await.expect("closed within the wait").unwrap();
        out
    }

    /// SUBSCRIBE, then a round trip proving the server handled it: WAMP v1 does not answer
    /// subscriptions, so a PREFIX + CALL on a routed topic (answered with CALLERROR) follows.
    pub async fn subscribe(&mut self, topic: &str) {
        self.send(&format!("[5,{}]", Value::from(topic))).await;
        self.sync().await;
    }

    /// Waits until the server has handled everything sent so far (CALL → CALLERROR).
    pub async fn sync(&mut self) {
        self.send(r#"[2,"sync","oro/data/update"]"#).await;
        let v = self.json().await;
        assert!(v[0] == 4 && v[1] == "sync", "unexpected frame before the sync answer: {v}");
    }
}

/// Parses one unmasked server frame from the front of `buf`.
fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let op = buf[0] & 0x0f;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])), 4),
        127 => (usize::try_from(u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?)).ok()?, 10),
        n => (usize::from(n), 2),
    };
    assert_eq!(buf[1] & 0x80, 0, "server frames are unmasked");
    let payload = buf.get(at..at + len)?.to_vec();
    at += len;
    let frame = match op {
        1 => Frame::Text(String::from_utf8(payload).unwrap()),
        2 => Frame::Binary(payload),
        8 => Frame::Close(payload),
        9 => Frame::Ping(payload),
        10 => Frame::Pong(payload),
        other => panic!("unexpected opcode {other}"),
    };
    Some((frame, at))
}

/// What Oro's PHP client extracts from its first read: it must start with `HTTP/1.1 101`, and
/// the WELCOME is the text from the first `[` to the first `]`.
pub fn php_welcome(first_read: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(first_read);
    if !text.starts_with("HTTP/1.1 101") {
        return None;
    }
    let open = text.find('[')?;
    let close = text.find(']')?;
    serde_json::from_str(text.get(open..=close)?).ok()
}
