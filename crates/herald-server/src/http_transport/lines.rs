//! The line framing of pusher-js's HTTP transports, and the bodies of `xhr_send`.
//!
//! A receive response is a sequence of lines: `o` (the session is open), `a[…]` (a JSON array
//! of messages, each a JSON string holding one Pusher message), `h` (heartbeat) and
//! `c[code,"reason"]` (the session is closed). The outbox holds complete WebSocket frames
//! (the hub encodes a publication once for all its subscribers); their payloads are sliced out
//! without copying and escaped into `a` lines here.

use bytes::{BufMut, Bytes, BytesMut};

/// The line that opens a session.
pub(crate) const OPEN: &[u8] = b"o\n";
/// The heartbeat line.
pub(crate) const HEARTBEAT: &[u8] = b"h\n";

/// The opcode and payload of an unmasked server frame, or `None` if it is not one.
pub(crate) fn frame_payload(frame: &Bytes) -> Option<(u8, Bytes)> {
    let b0 = *frame.first()?;
    let b1 = *frame.get(1)?;
    if b1 & 0x80 != 0 {
        return None;
    }
    let (start, len): (usize, usize) = match b1 & 0x7f {
        126 => (4, usize::from(u16::from_be_bytes([*frame.get(2)?, *frame.get(3)?]))),
        127 => {
            let raw: [u8; 8] = frame.get(2..10)?.try_into().ok()?;
            (10, usize::try_from(u64::from_be_bytes(raw)).ok()?)
        }
        n => (2, usize::from(n)),
    };
    let end = start.checked_add(len)?;
    (end <= frame.len()).then(|| (b0 & 0x0f, frame.slice(start..end)))
}

/// Appends one `a[…]` line carrying the text frames of `frames` (other frames are the
/// WebSocket's own business and are skipped). Appends nothing when none is text.
pub(crate) fn push_messages<'a>(out: &mut BytesMut, frames: impl IntoIterator<Item = &'a Bytes>) {
    let mut first = true;
    for frame in frames {
        let Some((1, payload)) = frame_payload(frame) else { continue };
        let Ok(text) = std::str::from_utf8(&payload) else { continue };
        out.put_slice(if first { b"a[" } else { b"," });
        first = false;
        push_json_string(out, text);
    }
    if !first {
        out.put_slice(b"]\n");
    }
}

/// Appends the `c[code,"reason"]` line of a WebSocket close frame (1000 when it has no code).
pub(crate) fn push_close(out: &mut BytesMut, close_frame: &Bytes) {
    let (code, reason) = match frame_payload(close_frame) {
        Some((8, p)) if p.len() >= 2 => {
            (u16::from_be_bytes([p[0], p[1]]), String::from_utf8_lossy(&p[2..]).into_owned())
        }
        _ => (1000, String::new()),
    };
    out.put_slice(format!("c[{code},").as_bytes());
    push_json_string(out, &reason);
    out.put_slice(b"]\n");
}

fn push_json_string(out: &mut BytesMut, text: &str) {
    // Serialising a string into a Vec cannot fail.
    let escaped = serde_json::to_vec(text).unwrap_or_default();
    out.put_slice(&escaped);
}

/// Why an `xhr_send` body was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendError {
    /// Not a JSON array of strings.
    Malformed,
    /// One message is over the app's `max_message_bytes`.
    TooLarge,
}

/// Parses an `xhr_send` body: a JSON array of messages, each a string (`[]` is a heartbeat).
pub(crate) fn parse_send(body: &[u8], max_message: usize) -> Result<Vec<Bytes>, SendError> {
    let messages: Vec<String> = serde_json::from_slice(body).map_err(|_| SendError::Malformed)?;
    if messages.iter().any(|m| m.len() > max_message) {
        return Err(SendError::TooLarge);
    }
    Ok(messages.into_iter().map(Bytes::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_protocol::ws;

    #[test]
    fn text_frames_become_one_line() {
        let frames = [
            ws::encode_text(br#"{"event":"e","data":"q\"\n"}"#),
            ws::encode_ping(b"x"),
            ws::encode_text("x".repeat(70_000).as_bytes()),
        ];
        let mut out = BytesMut::new();
        push_messages(&mut out, &frames);
        let line = std::str::from_utf8(&out).unwrap();
        assert!(line.starts_with("a[") && line.ends_with("]\n"));
        assert_eq!(line.matches('\n').count(), 1, "one line, newlines escaped");
        let parsed: Vec<String> = serde_json::from_str(&line[1..]).unwrap();
        assert_eq!(parsed[0], r#"{"event":"e","data":"q\"\n"}"#);
        assert_eq!(parsed[1].len(), 70_000);
        let mut none = BytesMut::new();
        push_messages(&mut none, &[ws::encode_ping(b"x")]);
        assert!(none.is_empty());
    }

    #[test]
    fn close_frames_become_c_lines() {
        let mut out = BytesMut::new();
        push_close(&mut out, &ws::encode_close(4200, "Please reconnect"));
        assert_eq!(&out[..], b"c[4200,\"Please reconnect\"]\n");
        let mut out = BytesMut::new();
        push_close(&mut out, &Bytes::from_static(b"\x88\x00"));
        assert_eq!(&out[..], b"c[1000,\"\"]\n");
    }

    #[test]
    fn send_bodies() {
        assert_eq!(parse_send(b"[]", 10).unwrap(), Vec::<Bytes>::new());
        assert_eq!(parse_send(br#"["{\"a\":1}"]"#, 10).unwrap(), vec![Bytes::from_static(br#"{"a":1}"#)]);
        assert_eq!(parse_send(br#"["0123456789a"]"#, 10), Err(SendError::TooLarge));
        for bad in [&b""[..], b"[", b"{}", b"[1]", b"[null]", b"\"x\"", b"[\"\xff\"]", b"[[]]", b"]"] {
            assert_eq!(parse_send(bad, 100), Err(SendError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn hostile_frames_and_bodies_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for n in 0..5_000usize {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let bytes: Vec<u8> = (0..(n % 40)).map(|i| (seed >> (i % 8 * 8)) as u8).collect();
            let frame = Bytes::from(bytes.clone());
            let _ = frame_payload(&frame);
            let mut out = BytesMut::new();
            push_messages(&mut out, [&frame]);
            push_close(&mut out, &frame);
            let _ = parse_send(&bytes, 16);
        }
    }
}
