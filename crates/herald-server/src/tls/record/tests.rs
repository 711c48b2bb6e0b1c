use std::io::IoSlice;

use ring::aead;

use super::*;

/// A sealer and an opener sharing keys, as the two ends of one direction.
fn pair(algorithm: &'static aead::Algorithm, seq: u64) -> (Protection, Protection) {
    let key = vec![7u8; algorithm.key_len()];
    let iv = [0x5Au8; aead::NONCE_LEN];
    let make = || Protection::from_parts(algorithm, &key, &iv, seq, u64::MAX).unwrap();
    (make(), make())
}

const ALL: [&aead::Algorithm; 3] = [&aead::AES_128_GCM, &aead::AES_256_GCM, &aead::CHACHA20_POLY1305];

fn open_one(opener: &mut Protection, record: &mut [u8]) -> Result<Vec<u8>, RecordError> {
    assert_eq!(record_len(record)?, Some(record.len()));
    match opener.open(record)? {
        Opened::Data(range) => Ok(record[range].to_vec()),
        Opened::Close => Ok(b"<close>".to_vec()),
    }
}

#[test]
fn seal_then_open_round_trips_for_each_cipher() {
    for alg in ALL {
        let (mut tx, mut rx) = pair(alg, 3);
        let mut out = Vec::new();
        tx.seal(APPLICATION_DATA, b"hello", &mut out).unwrap();
        tx.seal(APPLICATION_DATA, b"", &mut out).unwrap();
        let first = record_len(&out).unwrap().unwrap();
        assert_eq!(first, HEADER_LEN + 5 + 1 + TAG_LEN);
        assert_eq!(&out[..3], &[0x17, 3, 3]);
        let (a, b) = out.split_at_mut(first);
        assert_eq!(open_one(&mut rx, a).unwrap(), b"hello", "{alg:?}");
        assert_eq!(open_one(&mut rx, b).unwrap(), b"", "an empty record is fine");
    }
}

#[test]
fn records_out_of_order_do_not_open() {
    let (mut tx, mut rx) = pair(&aead::AES_128_GCM, 0);
    let mut first = Vec::new();
    let mut second = Vec::new();
    tx.seal(APPLICATION_DATA, b"one", &mut first).unwrap();
    tx.seal(APPLICATION_DATA, b"two", &mut second).unwrap();
    assert_eq!(open_one(&mut rx, &mut second), Err(RecordError::Authentication));
}

#[test]
fn vectored_sealing_packs_slices_into_full_records() {
    let (mut tx, mut rx) = pair(&aead::CHACHA20_POLY1305, 0);
    let small = [b"ab".as_slice(), b"cde", b"", b"f"];
    let slices: Vec<IoSlice<'_>> = small.iter().map(|s| IoSlice::new(s)).collect();
    let mut out = Vec::new();
    assert_eq!(tx.seal_vectored(&slices, 1, &mut out).unwrap(), 5);
    assert_eq!(open_one(&mut rx, &mut out).unwrap(), b"bcdef");
    assert_eq!(tx.seal_vectored(&slices, 6, &mut Vec::new()).unwrap(), 0, "nothing past skip");

    let big = vec![9u8; 40_000];
    let slices = [IoSlice::new(b"x"), IoSlice::new(&big)];
    let mut out = Vec::new();
    let mut taken = 0;
    while taken < 40_001 {
        taken += tx.seal_vectored(&slices, taken, &mut out).unwrap();
    }
    let mut plain = Vec::new();
    let mut rest = &mut out[..];
    let mut records = 0;
    while !rest.is_empty() {
        let len = record_len(rest).unwrap().unwrap();
        let (rec, tail) = rest.split_at_mut(len);
        let got = open_one(&mut rx, rec).unwrap();
        assert!(got.len() <= MAX_PLAINTEXT);
        plain.extend(got);
        rest = tail;
        records += 1;
    }
    assert_eq!(records, 3);
    assert_eq!(plain.len(), 40_001);
    assert_eq!(plain[0], b'x');
    assert!(plain[1..].iter().all(|&b| b == 9));
}

#[test]
fn zero_padding_is_stripped() {
    let (mut tx, mut rx) = pair(&aead::AES_256_GCM, 0);
    let mut out = Vec::new();
    // Content type 0 is itself padding: the inner type is the 0x17 before the zeros.
    tx.seal(0, b"hi\x17\0\0\0", &mut out).unwrap();
    assert_eq!(open_one(&mut rx, &mut out).unwrap(), b"hi");

    let mut all_padding = Vec::new();
    tx.seal(0, b"\0\0", &mut all_padding).unwrap();
    assert_eq!(open_one(&mut rx, &mut all_padding), Err(RecordError::NoContentType));
}

#[test]
fn tampering_is_rejected() {
    for (at, xor, want) in [
        (usize::MAX, 1, RecordError::Authentication), // the tag's last byte
        (HEADER_LEN, 0x80, RecordError::Authentication),
        (0, 0x01, RecordError::OuterType(0x16)),
        (1, 0x01, RecordError::Version(0x0203)),
    ] {
        let (mut tx, mut rx) = pair(&aead::AES_128_GCM, 0);
        let mut out = Vec::new();
        tx.seal(APPLICATION_DATA, b"payload", &mut out).unwrap();
        let at = if at == usize::MAX { out.len() - 1 } else { at };
        out[at] ^= xor;
        let got = record_len(&out).and_then(|_| rx.open(&mut out));
        assert_eq!(got, Err(want), "byte {at}");
    }
}

#[test]
fn a_header_length_that_disagrees_is_rejected() {
    let (mut tx, mut rx) = pair(&aead::AES_128_GCM, 0);
    let mut out = Vec::new();
    tx.seal(APPLICATION_DATA, b"payload", &mut out).unwrap();
    // One byte shorter than the record: open measures it and refuses.
    out[4] -= 1;
    assert_eq!(rx.open(&mut out), Err(RecordError::Length(out.len())));
    // The header authenticated as additional data: a consistent but altered length fails.
    let (mut tx, mut rx) = pair(&aead::AES_128_GCM, 0);
    let mut out = Vec::new();
    tx.seal(APPLICATION_DATA, b"payload", &mut out).unwrap();
    out[4] -= 1;
    out.pop();
    assert_eq!(rx.open(&mut out), Err(RecordError::Authentication));
}

#[test]
fn header_limits() {
    assert_eq!(record_len(&[0x17, 3, 3, 0]), Ok(None));
    assert_eq!(record_len(&[0x17, 3, 3, 0, 16]), Err(RecordError::Length(16)));
    assert_eq!(record_len(&[0x17, 3, 3, 0, 17]), Ok(Some(22)));
    assert_eq!(record_len(&[0x17, 3, 3, 0x41, 0x00]), Ok(Some(5 + 16_640)));
    assert_eq!(record_len(&[0x17, 3, 3, 0x41, 0x01]), Err(RecordError::Length(16_641)));
    assert_eq!(record_len(&[0x14, 3, 3, 0, 1]), Err(RecordError::OuterType(0x14)));
}

#[test]
fn too_much_plaintext_inside_is_rejected() {
    let (mut tx, mut rx) = pair(&aead::AES_128_GCM, 0);
    let mut out = Vec::new();
    // 2^14 + 1 bytes of data, then the type and a type-0 pad: the data is over the limit.
    let mut content = vec![1u8; MAX_PLAINTEXT + 1];
    content.push(APPLICATION_DATA);
    tx.seal_with(0, &mut out, content.len(), |o| o.extend_from_slice(&content)).unwrap();
    assert_eq!(rx.open(&mut out), Err(RecordError::Length(MAX_PLAINTEXT + 1)));
}

#[test]
fn alerts_and_handshake_messages() {
    let (mut tx, mut rx) = pair(&aead::CHACHA20_POLY1305, 0);
    let mut out = Vec::new();
    tx.seal(ALERT, &CLOSE_NOTIFY_ALERT, &mut out).unwrap();
    assert_eq!(rx.open(&mut out), Ok(Opened::Close));
    let mut out = Vec::new();
    tx.seal(ALERT, &[2, CLOSE_NOTIFY], &mut out).unwrap();
    assert_eq!(rx.open(&mut out), Ok(Opened::Close), "close_notify whatever its level");
    let mut out = Vec::new();
    tx.seal(ALERT, &[2, 40], &mut out).unwrap();
    assert_eq!(rx.open(&mut out), Err(RecordError::Alert { level: 2, description: 40 }));
    let mut out = Vec::new();
    tx.seal(ALERT, &[1], &mut out).unwrap();
    assert_eq!(rx.open(&mut out), Err(RecordError::Length(1)));
    let mut out = Vec::new();
    tx.seal(HANDSHAKE, &[24, 0, 0, 1, 0], &mut out).unwrap();
    assert_eq!(rx.open(&mut out), Err(RecordError::Handshake), "KeyUpdate");
    let mut out = Vec::new();
    tx.seal(0x14, &[1], &mut out).unwrap();
    assert_eq!(rx.open(&mut out), Err(RecordError::InnerType(0x14)));
}

#[test]
fn the_sequence_limit_ends_sealing_and_opening() {
    let key = [1u8; 16];
    let iv = [2u8; aead::NONCE_LEN];
    let mut tx = Protection::from_parts(&aead::AES_128_GCM, &key, &iv, 9, 10).unwrap();
    let mut out = Vec::new();
    tx.seal(APPLICATION_DATA, b"last", &mut out).unwrap();
    let len = out.len();
    assert_eq!(tx.seal(APPLICATION_DATA, b"one more", &mut out), Err(RecordError::SequenceExhausted));
    assert_eq!(out.len(), len, "nothing appended");

    let mut tx = Protection::from_parts(&aead::AES_128_GCM, &key, &iv, u64::MAX - 1, u64::MAX).unwrap();
    let mut rx = Protection::from_parts(&aead::AES_128_GCM, &key, &iv, u64::MAX - 1, u64::MAX).unwrap();
    let mut out = Vec::new();
    tx.seal(APPLICATION_DATA, b"x", &mut out).unwrap();
    assert!(matches!(rx.open(&mut out), Ok(Opened::Data(_))));
    assert_eq!(rx.open(&mut out), Err(RecordError::SequenceExhausted));
}

#[test]
fn nonce_is_the_iv_xor_the_sequence_number() {
    // RFC 8446 §5.3: the sequence number, big-endian, right-aligned against the IV.
    let iv = [0xF0u8; aead::NONCE_LEN];
    let mut p = Protection::from_parts(&aead::AES_128_GCM, &[0; 16], &iv, 0x0102, u64::MAX).unwrap();
    let nonce = p.next_nonce().unwrap();
    let mut want = iv;
    want[10] ^= 0x01;
    want[11] ^= 0x02;
    assert_eq!(nonce.as_ref(), &want);
}

#[test]
fn unsupported_key_material_is_refused() {
    assert_eq!(
        Protection::from_parts(&aead::AES_128_GCM, &[0; 15], &[0; 12], 0, 1).err(),
        Some(RecordError::UnsupportedCipher)
    );
}
