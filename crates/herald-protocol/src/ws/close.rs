//! Close frames (RFC 6455 §5.5.1, §7.4): which status codes may travel on the wire, how a
//! received Close payload is read, and how ours are written.

use bytes::Bytes;

use super::encode::encode_frame;
use super::head::MAX_CONTROL_PAYLOAD;
use super::{CloseFrame, OpCode, WsError};

/// Bytes of a Close payload left for the reason once the 2-byte status code is written.
const MAX_REASON: usize = MAX_CONTROL_PAYLOAD - 2;

/// Whether `code` may appear in a Close frame (RFC 6455 §7.4.1, §7.4.2 and the IANA registry).
///
/// Accepted: 1000–1003 and 1007–1014 (defined or registered), 3000–4999 (libraries and
/// applications; Pusher uses 4000–4299). Rejected: below 1000; 1004 (reserved); 1005, 1006
/// and 1015 (reserved for reporting, never sent); 1016–2999 (unassigned or reserved for future
/// revisions); 5000 and up.
pub const fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Reads the payload of a received Close frame.
///
/// # Errors
///
/// [`WsError::BadClosePayload`] for a one-byte payload or a status code that
/// [`is_valid_close_code`] rejects; [`WsError::InvalidCloseReason`] if the reason is not UTF-8.
pub(super) fn parse(payload: &[u8]) -> Result<Option<CloseFrame>, WsError> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return if payload.is_empty() { Ok(None) } else { Err(WsError::BadClosePayload) };
    };
    let code = u16::from_be_bytes(*code);
    if !is_valid_close_code(code) {
        return Err(WsError::BadClosePayload);
    }
    let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidCloseReason)?;
    Ok(Some(CloseFrame { code, reason: reason.to_owned() }))
}

/// Encodes a Close frame with `code` and `reason`. A reason longer than the 123 bytes a control
/// frame leaves room for is cut at the last character boundary that fits, so the frame stays
/// valid UTF-8.
///
/// The code is written as given; it is up to the caller not to send one that
/// [`is_valid_close_code`] rejects (a peer would fail the connection on it).
pub fn encode_close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + reason.len()].copy_from_slice(reason);
    encode_frame(OpCode::Close, &payload[..2 + reason.len()])
}

/// Encodes the Close frame that answers a peer's Close (RFC 6455 §5.5.1): it echoes the
/// peer's status code, or carries no payload if the peer sent none.
pub fn encode_close_reply(received: Option<&CloseFrame>) -> Bytes {
    match received {
        Some(frame) => encode_close(frame.code, ""),
        None => encode_frame(OpCode::Close, &[]),
    }
}
