//! Encoding whole frames: unmasked server frames shared by every recipient, and masked client
//! frames for tests and the load generator.

use bytes::Bytes;

use super::OpCode;
use super::head::{self, MAX_CONTROL_PAYLOAD, MAX_HEAD};
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
    if opcode.is_control() { payload.get(..MAX_CONTROL_PAYLOAD).unwrap_or(payload) } else { payload }
}
