//! Encoder, handshake and close-code tests. Decoder cases are in `decoder/tests.rs`.

use super::*;

#[test]
fn accept_key_matches_rfc_6455_example() {
    assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#[test]
fn server_header_uses_minimal_length_encoding() {
    let cases: [(usize, &[u8]); 6] = [
        (0, &[0x82, 0]),
        (125, &[0x82, 125]),
        (126, &[0x82, 126, 0x00, 0x7E]),
        (65535, &[0x82, 126, 0xFF, 0xFF]),
        (65536, &[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        (70000, &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]),
    ];
    for (len, header) in cases {
        let payload = vec![0xA5; len];
        let frame = encode_binary(&payload);
        assert_eq!(&frame[..header.len()], header, "len {len}");
        assert_eq!(&frame[header.len()..], &payload[..], "len {len}");
    }
}

#[test]
fn client_header_sets_mask_bit_and_key_and_masks_the_payload() {
    let key = [1, 2, 3, 4];
    let cases: [(usize, &[u8]); 4] = [
        (125, &[0x81, 0x80 | 125]),
        (126, &[0x81, 0x80 | 126, 0x00, 0x7E]),
        (65535, &[0x81, 0x80 | 126, 0xFF, 0xFF]),
        (65536, &[0x81, 0x80 | 127, 0, 0, 0, 0, 0, 1, 0, 0]),
    ];
    for (len, header) in cases {
        let frame = encode_client_frame(OpCode::Text, &vec![b'x'; len], key);
        assert_eq!(&frame[..header.len()], header, "len {len}");
        assert_eq!(&frame[header.len()..header.len() + 4], &key, "len {len}");
        let body = &frame[header.len() + 4..];
        assert_eq!(body.len(), len);
        assert!(body.iter().enumerate().all(|(i, b)| b ^ key[i % 4] == b'x'), "len {len}");
    }
}

#[test]
fn helpers_set_their_opcode_and_fin() {
    assert_eq!(&encode_text(b"hi")[..], b"\x81\x02hi");
    assert_eq!(&encode_binary(b"hi")[..], b"\x82\x02hi");
    assert_eq!(&encode_ping(b"hi")[..], b"\x89\x02hi");
    assert_eq!(&encode_pong(b"hi")[..], b"\x8A\x02hi");
    assert_eq!(&encode_frame(OpCode::Close, b"")[..], b"\x88\x00");
}

#[test]
fn control_payloads_are_capped_at_125_bytes() {
    let frame = encode_ping(&[0; 300]);
    assert_eq!(frame[1], 125);
    assert_eq!(frame.len(), 127);
}

#[test]
fn close_frame_carries_code_and_reason() {
    assert_eq!(&encode_close(1000, "bye")[..], b"\x88\x05\x03\xe8bye");
    assert_eq!(&encode_close(4200, "")[..], b"\x88\x02\x10\x68");
}

#[test]
fn close_reason_is_cut_on_a_char_boundary() {
    let ascii = "a".repeat(200);
    let frame = encode_close(1001, &ascii);
    assert_eq!(frame[1], 125);
    assert_eq!(&frame[4..], &ascii.as_bytes()[..123]);

    // 'é' is two bytes: 61 of them fill 122 bytes, and half of the 62nd would not fit.
    let accents = "é".repeat(100);
    let frame = encode_close(1001, &accents);
    assert_eq!(frame[1], 124);
    let reason = std::str::from_utf8(&frame[4..]).expect("reason stays UTF-8");
    assert_eq!(reason, "é".repeat(61));

    // Exactly 123 bytes is kept whole.
    let fits = "z".repeat(123);
    assert_eq!(&encode_close(1000, &fits)[4..], fits.as_bytes());
}

#[test]
fn close_reply_echoes_the_code_or_nothing() {
    let received = CloseFrame { code: 1001, reason: "going away".to_owned() };
    assert_eq!(&encode_close_reply(Some(&received))[..], b"\x88\x02\x03\xe9");
    assert_eq!(&encode_close_reply(None)[..], b"\x88\x00");
}

#[test]
fn close_code_validity() {
    let valid = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4000, 4999];
    let invalid = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];
    assert!(valid.iter().all(|&c| is_valid_close_code(c)));
    assert!(invalid.iter().all(|&c| !is_valid_close_code(c)));
}

#[test]
fn error_close_codes() {
    assert_eq!(WsError::InvalidUtf8.close_code(), 1007);
    assert_eq!(WsError::InvalidCloseReason.close_code(), 1007);
    assert_eq!(WsError::MessageTooBig.close_code(), 1009);
    for protocol in [
        WsError::Unmasked,
        WsError::Masked,
        WsError::ReservedBits,
        WsError::ReservedOpcode,
        WsError::FragmentedControl,
        WsError::ControlTooLong,
        WsError::UnexpectedContinuation,
        WsError::ExpectedContinuation,
        WsError::LengthOverflow,
        WsError::BadClosePayload,
    ] {
        assert_eq!(protocol.close_code(), 1002, "{protocol:?}");
    }
}

#[test]
fn opcode_bits_round_trip_and_reserved_values_have_none() {
    for bits in 0..16u8 {
        match OpCode::from_bits(bits) {
            Some(op) => {
                assert_eq!(op.bits(), bits);
                assert_eq!(op.is_control(), bits >= 8);
            }
            None => assert!(matches!(bits, 3..=7 | 0xB..=0xF), "{bits:#x}"),
        }
    }
}
