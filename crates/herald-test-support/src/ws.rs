//! WebSocket clients: tungstenite streams over any transport (TCP, TLS, a proxy) and raw
//! upgrades whose answer is read byte by byte.

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::WAIT;

/// A client WebSocket as `tokio_tungstenite::connect_async` returns it.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A Pusher upgrade path for app `key` (protocol 7, as pusher-js 8.4 sends it).
pub fn pusher_path(key: &str) -> String {
    format!("/app/{key}?protocol=7&client=js&version=8.4.0")
}

/// The next text message as JSON; pings and pongs are skipped (tungstenite answers pings).
pub async fn next_json<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("message in time");
        match msg.expect("socket open").expect("no error") {
            Message::Text(t) => return serde_json::from_str(&t).expect("server sends JSON"),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame and returns it (`None`: the stream ended without one).
pub async fn close_frame<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Option<CloseFrame> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("close in time");
        match msg {
            Some(Ok(Message::Close(f))) => return f,
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("socket error before the close frame: {e}"),
            None => return None,
        }
    }
}

/// Sends `v` as a text message.
pub async fn send_json<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, v: Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// Subscribes a Pusher client to a public channel and waits for the acknowledgement.
pub async fn subscribe<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, channel: &str) {
    send_json(ws, serde_json::json!({"event":"pusher:subscribe","data":{"channel":channel}})).await;
    let ack = next_json(ws).await;
    assert_eq!(ack["event"], "pusher_internal:subscription_succeeded", "{ack}");
}

/// The answer to a raw upgrade request.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The head: status line and headers, as sent.
    pub head: String,
    /// The body, for answers that are not `101` (read to its Content-Length).
    pub body: String,
    /// The socket: open after a `101`.
    pub stream: TcpStream,
}

impl Answer {
    /// A header's value (name compared case-insensitively), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Sends a WebSocket upgrade for `path` with extra `headers` and reads the answer's head (and
/// its body when it is not a `101`).
pub async fn upgrade(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut byte)).await.expect("answer in time").unwrap();
        assert!(n == 1, "connection closed inside the head: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut body = String::new();
    if status != 101 {
        let len = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut buf = vec![0u8; len];
        tokio::time::timeout(WAIT, stream.read_exact(&mut buf)).await.expect("body in time").unwrap();
        body = String::from_utf8_lossy(&buf).into_owned();
    }
    Answer { status, head, body, stream }
}
