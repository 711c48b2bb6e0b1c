//! Fuzzes the EspoCRM ZeroMQ submission parser (`espo::submission::parse`), which reads whatever
//! arrives on the ZeroMQ socket herald binds for EspoCRM's PHP side.
//!
//! Beyond "no panic": an accepted submission keeps the message byte for byte as its payload
//! (only the surrounding JSON whitespace is dropped), the payload is a JSON object whose
//! `topicId` is the topic, the topic and the user are never PHP-falsy, and parsing the payload
//! again gives the same submission.
//!
//! Input layout: the raw ZeroMQ message.
#![no_main]

use herald_protocol::espo::submission::parse;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// JSON's insignificant whitespace (RFC 8259 §2), which serde_json skips around a raw value.
fn trim_json_ws(mut b: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r');
    while b.first().is_some_and(ws) {
        b = &b[1..];
    }
    while b.last().is_some_and(ws) {
        b = &b[..b.len() - 1];
    }
    b
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = parse(data) else { return };
    assert_eq!(s.payload.get().as_bytes(), trim_json_ws(data), "payload is not the message");
    assert!(!s.topic.is_empty() && s.topic != "0", "falsy topic accepted: {:?}", s.topic);
    if let Some(u) = &s.user {
        assert!(!u.is_empty() && u != "0", "falsy user id kept: {u:?}");
    }
    let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(s.payload.get()) else {
        panic!("accepted payload is not a JSON object: {}", s.payload.get());
    };
    assert_eq!(obj.get("topicId").and_then(Value::as_str), Some(s.topic.as_str()));
    let Ok(again) = parse(s.payload.get().as_bytes()) else {
        panic!("payload of an accepted submission is refused: {}", s.payload.get());
    };
    assert_eq!((again.topic, again.user), (s.topic, s.user), "second parse differs");
});
