#![allow(clippy::unwrap_used)]

use herald_core::Wire;
use herald_protocol::wamp::Serializer;

use super::*;

fn channel(name: &str) -> ChannelName {
    ChannelName::topic(name, 200).unwrap()
}

/// Every wire format's frame is the same after a round trip: nothing the subscribers see changed.
fn assert_same(a: &Publication, b: &Publication) {
    assert_eq!(a.channel.as_str(), b.channel.as_str());
    assert_eq!(a.event, b.event);
    assert_eq!(a.origin, b.origin);
    assert_eq!(a.exclude, b.exclude);
    assert_eq!(a.user_id, b.user_id);
    assert_eq!(a.filter, b.filter);
    assert_eq!(a.id, b.id);
    for wire in [Wire::Pusher, Wire::WampV1, Wire::WampV2(Serializer::Json), Wire::WampV2(Serializer::MsgPack)] {
        assert_eq!(a.encode(wire, 7, None), b.encode(wire, 7, None), "{wire:?}");
    }
}

fn round_trip(p: &Publication) {
    let bytes = encode(42, 9, p);
    let got = decode(&bytes).unwrap();
    assert_eq!((got.node, got.seq), (42, 9));
    assert_same(p, &got.publication);
}

#[test]
fn http_api_string_with_socket_exclusion() {
    let p = Publication::new(channel("private-orders"), "created", PublicationData::Str(r#"{"id":1}"#.into()))
        .excluding(Some("123.456"));
    round_trip(&p);
}

#[test]
fn client_event_raw_json_with_user_id() {
    let raw = RawValue::from_string(r#"{"typing":true,"n":1.5}"#.to_owned()).unwrap();
    let p = Publication::new(channel("presence-room"), "client-typing", PublicationData::Json(raw))
        .excluding(Some("1.2"))
        .with_user_id(Some("u-7"));
    round_trip(&p);
}

#[test]
fn wamp_publication_with_filters_and_binary() {
    let args = vec![Value::Str("hi".into()), Value::Bin(vec![0, 255, 7]), Value::Float(0.1)];
    let kwargs = Dict::new().with("k", "v");
    let filter = WampFilter { exclude: vec![5, 6], eligible: Some(vec![7]) };
    let p = Publication::new(channel("com.example.topic"), "com.example.topic", PublicationData::Wamp { args, kwargs })
        .from_wamp()
        .with_filter(Some(filter));
    round_trip(&p);
}

#[test]
fn another_version_is_refused() {
    let p = Publication::new(channel("c"), "e", PublicationData::Str("d".into()));
    let mut bytes = encode(1, 1, &p);
    bytes[0] = 2;
    assert!(matches!(decode(&bytes), Err(EnvelopeError::Version(2))));
}

#[test]
fn every_truncation_and_trailing_bytes_are_refused() {
    let p = Publication::new(channel("c"), "e", PublicationData::Str("data".into()))
        .excluding(Some("1.1"))
        .with_filter(Some(WampFilter { exclude: vec![1], eligible: None }));
    let bytes = encode(1, 1, &p);
    for n in 0..bytes.len() {
        assert!(decode(&bytes[..n]).is_err(), "accepted {n} of {} bytes", bytes.len());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(decode(&longer), Err(EnvelopeError::Trailing(1))));
}

#[test]
fn forged_id_count_does_not_allocate() {
    let p = Publication::new(channel("c"), "e", PublicationData::Str("d".into()))
        .with_filter(Some(WampFilter { exclude: vec![], eligible: None }));
    let mut bytes = encode(1, 1, &p);
    // The filter's exclude count sits after the fixed header and the two names.
    let at = 1 + 24 + 2 + (4 + 1) + (4 + 1);
    bytes[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(decode(&bytes), Err(EnvelopeError::Truncated)));
}
