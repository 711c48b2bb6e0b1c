//! The echo endpoint: a conformance target for the WebSocket layer (RFC 6455 test suites).
//!
//! Off by default; only `[server] test_echo_endpoint = true` mounts it at `/echo`. It echoes
//! text and binary messages with their opcode and answers the close handshake, through exactly
//! the codec and socket pump that Pusher and WAMP sessions use.

use bytes::Bytes;
use herald_core::{Outbox, OutboxLimits};
use herald_protocol::ws::{self, Message, OpCode};
use tokio::io::{AsyncRead, AsyncWrite};

use super::socket::{Event, Socket};

/// Echoes until the client closes.
pub(crate) async fn run<S: AsyncRead + AsyncWrite + Unpin>(mut socket: Socket<S>) {
    // No one else writes to an echo socket; the outbox exists for the pump's interface.
    let outbox = Outbox::new(OutboxLimits::default());
    let close_frame: Option<Bytes> = loop {
        let event = std::future::poll_fn(|cx| socket.poll_event(cx, &outbox)).await;
        match event {
            Event::Message(Message::Text(t)) => socket.queue(ws::encode_frame(OpCode::Text, &t)),
            Event::Message(Message::Binary(b)) => socket.queue(ws::encode_frame(OpCode::Binary, &b)),
            Event::Message(Message::Ping(p)) => socket.queue(ws::encode_pong(&p)),
            Event::Message(Message::Pong(_)) => {}
            Event::Message(Message::Close(frame)) => break Some(ws::encode_close_reply(frame.as_ref())),
            Event::Violation(e) => break Some(ws::encode_close(e.close_code(), &e.to_string())),
            Event::Gone => break None,
            Event::CloseRequested(_) => break Some(ws::encode_close(1001, "going away")),
        }
    };
    socket.close(close_frame, &outbox, false).await;
}
