//! Every server frame parses as JSON, with `data` double-encoded where the Pusher protocol docs say so.

use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

use super::*;

fn json(frame: &Bytes) -> Value {
    serde_json::from_slice(frame).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(frame)))
}

/// The message's `data`, which must be a string holding JSON (double encoding).
fn inner(frame: &Bytes) -> Value {
    let outer = json(frame);
    let Some(Value::String(data)) = outer.get("data") else {
        panic!("data is not a string: {outer}");
    };
    serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"))
}

fn raw(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_owned()).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn connection_established_is_double_encoded() {
    let frame = connection_established("123.456", 120);
    assert_eq!(
        &frame[..],
        br#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"123.456\",\"activity_timeout\":120}"}"#
    );
    assert_eq!(inner(&frame), serde_json::json!({"socket_id": "123.456", "activity_timeout": 120}));
}

#[test]
fn error_data_is_an_object() {
    let v = json(&error(Some(4009), "Connection not authorized within timeout"));
    assert_eq!(
        v,
        serde_json::json!({"event":"pusher:error","data":{"message":"Connection not authorized within timeout","code":4009}})
    );
    let v = json(&error(None, "Existing subscription to channel \"x\"\n"));
    assert_eq!(v["data"]["code"], Value::Null);
    assert_eq!(v["data"]["message"], "Existing subscription to channel \"x\"\n");
}

#[test]
fn pong_and_subscription_succeeded_match_hosted_bytes() {
    assert_eq!(&pong()[..], br#"{"event":"pusher:pong","data":"{}"}"#);
    assert_eq!(inner(&pong()), serde_json::json!({}));
    let frame = subscription_succeeded("my-channel");
    assert_eq!(&frame[..], br#"{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}"#);
}

#[test]
fn presence_subscription_succeeded_lists_members() {
    let info = raw(r#"{"name":"Mr. \"Channels\""}"#);
    let members = vec![("10", Some(&*info)), ("u\"2", None)];
    let frame = presence_subscription_succeeded("presence-a", members.into_iter());
    assert_eq!(json(&frame)["channel"], "presence-a");
    assert_eq!(
        inner(&frame),
        serde_json::json!({"presence":{"ids":["10","u\"2"],"hash":{"10":{"name":"Mr. \"Channels\""},"u\"2":null},"count":2}})
    );
    let empty = presence_subscription_succeeded("presence-a", std::iter::empty());
    assert_eq!(inner(&empty), serde_json::json!({"presence":{"ids":[],"hash":{},"count":0}}));
}

#[test]
fn member_added_and_removed() {
    let info = raw(r#"{"a":[1,"\n"]}"#);
    let frame = member_added("presence-a", "7", Some(&info));
    assert_eq!(json(&frame)["event"], "pusher_internal:member_added");
    assert_eq!(inner(&frame), serde_json::json!({"user_id":"7","user_info":{"a":[1,"\n"]}}));
    assert_eq!(inner(&member_added("presence-a", "7", None)), serde_json::json!({"user_id":"7"}));
    let frame = member_removed("presence-a", "7");
    assert_eq!(json(&frame)["channel"], "presence-a");
    assert_eq!(inner(&frame), serde_json::json!({"user_id":"7"}));
}

#[test]
fn cache_miss_has_no_data() {
    assert_eq!(json(&cache_miss("cache-a")), serde_json::json!({"event":"pusher:cache_miss","channel":"cache-a"}));
}

#[test]
fn signin_success_carries_user_data_string() {
    let frame = signin_success(r#"{"id":"12345","watchlist":["1"]}"#);
    assert_eq!(json(&frame)["event"], "pusher:signin_success");
    assert_eq!(inner(&frame), serde_json::json!({"user_data": r#"{"id":"12345","watchlist":["1"]}"#}));
}

#[test]
fn watchlist_events_shape() {
    let frame = watchlist_events(&[("online", &["1", "2"]), ("offline", &[])]);
    assert_eq!(json(&frame)["event"], "pusher_internal:watchlist_events");
    assert_eq!(
        inner(&frame),
        serde_json::json!({"events":[{"name":"online","user_ids":["1","2"]},{"name":"offline","user_ids":[]}]})
    );
}

#[test]
fn subscription_count_and_error() {
    let frame = subscription_count("a", 12);
    assert_eq!(json(&frame)["event"], "pusher_internal:subscription_count");
    assert_eq!(inner(&frame), serde_json::json!({"subscription_count":12}));
    let frame = subscription_error("private-a", 401, "Invalid \"signature\"");
    assert_eq!(json(&frame)["event"], "pusher:subscription_error");
    assert_eq!(json(&frame)["channel"], "private-a");
    assert_eq!(inner(&frame), serde_json::json!({"type":"AuthError","error":"Invalid \"signature\"","status":401}));
}

#[test]
fn event_data_string_or_raw() {
    let frame = event("my-event", "a", EventData::Str(r#"{"some":"data"}"#), None);
    assert_eq!(&frame[..], br#"{"event":"my-event","channel":"a","data":"{\"some\":\"data\"}"}"#);
    assert_eq!(inner(&frame), serde_json::json!({"some":"data"}));

    // A plain (non-JSON) string is still delivered as a string.
    assert_eq!(json(&event("e", "a", EventData::Str("hi\u{0}"), None))["data"], "hi\u{0}");

    let data = raw(r#"{"typing":true}"#);
    let frame = event("client-typing", "presence-a", EventData::Raw(&data), Some("42"));
    assert_eq!(
        json(&frame),
        serde_json::json!({"event":"client-typing","channel":"presence-a","data":{"typing":true},"user_id":"42"})
    );
}

#[test]
fn every_string_encoded_message_round_trips() {
    let info = raw("{}");
    let frames = [
        connection_established("1.2", 30),
        pong(),
        subscription_succeeded("a"),
        presence_subscription_succeeded("presence-a", [("1", Some(&*info))].into_iter()),
        member_added("presence-a", "1", Some(&info)),
        member_removed("presence-a", "1"),
        signin_success(r#"{"id":"1"}"#),
        watchlist_events(&[("online", &["1"])]),
        subscription_count("a", 0),
        subscription_error("private-a", 403, "no"),
        event("e", "a", EventData::Str("{}"), None),
    ];
    for frame in &frames {
        let outer = json(frame);
        assert!(outer["event"].is_string(), "{outer}");
        let _ = inner(frame);
    }
}
