//! Fuzzes the RFC 6455 frame decoder (`herald_protocol::ws::Decoder`) the way a socket feeds it:
//! the same byte stream delivered in arbitrary reads. The decoder promises that splitting
//! changes nothing (same messages, same first error), so the oracle decodes the stream once in
//! one piece and once split, and compares. It also checks what every delivered message
//! guarantees: text is UTF-8, control payloads fit in 125 bytes, close codes are valid.
//!
//! Input layout: byte 0 = flags (bit 0: client role, bits 1-2: size limit), byte 1 = number of
//! read sizes N, then N bytes of read sizes (0 means 1), then the stream.
#![no_main]

use bytes::BytesMut;
use herald_protocol::ws::{Decoder, DecoderConfig, Message, WsError, is_valid_close_code};
use libfuzzer_sys::fuzz_target;

const LIMITS: [usize; 4] = [125, 1000, 65_536, 1 << 20];

/// What a decoding run produced: messages in order, then the error that ended it, if any.
type Outcome = (Vec<Message>, Option<WsError>);

fn decoder(client: bool, limit: usize) -> Decoder {
    let config = DecoderConfig { max_message_size: limit, max_frame_size: limit };
    if client { Decoder::new_client(config) } else { Decoder::new(config) }
}

/// Calls `decode` until it wants more bytes, collecting messages into `out`.
fn drain(dec: &mut Decoder, buf: &mut BytesMut, out: &mut Outcome) -> bool {
    loop {
        match dec.decode(buf) {
            Ok(Some(m)) => {
                check(&m);
                out.0.push(m);
            }
            Ok(None) => return true,
            Err(e) => {
                // A failed decoder keeps failing with the same error.
                assert_eq!(dec.decode(buf), Err(e));
                out.1 = Some(e);
                return false;
            }
        }
    }
}

fn check(m: &Message) {
    match m {
        Message::Text(t) => assert!(std::str::from_utf8(t).is_ok(), "Text message is not UTF-8"),
        Message::Ping(p) | Message::Pong(p) => assert!(p.len() <= 125),
        Message::Close(Some(c)) => {
            assert!(is_valid_close_code(c.code), "close code {} delivered", c.code);
            assert!(c.reason.len() <= 123);
        }
        Message::Binary(_) | Message::Close(None) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, n, rest @ ..] = data else { return };
    let n = usize::from(*n).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let client = flags & 1 != 0;
    let limit = LIMITS[usize::from((flags >> 1) & 3)];

    let mut whole: Outcome = (Vec::new(), None);
    let mut dec = decoder(client, limit);
    let mut buf = BytesMut::from(stream);
    drain(&mut dec, &mut buf, &mut whole);

    let mut split: Outcome = (Vec::new(), None);
    let mut dec = decoder(client, limit);
    let mut buf = BytesMut::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < stream.len() {
        let size = sizes.get(i).map_or(stream.len() - pos, |&s| usize::from(s).max(1));
        let end = (pos + size).min(stream.len());
        buf.extend_from_slice(&stream[pos..end]);
        pos = end;
        i += 1;
        if !drain(&mut dec, &mut buf, &mut split) {
            break;
        }
    }
    assert_eq!(whole, split, "splitting the stream into reads changed what was decoded");
});
