//! Raw WebSocket upgrades for the edge tests: the status line and headers of the answer, and
//! the socket kept open when it was a `101`.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound on any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// The answer to an upgrade request.
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The head, lower-cased header names as sent.
    pub head: String,
    /// The body, for answers that are not `101` (read to the end).
    pub body: String,
    /// The socket: open after a `101`.
    pub stream: TcpStream,
}

impl Answer {
    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// Sends a WebSocket upgrade for `path` with `headers` and reads the answer's head.
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

/// A Pusher upgrade path for `key`.
pub fn pusher_path(key: &str) -> String {
    format!("/app/{key}?protocol=7&client=js&version=8.4.0")
}
