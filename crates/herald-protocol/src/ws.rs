//! The RFC 6455 WebSocket codec, sans-IO: frame decoding for both roles, frame encoding and the
//! opening-handshake accept key. It owns no socket and never allocates for a connection that is
//! idle.
//!
//! # Shape
//!
//! - [`Decoder`] turns the bytes a peer sent into whole [`Message`]s: fragments joined, text
//!   validated as UTF-8, every RFC violation reported as a [`WsError`] that knows its close code.
//! - [`encode_frame`] and friends build one complete server frame (header and payload in one
//!   contiguous [`Bytes`]). Server frames are not masked (RFC 6455 §5.1), so the same `Bytes`
//!   can be cloned into every recipient's queue: a publication is encoded once, not once per
//!   subscriber. Coalescing queued frames into one vectored write is the socket's job
//!   (`herald-server`'s `ws/socket.rs`).
//!
//! # Memory contract
//!
//! Between messages a [`Decoder`] is a few dozen bytes inline and owns no heap memory; the only
//! allocation it ever owns is the body of a fragmented message that is still open, bounded by
//! [`DecoderConfig::max_message_size`]. The read buffer belongs to the caller. Because an
//! unfragmented message is handed out as a zero-copy slice of that buffer, a [`Message`] keeps
//! its part of the read allocation alive for as long as the application holds it; an
//! application that keeps a message around for long should copy it. See [`Decoder::decode`]
//! for how the socket task keeps its buffer empty while the peer is quiet.
//!
//! # Leniency
//!
//! RFC 6455 §5.2 says the payload length MUST use the minimal encoding, but names no reaction
//! for a receiver. The decoder accepts a longer-than-needed encoding (for example 5 in the
//! 16-bit form): rejecting it protects nothing, and some clients in the wild pad lengths.
//! Every other rule of §5 is enforced.
//!
//! Bare section numbers (`§5.5.1`) here and in the submodules are those of RFC 6455.

use base64::Engine as _;
use bytes::Bytes;
use sha1::{Digest as _, Sha1};

mod close;
mod decoder;
mod encode;
mod error;
mod head;
mod mask;
mod utf8;

#[cfg(test)]
mod tests;

pub use close::{encode_close, encode_close_reply, is_valid_close_code};
pub use decoder::{Decoder, DecoderConfig};
pub use encode::{encode_binary, encode_client_frame, encode_frame, encode_ping, encode_pong, encode_text};
pub use error::WsError;

/// The GUID that RFC 6455 §1.3 appends to the client's key before hashing.
const HANDSHAKE_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes the `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key` (RFC 6455
/// §4.2.2): base64 of the SHA-1 of the key followed by the protocol GUID.
///
/// The key is used exactly as given; strip surrounding whitespace before calling if the HTTP
/// layer did not.
pub fn accept_key(sec_websocket_key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(sec_websocket_key);
    sha1.update(HANDSHAKE_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// Whether a `Sec-WebSocket-Key` is what RFC 6455 §4.2.1 requires: base64 of 16 bytes.
pub fn is_valid_key(sec_websocket_key: &[u8]) -> bool {
    base64::engine::general_purpose::STANDARD.decode(sec_websocket_key).is_ok_and(|k| k.len() == 16)
}

/// A frame opcode that RFC 6455 §5.2 defines. The reserved values (3–7, 0xB–0xF) have no
/// variant: a frame carrying one is rejected with [`WsError::ReservedOpcode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: the next fragment of a message started by a Text or Binary frame.
    Continuation,
    /// 0x1: the first (or only) frame of a UTF-8 text message.
    Text,
    /// 0x2: the first (or only) frame of a binary message.
    Binary,
    /// 0x8: the closing handshake (§5.5.1).
    Close,
    /// 0x9: a keep-alive probe the receiver must answer with a Pong (§5.5.2).
    Ping,
    /// 0xA: the answer to a Ping, or an unsolicited heartbeat (§5.5.3).
    Pong,
}

impl OpCode {
    /// Maps the low nibble of a frame's first byte to an opcode; `None` for reserved values.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value of this opcode.
    pub const fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Whether this is a control opcode (Close, Ping, Pong): at most 125 bytes of payload and
    /// never fragmented (§5.5).
    pub const fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// A complete message handed to the application: fragments already joined, text already
/// validated as UTF-8, control frames returned as soon as they arrive (even between the
/// fragments of a data message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message; the bytes are guaranteed to be valid UTF-8.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A Ping; answer it with [`encode_pong`] carrying the same payload (§5.5.2).
    Ping(Bytes),
    /// A Pong; usually proof that the peer is alive.
    Pong(Bytes),
    /// The peer started (or answered) the closing handshake. `None` when the Close frame had
    /// no payload. Answer with [`encode_close_reply`] and close the TCP connection.
    Close(Option<CloseFrame>),
}

/// The payload of a Close frame (RFC 6455 §5.5.1): a status code and an optional reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code (§7.4); the decoder only hands out codes that
    /// [`is_valid_close_code`] accepts.
    pub code: u16,
    /// The reason text, at most 123 bytes of UTF-8; often empty.
    pub reason: String,
}
