//! A publication that crosses nodes is the same publication on the other side: every field, and
//! every wire format's frame.

#![allow(clippy::unwrap_used)]

use herald_core::Wire;
use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::wamp::Serializer;
use herald_protocol::wamp::v2::{Dict, Value};
use serde_json::value::RawValue;

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
    assert_eq!(a.publisher, b.publisher);
    assert_eq!(a.id, b.id);
    for wire in [Wire::Pusher, Wire::WampV1, Wire::WampV2(Serializer::Json), Wire::WampV2(Serializer::MsgPack)] {
        assert_eq!(a.encode(wire, 7, None), b.encode(wire, 7, None), "{wire:?}");
    }
}

fn round_trip(p: &Publication) {
    let bytes = encode(42, 9, p);
    let envelope = Envelope::decode(&bytes).unwrap();
    assert_eq!((envelope.node, envelope.seq), (42, 9));
    assert_same(p, &decode(envelope));
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
fn wamp_publication_with_filters_binary_and_disclosed_publisher() {
    let args = vec![Value::Str("hi".into()), Value::Bin(vec![0, 255, 7]), Value::Float(0.1)];
    let kwargs = Dict::new().with("k", "v");
    let filter = WampFilter { exclude: vec![5, 6], eligible: Some(vec![7]) };
    let publisher = HubPublisher { session: 11, authid: "ada".into(), authrole: "admin".into() };
    let p = Publication::new(channel("com.example.topic"), "com.example.topic", PublicationData::Wamp { args, kwargs })
        .from_wamp()
        .with_filter(Some(filter))
        .disclosing(Some(publisher));
    round_trip(&p);
}
