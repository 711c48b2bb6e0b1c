//! A lean WebSocket client: TCP connect from a chosen source address, the opening handshake,
//! and frames through the sans-IO codec of `herald_protocol::ws`.
//!
//! Memory is the point, as on the server side: an idle connection holds a socket, a decoder of
//! a few dozen bytes and an empty buffer. Reads land in one per-thread scratch buffer and only
//! the bytes of an unfinished frame are kept per connection, so 18k subscribers cost the
//! generator little and each read can still drain many frames at once.
//!
//! With `--tls` the same client speaks `wss://`: the handshake by `tokio-rustls`, then records
//! read into the same scratch buffer and decrypted by rustls (see [`crate::tls`]).

use std::io;
use std::net::{IpAddr, SocketAddr};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use herald_protocol::ws::{self, Decoder, DecoderConfig, Message, OpCode};
use memchr::memmem;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::clock;
use crate::error::BenchError;
use crate::scratch::with_scratch;
use crate::tls::{TlsClient, TlsSocket};

/// Longest response head accepted for the upgrade.
const MAX_HEAD: usize = 8 * 1024;
/// Largest message the generator accepts from a server.
const MAX_MESSAGE: usize = 1 << 20;

/// One client WebSocket connection.
#[derive(Debug)]
pub struct WsConn {
    /// The socket, plain or TLS.
    transport: Transport,
    /// Bytes of a frame whose end has not arrived; empty and unallocated between frames.
    inbuf: BytesMut,
    /// The frame decoder (client role: server frames are unmasked).
    decoder: Decoder,
    /// When the last read returned data, in [`clock::now_us`] microseconds.
    last_read_us: u64,
}

/// What a connection's frames travel over. An enum, not a trait object: the plain path stays
/// the direct `TcpStream` calls it always was, with one predictable branch per read.
#[derive(Debug)]
enum Transport {
    /// `ws://`: frames straight on the TCP stream.
    Plain(TcpStream),
    /// `wss://`: boxed so a plain connection does not carry rustls' state inline.
    Tls(Box<TlsSocket>),
}

/// Sends the upgrade request on `stream` and reads the response head; returns the bytes that
/// followed the head (the start of the first frames, if the server was quick).
async fn upgrade<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    server: SocketAddr,
    path: &str,
    subprotocol: Option<&str>,
) -> Result<BytesMut, BenchError> {
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(p) = subprotocol {
        req.push_str("Sec-WebSocket-Protocol: ");
        req.push_str(p);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await?;
    // A TLS stream may still hold encrypted bytes that write_all did not push out.
    stream.flush().await?;

    let mut head = BytesMut::with_capacity(1024);
    let end = loop {
        if stream.read_buf(&mut head).await? == 0 {
            return Err(BenchError::Closed);
        }
        if let Some(i) = memmem::find(&head, b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > MAX_HEAD {
            return Err(BenchError::BadUpgrade);
        }
    };
    check_upgrade(&head[..end], &ws::accept_key(key.as_bytes()))?;
    Ok(head.split_off(end))
}

/// Opens a TCP connection to `server`, bound to `source` (port chosen by the kernel).
///
/// # Errors
/// Socket creation, bind or connect failures.
pub async fn tcp_connect(server: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, BenchError> {
    let socket = if server.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

impl WsConn {
    /// Connects and performs the opening handshake (RFC 6455 §4.1) for `path`, offering
    /// `subprotocol` if given; over TLS first when `tls` is given (`wss://`).
    ///
    /// # Errors
    /// TCP or TLS failures, a refused upgrade, or a `101` without the right accept key.
    pub async fn connect(
        server: SocketAddr,
        source: Option<IpAddr>,
        tls: Option<&TlsClient>,
        path: &str,
        subprotocol: Option<&str>,
    ) -> Result<Self, BenchError> {
        let stream = tcp_connect(server, source).await?;
        let (transport, leftover) = match tls {
            None => {
                let mut stream = stream;
                let leftover = upgrade(&mut stream, server, path, subprotocol).await?;
                (Transport::Plain(stream), leftover)
            }
            Some(tls) => {
                let mut stream = tls.handshake(stream, server).await?;
                let leftover = upgrade(&mut stream, server, path, subprotocol).await?;
                (Transport::Tls(Box::new(TlsSocket::new(stream))), leftover)
            }
        };
        let config = DecoderConfig { max_message_size: MAX_MESSAGE, max_frame_size: MAX_MESSAGE };
        Ok(Self {
            transport,
            inbuf: if leftover.is_empty() { BytesMut::new() } else { leftover },
            decoder: Decoder::new_client(config),
            last_read_us: clock::now_us(),
        })
    }

    /// When the most recent read returned data ([`clock::now_us`] microseconds). Latency is
    /// measured to this instant, so decoding time inside the generator is not counted.
    pub fn last_read_us(&self) -> u64 {
        self.last_read_us
    }

    /// Sends one masked frame.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn send(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), BenchError> {
        let frame = ws::encode_client_frame(opcode, payload, rand::random());
        match &mut self.transport {
            Transport::Plain(stream) => stream.write_all(&frame).await?,
            Transport::Tls(tls) => tls.write_all(&frame).await?,
        }
        Ok(())
    }

    /// Sends a text message.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn send_text(&mut self, payload: &[u8]) -> Result<(), BenchError> {
        self.send(OpCode::Text, payload).await
    }

    /// The next message, control frames included. Cancel-safe: bytes already read stay
    /// buffered.
    ///
    /// # Errors
    /// The socket failed or closed, or the server broke RFC 6455.
    pub async fn next_message(&mut self) -> Result<Message, BenchError> {
        loop {
            if !self.inbuf.is_empty() {
                let decoded = self.decoder.decode(&mut self.inbuf)?;
                if self.inbuf.is_empty() && self.inbuf.capacity() > 0 {
                    self.inbuf = BytesMut::new();
                }
                if let Some(m) = decoded {
                    return Ok(m);
                }
            }
            let read = match &mut self.transport {
                Transport::Plain(stream) => {
                    stream.readable().await?;
                    with_scratch(|scratch| match stream.try_read(scratch) {
                        Ok(0) => Err(BenchError::Closed),
                        Ok(n) => {
                            self.inbuf.extend_from_slice(&scratch[..n]);
                            Ok(true)
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                        Err(e) => Err(e.into()),
                    })?
                }
                Transport::Tls(tls) => {
                    // Timed by the TLS socket itself: when its read returned, before decryption.
                    if let Some(at) = tls.read_into(&mut self.inbuf).await? {
                        self.last_read_us = at;
                    }
                    false
                }
            };
            if read {
                self.last_read_us = clock::now_us();
            }
        }
    }

    /// The next data message (text or binary payload). Pings are answered on the way; a Close
    /// frame ends the connection.
    ///
    /// # Errors
    /// As [`next_message`](Self::next_message), plus [`BenchError::CloseFrame`].
    pub async fn next_data(&mut self) -> Result<Bytes, BenchError> {
        loop {
            match self.next_message().await? {
                Message::Text(b) | Message::Binary(b) => return Ok(b),
                Message::Ping(p) => self.send(OpCode::Pong, &p).await?,
                Message::Pong(_) => {}
                Message::Close(frame) => return Err(BenchError::CloseFrame(frame.map(|f| f.code))),
            }
        }
    }

    /// Sends a Close frame (1000) without waiting for the answer; dropping the connection
    /// afterwards is the caller's business.
    pub async fn close(&mut self) {
        let _ = self.send(OpCode::Close, &1000u16.to_be_bytes()).await;
    }
}

/// Checks a `101 Switching Protocols` head and its accept key.
fn check_upgrade(head: &[u8], expected_accept: &str) -> Result<(), BenchError> {
    let text = std::str::from_utf8(head).map_err(|_| BenchError::BadUpgrade)?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(BenchError::UpgradeRefused(status.to_owned()));
    }
    let accept_ok = lines.filter_map(|l| l.split_once(':')).any(|(name, value)| {
        name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == expected_accept
    });
    if accept_ok { Ok(()) } else { Err(BenchError::BadUpgrade) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_head_needs_status_and_key() {
        let ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nsec-websocket-accept: abc\r\n\r\n";
        assert!(check_upgrade(ok.as_bytes(), "abc").is_ok());
        assert!(matches!(check_upgrade(ok.as_bytes(), "abd"), Err(BenchError::BadUpgrade)));
        let refused = "HTTP/1.1 429 Too Many Requests\r\n\r\n";
        assert!(matches!(check_upgrade(refused.as_bytes(), "abc"), Err(BenchError::UpgradeRefused(_))));
    }
}
