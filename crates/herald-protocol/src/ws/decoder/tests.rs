//! Byte-level cases for every rule the decoder enforces, each checked when fed all at once,
//! one byte at a time, and in random chunks.

use bytes::{Bytes, BytesMut};

use super::{Decoder, DecoderConfig};
use crate::ws::{CloseFrame, Message, OpCode, WsError, encode_binary, encode_client_frame, encode_frame, encode_text};

const KEY: [u8; 4] = [0x9a, 0x01, 0xfe, 0x37];

/// Small limits so size cases stay small.
const SMALL: DecoderConfig = DecoderConfig { max_message_size: 700, max_frame_size: 512 };

type Outcome = Vec<Result<Message, WsError>>;

/// A masked, final client frame.
fn frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    encode_client_frame(opcode, payload, KEY)
}

/// A masked client frame with FIN clear.
fn fragment(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut f = frame(opcode, payload);
    f[0] &= !0x80;
    f
}

/// A masked frame whose first byte is exactly `first` (any bits, any opcode, even reserved).
fn raw(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = encode_client_frame(OpCode::Binary, payload, KEY);
    f[0] = first;
    f
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn text(s: &str) -> Result<Message, WsError> {
    Ok(Message::Text(Bytes::copy_from_slice(s.as_bytes())))
}

fn binary(b: &[u8]) -> Result<Message, WsError> {
    Ok(Message::Binary(Bytes::copy_from_slice(b)))
}

fn close(code: u16, reason: &str) -> Result<Message, WsError> {
    Ok(Message::Close(Some(CloseFrame { code, reason: reason.to_owned() })))
}

fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason].concat()
}

/// Feeds the chunks in order, decoding everything available after each, until an error.
fn run<'a>(mut decoder: Decoder, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(message)) => out.push(Ok(message)),
                Ok(None) => break,
                Err(err) => {
                    out.push(Err(err));
                    return out;
                }
            }
        }
    }
    out
}

/// A tiny xorshift generator: deterministic, no dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Splits `input` at random points: mostly tiny chunks, now and then a large one.
fn random_chunks(input: &[u8], seed: u64) -> Vec<&[u8]> {
    let mut state = seed | 1;
    let mut chunks = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let r = next(&mut state);
        let size = if r.is_multiple_of(5) { (r >> 8) as usize % 300 + 1 } else { (r >> 8) as usize % 7 + 1 };
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// Checks that `input` decodes to `expect` however it is split into reads.
fn check_with(config: DecoderConfig, name: &str, input: &[u8], expect: &Outcome) {
    let whole = run(Decoder::new(config), [input]);
    assert_eq!(&whole, expect, "{name}: all at once");
    let bytewise = run(Decoder::new(config), input.chunks(1));
    assert_eq!(&bytewise, expect, "{name}: byte at a time");
    for seed in 1..=20 {
        let chunked = run(Decoder::new(config), random_chunks(input, seed));
        assert_eq!(&chunked, expect, "{name}: random chunks, seed {seed}");
    }
}

fn check(name: &str, input: &[u8], expect: Outcome) {
    check_with(SMALL, name, input, &expect);
}

#[test]
fn well_formed_frames() {
    check("text", &frame(OpCode::Text, b"Hello"), vec![text("Hello")]);
    check("empty text", &frame(OpCode::Text, b""), vec![text("")]);
    check("binary", &frame(OpCode::Binary, &[0, 255, 7]), vec![binary(&[0, 255, 7])]);
    check(
        "ping and pong",
        &cat(&[frame(OpCode::Ping, b"hi"), frame(OpCode::Pong, b"")]),
        vec![Ok(Message::Ping(Bytes::from_static(b"hi"))), Ok(Message::Pong(Bytes::new()))],
    );
    check(
        "several frames in one read",
        &cat(&[frame(OpCode::Text, b"a"), frame(OpCode::Binary, b"b"), frame(OpCode::Text, b"c")]),
        vec![text("a"), binary(b"b"), text("c")],
    );
    check("125-byte ping", &frame(OpCode::Ping, &[7; 125]), vec![Ok(Message::Ping(Bytes::from(vec![7; 125])))]);
    check("truncated frame yields nothing yet", &frame(OpCode::Text, b"Hello")[..8], vec![]);
}

#[test]
fn masking_is_required_from_clients() {
    check("unmasked text", &encode_text(b"Hello"), vec![Err(WsError::Unmasked)]);
    check("unmasked ping", &encode_frame(OpCode::Ping, b""), vec![Err(WsError::Unmasked)]);
    check(
        "good frame then unmasked",
        &cat(&[frame(OpCode::Text, b"ok"), encode_binary(b"x").to_vec()]),
        vec![text("ok"), Err(WsError::Unmasked)],
    );
}

#[test]
fn reserved_bits_without_extension_fail() {
    for rsv in [0x40, 0x20, 0x10, 0x70] {
        check(&format!("rsv {rsv:#x}"), &raw(0x81 | rsv, b"x"), vec![Err(WsError::ReservedBits)]);
    }
}

#[test]
fn reserved_opcodes_fail() {
    for op in (3..=7).chain(0xB..=0xF) {
        check(&format!("opcode {op:#x}"), &raw(0x80 | op, b""), vec![Err(WsError::ReservedOpcode)]);
    }
}

#[test]
fn control_frames_are_short_and_whole() {
    for op in [0x8, 0x9, 0xA] {
        check(&format!("opcode {op:#x} without FIN"), &raw(op, b""), vec![Err(WsError::FragmentedControl)]);
        // Only the header is needed to see the length is too long.
        let long = raw(0x80 | op, &[0; 126]);
        check(&format!("opcode {op:#x} 126 bytes"), &long, vec![Err(WsError::ControlTooLong)]);
        check(&format!("opcode {op:#x} 126 bytes, header only"), &long[..2], vec![Err(WsError::ControlTooLong)]);
    }
}

#[test]
fn continuation_rules() {
    check("continuation first", &frame(OpCode::Continuation, b"x"), vec![Err(WsError::UnexpectedContinuation)]);
    check(
        "continuation after a finished message",
        &cat(&[frame(OpCode::Text, b"a"), frame(OpCode::Continuation, b"b")]),
        vec![text("a"), Err(WsError::UnexpectedContinuation)],
    );
    for (first, second) in [
        (OpCode::Text, OpCode::Text),
        (OpCode::Text, OpCode::Binary),
        (OpCode::Binary, OpCode::Text),
        (OpCode::Binary, OpCode::Binary),
    ] {
        check(
            &format!("{first:?} fragment then {second:?}"),
            &cat(&[fragment(first, b"a"), frame(second, b"b")]),
            vec![Err(WsError::ExpectedContinuation)],
        );
    }
}

#[test]
fn fragments_are_joined_around_interleaved_control_frames() {
    check(
        "text in three fragments with ping and pong between",
        &cat(&[
            fragment(OpCode::Text, b"Hel"),
            frame(OpCode::Ping, b"p"),
            fragment(OpCode::Continuation, b"lo"),
            frame(OpCode::Pong, b"q"),
            frame(OpCode::Continuation, b"!"),
        ]),
        vec![Ok(Message::Ping(Bytes::from_static(b"p"))), Ok(Message::Pong(Bytes::from_static(b"q"))), text("Hello!")],
    );
    check(
        "binary with empty fragments",
        &cat(&[
            fragment(OpCode::Binary, b""),
            fragment(OpCode::Continuation, b"ab"),
            fragment(OpCode::Continuation, b""),
            frame(OpCode::Continuation, b""),
        ]),
        vec![binary(b"ab")],
    );
    check(
        "close inside a fragmented message ends it",
        &cat(&[fragment(OpCode::Text, b"Hel"), frame(OpCode::Close, &close_payload(1000, b""))]),
        vec![close(1000, "")],
    );
}

#[test]
fn text_is_validated_across_fragments() {
    let word = "κόσμε".as_bytes();
    for cut in 0..=word.len() {
        check(
            &format!("valid text split at {cut}"),
            &cat(&[fragment(OpCode::Text, &word[..cut]), frame(OpCode::Continuation, &word[cut..])]),
            vec![text("κόσμε")],
        );
    }
    check("invalid in one frame", &frame(OpCode::Text, b"ab\xffcd"), vec![Err(WsError::InvalidUtf8)]);
    check("ends inside a code point", &frame(OpCode::Text, b"ab\xce"), vec![Err(WsError::InvalidUtf8)]);
    check(
        "surrogate split across fragments",
        &cat(&[fragment(OpCode::Text, b"a\xed"), frame(OpCode::Continuation, b"\xa0\x80")]),
        vec![Err(WsError::InvalidUtf8)],
    );
    check(
        "message ends inside a code point",
        &cat(&[fragment(OpCode::Text, b"a"), frame(OpCode::Continuation, b"\xf0\x90\x80")]),
        vec![Err(WsError::InvalidUtf8)],
    );
    // Binary messages are not text: the same bytes are fine.
    check("binary is not validated", &frame(OpCode::Binary, b"\xff"), vec![binary(b"\xff")]);
}

#[test]
fn invalid_text_fails_before_the_message_or_frame_ends() {
    check(
        "invalid fragment, final fragment never sent",
        &cat(&[fragment(OpCode::Text, b"ok"), fragment(OpCode::Continuation, b"\xc0\xaf")]),
        vec![Err(WsError::InvalidUtf8)],
    );
    // Autobahn 6.4.3: one frame whose invalid part arrives before the rest of its payload.
    let whole = frame(OpCode::Text, "κόσμε\u{FFFD}\u{FFFD}\u{FFFD}edited".as_bytes());
    // Header (2) + key (4) + "κόσμε", then the first U+FFFD (EF BF BD).
    let at = 6 + "κόσμε".len();
    let mut poisoned = whole.clone();
    // Flipping bits of a masked byte flips the same bits of the unmasked one: EF becomes ED,
    // and ED BF is a surrogate, certain to be invalid at the BF.
    poisoned[at] ^= 0xED ^ 0xEF;
    check("invalid prefix of one frame", &poisoned[..at + 2], vec![Err(WsError::InvalidUtf8)]);
    check("valid prefix of one frame", &whole[..at + 2], vec![]);
}

#[test]
fn close_payloads() {
    check("empty close", &frame(OpCode::Close, b""), vec![Ok(Message::Close(None))]);
    check("one-byte close", &frame(OpCode::Close, b"\x03"), vec![Err(WsError::BadClosePayload)]);
    check(
        "code and reason",
        &frame(OpCode::Close, &close_payload(1001, "bye ✓".as_bytes())),
        vec![close(1001, "bye ✓")],
    );
    for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
        check(&format!("code {code}"), &frame(OpCode::Close, &close_payload(code, b"")), vec![close(code, "")]);
    }
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
        check(
            &format!("code {code}"),
            &frame(OpCode::Close, &close_payload(code, b"")),
            vec![Err(WsError::BadClosePayload)],
        );
    }
    check(
        "reason not UTF-8",
        &frame(OpCode::Close, &close_payload(1000, b"\xce\xba\xed\xa0\x80")),
        vec![Err(WsError::InvalidCloseReason)],
    );
}

#[test]
fn nothing_after_close_is_decoded() {
    check(
        "ping and garbage after close",
        &cat(&[frame(OpCode::Close, b""), frame(OpCode::Ping, b"x"), vec![0xff; 9]]),
        vec![Ok(Message::Close(None))],
    );
}

#[test]
fn lengths() {
    // 64-bit length with the top bit set: rejected before the masking key arrives.
    let mut huge = vec![0x82, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
    check("64-bit length, top bit set", &huge, vec![Err(WsError::LengthOverflow)]);
    huge[2] = 0;
    huge[3] = 1;
    check("1 TiB frame, header only", &huge, vec![Err(WsError::MessageTooBig)]);
    let over_frame = frame(OpCode::Binary, &[1; 513]);
    check("frame over max_frame_size, header only", &over_frame[..4], vec![Err(WsError::MessageTooBig)]);
    check("frame at max_frame_size", &frame(OpCode::Binary, &[1; 512]), vec![binary(&[1; 512])]);
    check(
        "message over max_message_size, second header",
        &cat(&[fragment(OpCode::Binary, &[1; 400]), frame(OpCode::Continuation, &[2; 301])[..4].to_vec()]),
        vec![Err(WsError::MessageTooBig)],
    );
    check(
        "message at max_message_size",
        &cat(&[fragment(OpCode::Binary, &[1; 400]), frame(OpCode::Continuation, &[1; 300])]),
        vec![binary(&[1; 700])],
    );
    // Non-minimal length encodings are tolerated (see the module docs).
    let mut padded = vec![0x81, 0x80 | 126, 0, 5];
    padded.extend_from_slice(&KEY);
    padded.extend_from_slice(&frame(OpCode::Text, b"Hello")[6..]);
    check("5 bytes in the 16-bit form", &padded, vec![text("Hello")]);
}

#[test]
fn header_length_boundaries_round_trip_in_both_roles() {
    let big = DecoderConfig { max_message_size: 1 << 17, max_frame_size: 1 << 17 };
    for len in [0, 125, 126, 127, 65535, 65536] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let client_frame = encode_client_frame(OpCode::Binary, &payload, KEY);
        check_with(big, &format!("client frame {len}"), &client_frame, &vec![binary(&payload)]);
        let server_frame = encode_binary(&payload);
        let decoded = run(Decoder::new_client(big), [&server_frame[..]]);
        assert_eq!(decoded, vec![binary(&payload)], "server frame {len}");
    }
}

#[test]
fn client_role_rejects_masked_frames() {
    let decoded = run(Decoder::new_client(SMALL), [&frame(OpCode::Text, b"x")[..]]);
    assert_eq!(decoded, vec![Err(WsError::Masked)]);
    let decoded = run(Decoder::new_client(SMALL), [&encode_text(b"x")[..]]);
    assert_eq!(decoded, vec![text("x")]);
}

#[test]
fn errors_are_sticky() {
    let mut decoder = Decoder::new(SMALL);
    let mut buf = BytesMut::from(&raw(0xC1, b"x")[..]);
    assert_eq!(decoder.decode(&mut buf), Err(WsError::ReservedBits));
    buf.extend_from_slice(&frame(OpCode::Text, b"fine"));
    assert_eq!(decoder.decode(&mut buf), Err(WsError::ReservedBits));
}

#[test]
fn after_close_the_buffer_is_drained() {
    let mut decoder = Decoder::new(SMALL);
    let mut buf = BytesMut::from(&cat(&[frame(OpCode::Close, b""), frame(OpCode::Text, b"late")])[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Message::Close(None))));
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn unfragmented_payload_is_not_copied() {
    let mut decoder = Decoder::new(SMALL);
    let mut buf = BytesMut::from(&frame(OpCode::Text, b"zero copy please")[..]);
    let range = buf.as_ptr_range();
    let Ok(Some(Message::Text(payload))) = decoder.decode(&mut buf) else {
        panic!("expected a text message");
    };
    assert_eq!(&payload[..], b"zero copy please");
    assert!(range.contains(&payload.as_ptr()), "payload was copied out of the read buffer");
}

#[test]
fn idle_decoder_is_small_and_owns_nothing() {
    assert!(size_of::<Decoder>() <= 128, "Decoder is {} bytes", size_of::<Decoder>());
    let mut decoder = Decoder::new(SMALL);
    let input = cat(&[fragment(OpCode::Text, b"ab"), frame(OpCode::Continuation, b"cd")]);
    // The whole header of the first fragment and one byte of its payload.
    let mut buf = BytesMut::from(&input[..7]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    buf.extend_from_slice(&input[7..]);
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Message::Text(Bytes::from_static(b"abcd")))));
    assert!(buf.is_empty());
}

#[test]
fn random_message_streams_decode_the_same_however_they_are_split() {
    let mut state = 0x2545_F491_4F6C_DD1D;
    for round in 0..300 {
        let mut input = Vec::new();
        let mut expect = Vec::new();
        for _ in 0..(next(&mut state) % 6) {
            let len = (next(&mut state) % 200) as usize;
            let payload: Vec<u8> = (0..len).map(|_| b'a' + (next(&mut state) % 26) as u8).collect();
            let key = next(&mut state).to_le_bytes();
            let key = [key[0], key[1], key[2], key[3]];
            match next(&mut state) % 4 {
                0 => {
                    input.extend(encode_client_frame(OpCode::Binary, &payload, key));
                    expect.push(binary(&payload));
                }
                1 => {
                    input.extend(encode_client_frame(OpCode::Ping, &payload[..len.min(125)], key));
                    expect.push(Ok(Message::Ping(Bytes::copy_from_slice(&payload[..len.min(125)]))));
                }
                _ => {
                    let cut = len / 2;
                    input.extend(fragment(OpCode::Text, &payload[..cut]));
                    input.extend(encode_client_frame(OpCode::Pong, b"", key));
                    input.extend(encode_client_frame(OpCode::Continuation, &payload[cut..], key));
                    expect.push(Ok(Message::Pong(Bytes::new())));
                    expect.push(Ok(Message::Text(Bytes::from(payload))));
                }
            }
        }
        check_with(SMALL, &format!("round {round}"), &input, &expect);
    }
}
