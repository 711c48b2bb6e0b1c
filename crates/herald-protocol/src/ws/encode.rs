//! Encoding whole frames: unmasked server frames shared by every recipient, and masked client
//! frames for tests and the load generator.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};

use super::OpCode;
use super::head::{self, MAX_CONTROL_PAYLOAD, MAX_HEAD, MAX_UNMASKED_HEAD};
use super::mask;

/// Encodes one unfragmented (FIN set), unmasked frame: header and payload in one contiguous
/// allocation of exactly the frame's size.
///
/// Server frames carry no mask (RFC 6455 §5.1), so the result is the same bytes for every
/// recipient: encode once, then clone the `Bytes` (a reference-count increment) into each
/// socket's queue.
///
/// Control opcodes are limited to 125 bytes of payload (§5.5); a longer control payload is
/// truncated to keep the frame valid. Use [`super::encode_close`] for Close frames, which also
/// writes the status code.
pub fn encode_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let payload = control_sized(opcode, payload);
    let mut header = [0u8; MAX_HEAD];
    let n = head::write(&mut header, opcode.bits(), None, payload.len());
    let mut frame = Vec::with_capacity(n + payload.len());
    frame.extend_from_slice(&header[..n]);
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

/// Encodes a text frame. The caller guarantees `payload` is UTF-8 (typically serialized JSON);
/// the encoder does not check.
pub fn encode_text(payload: &[u8]) -> Bytes {
    encode_frame(OpCode::Text, payload)
}

/// Encodes a binary frame.
pub fn encode_binary(payload: &[u8]) -> Bytes {
    encode_frame(OpCode::Binary, payload)
}

/// Encodes a Ping frame (payload truncated to 125 bytes).
pub fn encode_ping(payload: &[u8]) -> Bytes {
    encode_frame(OpCode::Ping, payload)
}

/// Encodes a Pong frame, normally echoing the payload of the Ping it answers (§5.5.3).
pub fn encode_pong(payload: &[u8]) -> Bytes {
    encode_frame(OpCode::Pong, payload)
}

/// Encodes one unfragmented frame as a client sends it: masked with `mask` (§5.3). For tests
/// and the load generator; a real client must pick a fresh random mask for every frame.
pub fn encode_client_frame(opcode: OpCode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let payload = control_sized(opcode, payload);
    let mut header = [0u8; MAX_HEAD];
    let n = head::write(&mut header, opcode.bits(), Some(mask), payload.len());
    let mut frame = Vec::with_capacity(n + payload.len());
    frame.extend_from_slice(&header[..n]);
    frame.extend_from_slice(payload);
    mask::apply(&mut frame[n..], mask, 0);
    frame
}

/// Keeps a control payload within the 125 bytes §5.5 allows.
fn control_sized(opcode: OpCode, payload: &[u8]) -> &[u8] {
    if opcode.is_control() {
        payload.get(..MAX_CONTROL_PAYLOAD).unwrap_or(payload)
    } else {
        payload
    }
}

/// Builds one unmasked frame whose payload is written in place, so a serializer can write a
/// publication straight into its wire frame with no copy afterwards:
///
/// ```
/// # use herald_protocol::ws::{FrameBuilder, OpCode, encode_text};
/// use std::io::Write as _;
/// let mut frame = FrameBuilder::with_capacity(OpCode::Text, 64);
/// write!(frame, r#"{{"event":"ping"}}"#).unwrap();
/// assert_eq!(frame.finish(), encode_text(br#"{"event":"ping"}"#));
/// ```
///
/// The header's size depends on the payload's length, which is unknown until the payload is
/// written, so the builder reserves room for the longest unmasked header up front and
/// [`finish`](Self::finish) writes the header right before the payload, skipping the unused
/// bytes. At most 8 bytes of the allocation go unused.
#[derive(Debug)]
pub struct FrameBuilder {
    /// The frame: `MAX_UNMASKED_HEAD` placeholder bytes, then the payload written so far.
    buf: BytesMut,
    /// The frame's opcode, written into the header by `finish`.
    opcode: OpCode,
}

impl FrameBuilder {
    /// Starts a frame with no payload capacity reserved.
    pub fn new(opcode: OpCode) -> Self {
        Self::with_capacity(opcode, 0)
    }

    /// Starts a frame with room for `payload_capacity` payload bytes before it reallocates.
    pub fn with_capacity(opcode: OpCode, payload_capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(MAX_UNMASKED_HEAD.saturating_add(payload_capacity));
        buf.put_bytes(0, MAX_UNMASKED_HEAD);
        Self { buf, opcode }
    }

    /// Appends payload bytes.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The number of payload bytes written so far.
    pub fn payload_len(&self) -> usize {
        self.buf.len() - MAX_UNMASKED_HEAD
    }

    /// Writes the header (FIN set) and returns the complete frame.
    ///
    /// A control frame's payload beyond 125 bytes is dropped, as in [`encode_frame`].
    pub fn finish(mut self) -> Bytes {
        if self.opcode.is_control() {
            self.buf.truncate(MAX_UNMASKED_HEAD + MAX_CONTROL_PAYLOAD);
        }
        let mut header = [0u8; MAX_HEAD];
        let n = head::write(&mut header, self.opcode.bits(), None, self.payload_len());
        let start = MAX_UNMASKED_HEAD - n;
        self.buf[start..MAX_UNMASKED_HEAD].copy_from_slice(&header[..n]);
        self.buf.advance(start);
        self.buf.freeze()
    }
}

impl std::io::Write for FrameBuilder {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
