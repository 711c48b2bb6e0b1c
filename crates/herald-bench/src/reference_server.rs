//! A minimal Pusher-speaking server that does nothing but fan out, as a floor to compare real
//! servers with on the same machine and harness.
//!
//! It accepts WebSocket connections on any path, greets them, confirms any `pusher:subscribe`
//! (every subscriber is on the one channel), and answers `POST …/events` by encoding the event
//! once and writing that frame straight to every subscriber socket from the request's own task:
//! no queues, no wake-ups, no signature check, one `write` per subscriber. What it achieves is
//! roughly what the loopback TCP path and the generator allow here; the gap between it and a
//! server is that server's own cost. Not a server to use for anything else.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;

use bytes::{Buf as _, BytesMut};
use herald_protocol::ws::{self, Decoder, DecoderConfig, Message};
use memchr::memmem;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// One subscriber socket and the bytes the socket did not take yet.
struct Subscriber {
    /// The socket; reads happen in its own task, writes from publishing tasks.
    stream: TcpStream,
    /// Frame bytes waiting for the socket to drain (empty almost always).
    pending: RefCell<Vec<u8>>,
}

/// Every subscriber currently connected.
type Subscribers = Rc<RefCell<Vec<Rc<Subscriber>>>>;

/// Accepts connections forever.
///
/// # Errors
/// The listener failed.
pub async fn serve(listener: TcpListener) -> io::Result<()> {
    let subs: Subscribers = Rc::default();
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let subs = Rc::clone(&subs);
        tokio::task::spawn_local(async move {
            let _ = connection(stream, subs).await;
        });
    }
}

/// Reads the first request head and serves the connection as WebSocket or HTTP API.
async fn connection(mut stream: TcpStream, subs: Subscribers) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(4096);
    let head_end = read_head(&mut stream, &mut buf).await?;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.contains("upgrade: websocket") {
        let key = header(&String::from_utf8_lossy(&buf[..head_end]), "sec-websocket-key").unwrap_or_default();
        buf.advance(head_end);
        return websocket(stream, buf, &key, subs).await;
    }
    http(stream, buf, head_end, subs).await
}

/// Reads until the end of a request head; returns its length (including the blank line).
async fn read_head(stream: &mut TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        if let Some(i) = memmem::find(buf, b"\r\n\r\n") {
            return Ok(i + 4);
        }
        if buf.len() > MAX_HEAD || stream.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// The value of header `name` (lower-case) in a request head.
fn header(head: &str, name: &str) -> Option<String> {
    head.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
}

/// A Pusher WebSocket session: greet, confirm subscriptions, keep reading until the end.
async fn websocket(mut stream: TcpStream, mut buf: BytesMut, key: &str, subs: Subscribers) -> io::Result<()> {
    let accept = ws::accept_key(key.as_bytes());
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(reply.as_bytes()).await?;
    let hello =
        r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.1\",\"activity_timeout\":120}"}"#;
    stream.write_all(&ws::encode_text(hello.as_bytes())).await?;
    let mut decoder = Decoder::new(DecoderConfig::default());
    let sub = Rc::new(Subscriber { stream, pending: RefCell::new(Vec::new()) });
    let result = loop {
        let msg = match decoder.decode(&mut buf) {
            Ok(Some(m)) => m,
            Ok(None) => {
                sub.stream.readable().await?;
                match sub.stream.try_read_buf(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => break Err(e),
                }
            }
            Err(_) => break Ok(()),
        };
        match msg {
            Message::Text(t) if memmem::find(&t, b"pusher:subscribe").is_some() => {
                let ok = r#"{"event":"pusher_internal:subscription_succeeded","channel":"bench","data":"{}"}"#;
                send(&sub, &ws::encode_text(ok.as_bytes()));
                subs.borrow_mut().push(Rc::clone(&sub));
            }
            Message::Ping(p) => send(&sub, &ws::encode_pong(&p)),
            Message::Close(_) => break Ok(()),
            _ => {}
        }
    };
    subs.borrow_mut().retain(|s| !Rc::ptr_eq(s, &sub));
    result
}

/// Keep-alive HTTP: every `POST` is a publish to all subscribers, answered `200 {}`.
async fn http(mut stream: TcpStream, mut buf: BytesMut, mut head_end: usize, subs: Subscribers) -> io::Result<()> {
    loop {
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let len: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        while buf.len() < head_end + len {
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        let body = buf.split_to(head_end + len).split_off(head_end);
        if head.starts_with("POST") {
            publish(&body, &subs);
        }
        stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}").await?;
        head_end = read_head(&mut stream, &mut buf).await?;
    }
}

/// Encodes the event once and writes it to every subscriber.
fn publish(body: &[u8], subs: &Subscribers) {
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let data = event.get("data").and_then(|d| d.as_str()).unwrap_or("");
    let msg = serde_json::json!({"event": "bench", "channel": "bench", "data": data}).to_string();
    let frame = ws::encode_text(msg.as_bytes());
    for sub in subs.borrow().iter() {
        send(sub, &frame);
    }
}

/// Writes `frame` now if the socket takes it; keeps the rest for a flushing task otherwise.
fn send(sub: &Rc<Subscriber>, frame: &[u8]) {
    let mut pending = sub.pending.borrow_mut();
    if !pending.is_empty() {
        pending.extend_from_slice(frame);
        return;
    }
    let written = sub.stream.try_write(frame).unwrap_or(0);
    if written < frame.len() {
        pending.extend_from_slice(&frame[written..]);
        let sub = Rc::clone(sub);
        tokio::task::spawn_local(async move { flush(&sub).await });
    }
}

/// Drains a subscriber's pending bytes as the socket allows.
async fn flush(sub: &Subscriber) {
    loop {
        if sub.stream.writable().await.is_err() {
            return;
        }
        let mut pending = sub.pending.borrow_mut();
        match sub.stream.try_write(&pending) {
            Ok(n) => {
                pending.drain(..n);
                if pending.is_empty() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
