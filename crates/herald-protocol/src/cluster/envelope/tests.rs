//! The envelope codec: round trips, the exact layout, and every way a damaged envelope is refused.

#![allow(clippy::unwrap_used)]

use super::*;

fn channel(name: &str) -> ChannelName {
    ChannelName::topic(name, 200).unwrap()
}

fn raw_json(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

fn plain<'a>(data: Data<'a>) -> Envelope<'a> {
    Envelope {
        node: 42,
        seq: 9,
        id: 7,
        wamp: false,
        retain: false,
        channel: channel("news"),
        event: "ev",
        exclude: None,
        user_id: None,
        filter: None,
        publisher: None,
        data,
        position: None,
    }
}

/// Decodes `bytes`, checks that the result encodes back to the same bytes, and returns it.
fn decode_exact(bytes: &[u8]) -> Envelope<'_> {
    let got = Envelope::decode(bytes).unwrap();
    assert_eq!(got.encode(), bytes, "decoded and encoded again, the bytes changed");
    got
}

fn same_data(a: &Data<'_>, b: &Data<'_>) -> bool {
    match (a, b) {
        (Data::Str(a), Data::Str(b)) => a == b,
        (Data::Json(a), Data::Json(b)) => a.get() == b.get(),
        (Data::Wamp { args: a, kwargs: ak }, Data::Wamp { args: b, kwargs: bk }) => a == b && ak == bk,
        _ => false,
    }
}

fn round_trip(e: &Envelope<'_>) {
    let bytes = e.encode();
    let got = decode_exact(&bytes);
    assert_eq!((got.node, got.seq, got.id, got.wamp, got.retain), (e.node, e.seq, e.id, e.wamp, e.retain));
    assert_eq!((&got.channel, got.event), (&e.channel, e.event));
    assert_eq!((got.exclude, got.user_id), (e.exclude, e.user_id));
    assert_eq!((&got.filter, &got.publisher), (&e.filter, &e.publisher));
    assert!(same_data(&got.data, &e.data), "{:?} came back as {:?}", e.data, got.data);
    assert_eq!(got.position, e.position);
}

#[test]
fn retained_wamp_event_keeps_its_flag_and_adds_no_bytes() {
    let args = vec![Value::Str("hello".into())];
    let data = Data::Wamp { args: Cow::Owned(args), kwargs: Cow::Owned(Dict::new()) };
    let retained = Envelope { wamp: true, retain: true, ..plain(data) };
    round_trip(&retained);
    let plain_bytes = Envelope { retain: false, ..retained.clone() }.encode();
    let bytes = retained.encode();
    assert_eq!(bytes.len(), plain_bytes.len());
    assert_eq!(bytes[FLAGS_OFFSET] & !plain_bytes[FLAGS_OFFSET], 64);
}

#[test]
fn http_api_string_with_socket_exclusion() {
    round_trip(&Envelope { exclude: Some("123.456"), ..plain(Data::Str(r#"{"id":1}"#)) });
}

#[test]
fn client_event_json_with_user_id() {
    let raw = raw_json(r#"{"typing":true,"n":1.5,"s":"\u00e9\"x"}"#);
    round_trip(&Envelope { exclude: Some("1.2"), user_id: Some("u-7"), ..plain(Data::Json(&raw)) });
}

#[test]
fn wamp_publication_with_filters_publisher_and_binary() {
    let args = vec![Value::Str("hi".into()), Value::Bin(vec![0, 255, 7]), Value::Float(0.1), Value::Null];
    let kwargs = Dict::new().with("k", "v").with("n", Value::List(vec![Value::Bool(true)]));
    let e = Envelope {
        wamp: true,
        channel: channel("com.example.topic"),
        event: "com.example.topic",
        filter: Some(Filter { exclude: Cow::Owned(vec![5, 6]), eligible: Some(Cow::Owned(vec![7, u64::MAX])) }),
        publisher: Some(Publisher { session: 77, authid: "ada", authrole: "admin" }),
        ..plain(Data::Wamp { args: Cow::Owned(args), kwargs: Cow::Owned(kwargs) })
    };
    round_trip(&e);
    // A filter without an eligible list, and empty WAMP data.
    let e = Envelope {
        filter: Some(Filter { exclude: Cow::Owned(vec![]), eligible: None }),
        ..plain(Data::Wamp { args: Cow::Owned(vec![]), kwargs: Cow::Owned(Dict::new()) })
    };
    round_trip(&e);
}

#[test]
fn the_layout_is_pinned() {
    // A change here without a new VERSION would make nodes misread each other.
    let e = Envelope { exclude: Some("1.2"), ..plain(Data::Str("d")) };
    let mut want = vec![VERSION];
    for n in [42u64, 9, 7] {
        want.extend_from_slice(&n.to_le_bytes());
    }
    want.extend_from_slice(&[FLAG_EXCLUDE, KIND_STR]);
    for s in ["news", "ev", "1.2", "d"] {
        want.extend_from_slice(&u32::try_from(s.len()).unwrap().to_le_bytes());
        want.extend_from_slice(s.as_bytes());
    }
    assert_eq!(e.encode(), want);
    assert_eq!(VERSION, 2);
}

#[test]
fn another_version_is_refused_with_its_sender() {
    let mut bytes = plain(Data::Str("d")).encode();
    for version in [0, 1, 3, 255] {
        bytes[0] = version;
        let err = Envelope::decode(&bytes).unwrap_err();
        assert!(matches!(err, EnvelopeError::Version { version: v, node: 42 } if v == version), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!("an envelope of format version {version} from node 000000000000002a: this node speaks version 2")
        );
    }
    // Only the preamble is read: whatever follows it in another version does not matter.
    assert!(matches!(Envelope::decode(&bytes[..PREAMBLE_LEN]), Err(EnvelopeError::Version { version: 255, node: 42 })));
    assert!(matches!(Envelope::decode(&bytes[..PREAMBLE_LEN - 1]), Err(EnvelopeError::Truncated)));
}

#[test]
fn every_truncation_and_trailing_bytes_are_refused() {
    let raw = raw_json("[1]");
    let e = Envelope {
        exclude: Some("1.1"),
        user_id: Some("u"),
        filter: Some(Filter { exclude: Cow::Owned(vec![1]), eligible: Some(Cow::Owned(vec![2])) }),
        publisher: Some(Publisher { session: 3, authid: "a", authrole: "r" }),
        ..plain(Data::Json(&raw))
    };
    let bytes = e.encode();
    for n in 0..bytes.len() {
        let got = Envelope::decode(&bytes[..n]);
        assert!(matches!(got, Err(EnvelopeError::Truncated)), "{n} of {} bytes: {got:?}", bytes.len());
    }
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"xy");
    assert!(matches!(Envelope::decode(&longer), Err(EnvelopeError::Trailing(2))));
}

/// Hand-written envelopes, field by field, to damage one at a time.
struct Raw(Vec<u8>);

impl Raw {
    /// Version, node, seq, id, flags and kind.
    fn head(flags: u8, kind: u8) -> Raw {
        let mut v = vec![VERSION];
        for n in [1u64, 2, 3] {
            v.extend_from_slice(&n.to_le_bytes());
        }
        v.extend_from_slice(&[flags, kind]);
        Raw(v)
    }

    fn u8(mut self, b: u8) -> Raw {
        self.0.push(b);
        self
    }

    fn u32(mut self, n: u32) -> Raw {
        self.0.extend_from_slice(&n.to_le_bytes());
        self
    }

    fn bytes(self, b: &[u8]) -> Raw {
        let mut r = self.u32(u32::try_from(b.len()).unwrap());
        r.0.extend_from_slice(b);
        r
    }

    /// Channel "c" and event "e".
    fn names(self) -> Raw {
        self.bytes(b"c").bytes(b"e")
    }
}

fn refused(raw: &Raw) -> EnvelopeError {
    match Envelope::decode(&raw.0) {
        Ok(e) => panic!("accepted {e:?}"),
        Err(e) => e,
    }
}

#[test]
fn a_hand_written_envelope_decodes() {
    let raw = Raw::head(0, KIND_STR).names().bytes(b"data");
    let e = decode_exact(&raw.0);
    assert_eq!((e.node, e.seq, e.id, e.channel.as_str(), e.event), (1, 2, 3, "c", "e"));
    assert!(matches!(e.data, Data::Str("data")));
}

#[test]
fn unknown_flags_and_kinds_are_refused() {
    // Every flag bit is taken but the highest.
    let err = refused(&Raw::head(FLAG_WAMP | 128, KIND_STR).names().bytes(b"d"));
    assert!(matches!(err, EnvelopeError::Flags(f) if f == FLAG_WAMP | 128), "{err:?}");
    for kind in [3, 255] {
        assert!(matches!(refused(&Raw::head(0, kind).names().bytes(b"d")), EnvelopeError::Kind(k) if k == kind));
    }
}

#[test]
fn a_yes_no_byte_out_of_range_is_refused() {
    let raw = Raw::head(FLAG_FILTER, KIND_STR).names().u32(0).u8(2).bytes(b"d");
    assert!(matches!(refused(&raw), EnvelopeError::Bool(2)));
}

#[test]
fn text_that_is_not_utf8_is_refused() {
    let bad = [0xff, 0xfe];
    for raw in [
        Raw::head(0, KIND_STR).bytes(&bad).bytes(b"e").bytes(b"d"),
        Raw::head(0, KIND_STR).bytes(b"c").bytes(&bad).bytes(b"d"),
        Raw::head(FLAG_EXCLUDE, KIND_STR).names().bytes(&bad).bytes(b"d"),
        Raw::head(FLAG_USER, KIND_STR).names().bytes(&bad).bytes(b"d"),
        Raw::head(FLAG_PUBLISHER, KIND_STR).names().u32(0).u32(0).bytes(b"a").bytes(&bad).bytes(b"d"),
        Raw::head(0, KIND_STR).names().bytes(&bad),
        Raw::head(0, KIND_JSON).names().bytes(&bad),
    ] {
        assert!(matches!(refused(&raw), EnvelopeError::Utf8(_)), "{:?}", raw.0);
    }
}

#[test]
fn an_unusable_channel_is_refused() {
    let long = vec![b'x'; MAX_NAME + 1];
    for name in [&b""[..], &b"a\nb"[..], &long[..]] {
        let raw = Raw::head(0, KIND_STR).bytes(name).bytes(b"e").bytes(b"d");
        assert!(matches!(refused(&raw), EnvelopeError::Channel(_)), "{name:?}");
    }
}

#[test]
fn data_that_is_not_what_its_kind_says_is_refused() {
    for text in [&b""[..], &b"{"[..], &b"[1] [2]"[..], &b"nul"[..], &b" 1"[..], &b"[]\n"[..]] {
        assert!(matches!(refused(&Raw::head(0, KIND_JSON).names().bytes(text)), EnvelopeError::Json(_)), "{text:?}");
    }
    // 0xc1 is a reserved MessagePack marker; 0x92 announces two elements that never come.
    for bytes in [&[0xc1][..], &[0x92][..], &[][..]] {
        assert!(matches!(refused(&Raw::head(0, KIND_WAMP).names().bytes(bytes)), EnvelopeError::Wamp(_)));
    }
    let shapes = [
        Value::Null,
        Value::List(vec![]),
        Value::List(vec![Value::List(vec![])]),
        Value::List(vec![Value::Dict(Dict::new()), Value::List(vec![])]),
        Value::List(vec![Value::List(vec![]), Value::Dict(Dict::new()), Value::Null]),
    ];
    for shape in shapes {
        let raw = Raw::head(0, KIND_WAMP).names().bytes(&shape.to_msgpack());
        assert!(matches!(refused(&raw), EnvelopeError::WampShape), "{shape:?}");
    }
}

#[test]
fn a_forged_id_count_does_not_allocate() {
    let raw = Raw::head(FLAG_FILTER, KIND_STR).names().u32(u32::MAX).u8(0).bytes(b"d");
    assert!(matches!(refused(&raw), EnvelopeError::Truncated));
    let raw = Raw::head(0, KIND_STR).names().u32(u32::MAX);
    assert!(matches!(refused(&raw), EnvelopeError::Truncated));
}

#[test]
fn a_position_appended_by_the_broker_reads_as_one_encoded_with_it() {
    let e = Envelope { exclude: Some("1.2"), ..plain(Data::Str("d")) };
    round_trip(&Envelope { position: Some(("00ff00ff00ff00ff", 12)), ..e.clone() });
    // What the sequencing script does: set the flag, then append the epoch and the serial.
    let mut bytes = e.encode();
    bytes[FLAGS_OFFSET] |= FLAG_POSITION;
    let epoch = "00ff00ff00ff00ff";
    bytes.extend_from_slice(&u32::try_from(epoch.len()).unwrap().to_le_bytes());
    bytes.extend_from_slice(epoch.as_bytes());
    bytes.extend_from_slice(&12u64.to_le_bytes());
    assert_eq!(bytes, Envelope { position: Some((epoch, 12)), ..e.clone() }.encode());
    assert_eq!(decode_exact(&bytes).position, Some((epoch, 12)));
    // Without the flag, the same bytes are trailing garbage; with the flag and no position, truncated.
    let mut flagged = e.encode();
    flagged[FLAGS_OFFSET] |= FLAG_POSITION;
    assert!(matches!(Envelope::decode(&flagged), Err(EnvelopeError::Truncated)));
}
