use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::wamp::v2::decode_v2;
use herald_protocol::wamp::v2::{Dict, Value};
use herald_protocol::wamp::{Serializer, V2Msg};
use serde_json::{Value as Json, json};

use super::*;

fn channel() -> ChannelName {
    ChannelName::parse("news", 200).unwrap()
}

/// The payload of a server text frame under 126 bytes or with a 16-bit length.
fn payload(frame: &Bytes) -> &[u8] {
    match frame[1] & 0x7f {
        126 => &frame[4..],
        127 => &frame[10..],
        _ => &frame[2..],
    }
}

fn json_of(frame: &Bytes) -> Json {
    serde_json::from_slice(payload(frame)).unwrap()
}

fn pusher_http(data: &str) -> Publication {
    Publication::new(channel(), "price", PublicationData::Str(data.into()))
}

#[test]
fn pusher_http_event_to_pusher_keeps_the_data_string() {
    let p = pusher_http(r#"{"v":1}"#);
    assert_eq!(json_of(p.frame(Wire::Pusher, 1)), json!({"event":"price","channel":"news","data":"{\"v\":1}"}));
}

#[test]
fn pusher_json_data_reaches_wamp_v1_as_the_parsed_value() {
    let p = pusher_http(r#"{"v":1}"#);
    assert_eq!(json_of(p.frame(Wire::WampV1, 1)), json!([8, "news", {"v": 1}]));
    let p = pusher_http("plain text");
    assert_eq!(json_of(p.frame(Wire::WampV1, 1)), json!([8, "news", "plain text"]));
}

#[test]
fn pusher_event_reaches_wamp_v2_with_its_name_in_kwargs() {
    let p = pusher_http(r#"{"v":1}"#);
    let ev = json_of(p.frame(Wire::WampV2(Serializer::Json), 77));
    assert_eq!(ev[0], 36);
    assert_eq!(ev[1], 77, "the channel's subscription id");
    assert_eq!(ev[2], p.id);
    assert_eq!(ev[4], json!([{"v": 1}]));
    assert_eq!(ev[5], json!({"event": "price"}));
}

#[test]
fn msgpack_event_decodes_to_the_same_message() {
    let p = pusher_http(r#"{"v":1}"#);
    let frame = p.frame(Wire::WampV2(Serializer::MsgPack), 5);
    assert_eq!(frame[0], 0x82, "binary frame");
    let msg = decode_v2(Serializer::MsgPack, payload(frame)).unwrap();
    let V2Msg::Event { payload, .. } = msg else { panic!("{msg:?}") };
    assert_eq!(payload.args.unwrap(), vec![Value::Dict(Dict::new().with("v", 1u64))]);
}

#[test]
fn wamp_single_argument_reaches_pusher_as_its_json_text_with_the_kwargs_event_name() {
    let data = PublicationData::Wamp {
        args: vec![Value::Dict(Dict::new().with("a", 1u64))],
        kwargs: Dict::new().with("event", "changed"),
    };
    let p = Publication::new(channel(), "changed", data).from_wamp();
    assert_eq!(json_of(p.frame(Wire::Pusher, 1)), json!({"event":"changed","channel":"news","data":"{\"a\":1}"}));
    assert_eq!(json_of(p.frame(Wire::WampV1, 1)), json!([8, "news", {"a": 1}]));
}

#[test]
fn wamp_string_argument_reaches_pusher_as_that_string() {
    let data = PublicationData::Wamp { args: vec![Value::Str("hi".into())], kwargs: Dict::new() };
    let p = Publication::new(channel(), "news", data).from_wamp();
    assert_eq!(json_of(p.frame(Wire::Pusher, 1))["data"], "hi");
}

#[test]
fn wamp_several_arguments_reach_pusher_and_v1_as_args_and_kwargs() {
    let data =
        PublicationData::Wamp { args: vec![Value::from(1u64), Value::from(2u64)], kwargs: Dict::new().with("k", "v") };
    let p = Publication::new(channel(), "news", data).from_wamp();
    let pusher: Json = serde_json::from_str(json_of(p.frame(Wire::Pusher, 1))["data"].as_str().unwrap()).unwrap();
    assert_eq!(pusher, json!({"args": [1, 2], "kwargs": {"k": "v"}}));
    assert_eq!(json_of(p.frame(Wire::WampV1, 1))[2], json!({"args": [1, 2], "kwargs": {"k": "v"}}));
    let v2 = json_of(p.frame(Wire::WampV2(Serializer::Json), 1));
    assert_eq!((v2[4].clone(), v2[5].clone()), (json!([1, 2]), json!({"k": "v"})), "v2 gets what was published");
}

#[test]
fn wamp_v1_event_reaches_v2_without_a_pusher_event_name() {
    let raw = serde_json::value::RawValue::from_string(r#"{"x":true}"#.into()).unwrap();
    let p = Publication::new(channel(), "news", PublicationData::Json(raw)).from_wamp();
    let v2 = json_of(p.frame(Wire::WampV2(Serializer::Json), 1));
    assert_eq!(v2.as_array().unwrap().len(), 5, "no kwargs: {v2}");
    assert_eq!(v2[4], json!([{"x": true}]));
    assert_eq!(json_of(p.frame(Wire::Pusher, 1))["data"], r#"{"x":true}"#);
}

#[test]
fn pattern_events_carry_the_concrete_topic() {
    let p = pusher_http("1");
    let ev = json_of(&p.encode(Wire::WampV2(Serializer::Json), 9, Some("news")));
    assert_eq!(ev[3], json!({"topic": "news"}));
}

#[test]
fn wamp_filter_excludes_and_whitelists_by_session() {
    let f = WampFilter { exclude: vec![1], eligible: Some(vec![1, 2]) };
    assert!(!f.admits(1));
    assert!(f.admits(2));
    assert!(!f.admits(3));
}
