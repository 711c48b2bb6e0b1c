//! Table tests of client frame parsing, malformed input included.

use super::{ClientMsg, Recover, parse_client_msg};
use crate::pusher::ProtocolError;

fn parse(s: &str) -> Result<ClientMsg, ProtocolError> {
    parse_client_msg(s.as_bytes())
}

#[test]
fn ping_and_pong_with_or_without_data() {
    for frame in [
        r#"{"event":"pusher:ping","data":{}}"#,
        r#"{"event":"pusher:ping"}"#,
        r#"{"event":"pusher:ping","data":"{}"}"#,
        r#"  {"data":null, "event":"pusher:ping"}  "#,
    ] {
        assert!(matches!(parse(frame), Ok(ClientMsg::Ping)), "{frame}");
    }
    assert!(matches!(parse(r#"{"event":"pusher:pong","data":{}}"#), Ok(ClientMsg::Pong)));
}

#[test]
fn subscribe_public_private_presence() {
    let msg = parse(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}"#);
    assert!(
        matches!(msg, Ok(ClientMsg::Subscribe { ref channel, auth: Some(ref a), channel_data: None, recover: None })
        if channel == "my-channel" && a.is_empty())
    );

    let msg = parse(r#"{"event":"pusher:subscribe","data":{"channel":"private-a","auth":"k:abc"}}"#);
    assert!(
        matches!(msg, Ok(ClientMsg::Subscribe { ref auth, channel_data: None, .. }) if auth.as_deref() == Some("k:abc"))
    );

    let msg = parse(
        r#"{"event":"pusher:subscribe","data":{"channel":"presence-a","auth":"k:abc","channel_data":"{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}"}}"#,
    );
    assert!(matches!(msg, Ok(ClientMsg::Subscribe { ref channel_data, .. })
        if channel_data.as_deref() == Some(r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#)));

    let msg = parse(r#"{"event":"pusher:subscribe","data":{"channel":"a"}}"#);
    assert!(matches!(msg, Ok(ClientMsg::Subscribe { auth: None, channel_data: None, .. })));
    let msg = parse(r#"{"event":"pusher:subscribe","data":{"channel":"a","auth":null,"channel_data":null}}"#);
    assert!(matches!(msg, Ok(ClientMsg::Subscribe { auth: None, channel_data: None, .. })));
}

#[test]
fn double_encoded_data_is_accepted() {
    let msg = parse(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"private-a\",\"auth\":\"k:s\"}"}"#);
    assert!(matches!(msg, Ok(ClientMsg::Subscribe { ref channel, ref auth, .. })
        if channel == "private-a" && auth.as_deref() == Some("k:s")));
    let msg = parse(r#"{"event":"pusher:unsubscribe","data":"{\"channel\":\"x\"}"}"#);
    assert!(matches!(msg, Ok(ClientMsg::Unsubscribe { ref channel }) if channel == "x"));
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":"not json"}"#).err(),
        Some(ProtocolError::WrongType("data"))
    );
    assert_eq!(parse(r#"{"event":"pusher:subscribe","data":"[1]"}"#).err(), Some(ProtocolError::WrongType("data")));
}

#[test]
fn unsubscribe_and_signin() {
    let msg = parse(r#"{"event":"pusher:unsubscribe","data":{"channel":"private-a"}}"#);
    assert!(matches!(msg, Ok(ClientMsg::Unsubscribe { ref channel }) if channel == "private-a"));

    let msg = parse(r#"{"event":"pusher:signin","data":{"auth":"k:sig","user_data":"{\"id\":\"12345\"}"}}"#);
    assert!(matches!(msg, Ok(ClientMsg::Signin { ref auth, ref user_data })
        if auth == "k:sig" && user_data == r#"{"id":"12345"}"#));
}

#[test]
fn client_event_keeps_data_verbatim() {
    let msg = parse(r#"{"event":"client-typing","channel":"private-a","data":{"x": [1, 2]}}"#);
    assert!(matches!(msg, Ok(ClientMsg::ClientEvent { ref event, ref channel, ref data })
        if event == "client-typing" && channel == "private-a" && data.get() == r#"{"x": [1, 2]}"#));

    let msg = parse(r#"{"event":"client-x","channel":"presence-a","data":"a \"string\""}"#);
    assert!(matches!(msg, Ok(ClientMsg::ClientEvent { ref data, .. }) if data.get() == r#""a \"string\"""#));

    let msg = parse(r#"{"event":"client-x","channel":"presence-a","data":null}"#);
    assert!(matches!(msg, Ok(ClientMsg::ClientEvent { ref data, .. }) if data.get() == "null"));

    assert_eq!(parse(r#"{"event":"client-x","data":{}}"#).err(), Some(ProtocolError::MissingField("channel")));
    assert_eq!(parse(r#"{"event":"client-x","channel":"private-a"}"#).err(), Some(ProtocolError::MissingField("data")));
    assert_eq!(parse(r#"{"event":"client-x","channel":7,"data":{}}"#).err(), Some(ProtocolError::WrongType("channel")));
}

#[test]
fn other_events_are_not_errors() {
    for (frame, name) in [
        (r#"{"event":"pusher:unknown","data":{}}"#, "pusher:unknown"),
        (r#"{"event":"my-event","channel":"a","data":"x"}"#, "my-event"),
        (r#"{"event":"xclient-"}"#, "xclient-"),
        (r#"{"event":""}"#, ""),
    ] {
        assert!(matches!(parse(frame), Ok(ClientMsg::Other { ref event }) if event == name), "{frame}");
    }
}

#[test]
fn malformed_frames() {
    let table: [(&[u8], ProtocolError); 17] = [
        (b"", ProtocolError::NotJson),
        (b"{", ProtocolError::NotJson),
        (b"not json", ProtocolError::NotJson),
        (br#"{"event":"pusher:ping"} trailing"#, ProtocolError::NotJson),
        (b"{\"event\":\"\xff\"}", ProtocolError::NotJson),
        (b"[\"pusher:ping\"]", ProtocolError::NotAnObject),
        (b"\"pusher:ping\"", ProtocolError::NotAnObject),
        (b"null", ProtocolError::NotAnObject),
        (b"42", ProtocolError::NotAnObject),
        (br#"{}"#, ProtocolError::MissingField("event")),
        (br#"{"event":null}"#, ProtocolError::MissingField("event")),
        (br#"{"event":1}"#, ProtocolError::WrongType("event")),
        (br#"{"event":"pusher:subscribe"}"#, ProtocolError::MissingField("data")),
        (br#"{"event":"pusher:subscribe","data":{}}"#, ProtocolError::MissingField("channel")),
        (br#"{"event":"pusher:subscribe","data":{"channel":1}}"#, ProtocolError::WrongType("channel")),
        (br#"{"event":"pusher:subscribe","data":{"channel":"a","auth":5}}"#, ProtocolError::WrongType("auth")),
        (br#"{"event":"pusher:subscribe","data":[]}"#, ProtocolError::WrongType("data")),
    ];
    for (frame, expected) in table {
        assert_eq!(parse_client_msg(frame).err(), Some(expected), "{}", String::from_utf8_lossy(frame));
    }
    assert_eq!(
        parse(r#"{"event":"pusher:subscribe","data":{"channel":"a","channel_data":{"user_id":1}}}"#).err(),
        Some(ProtocolError::WrongType("channel_data"))
    );
    assert_eq!(
        parse(r#"{"event":"pusher:signin","data":{"auth":"k:s"}}"#).err(),
        Some(ProtocolError::MissingField("user_data"))
    );
    assert_eq!(
        parse(r#"{"event":"pusher:signin","data":{"auth":"k:s","user_data":{"id":"1"}}}"#).err(),
        Some(ProtocolError::WrongType("user_data"))
    );
    assert_eq!(
        parse(r#"{"event":"pusher:unsubscribe","data":{}}"#).err(),
        Some(ProtocolError::MissingField("channel"))
    );
}

#[test]
fn escaped_keys_and_values_and_duplicates() {
    // An escaped key is still the key; a repeated key keeps the last value, as in JSON.parse.
    let msg = parse(r#"{"\u0065vent":"pusher:unsubscribe","data":{"channel":"a","channel":"b\u002dc"}}"#);
    assert!(matches!(msg, Ok(ClientMsg::Unsubscribe { ref channel }) if channel == "b-c"));
}

#[test]
fn truncated_and_corrupted_frames_never_panic() {
    let frames = [
        r#"{"event":"pusher:subscribe","data":{"channel":"presence-a","auth":"k:s","channel_data":"{\"user_id\":1}"}}"#,
        r#"{"event":"pusher:signin","data":"{\"auth\":\"k:s\",\"user_data\":\"{\\\"id\\\":\\\"1\\\"}\"}"}"#,
        r#"{"event":"client-x","channel":"private-a","data":{"a":"\u00e9"}}"#,
    ];
    for frame in frames {
        let bytes = frame.as_bytes();
        for end in 0..=bytes.len() {
            let _ = parse_client_msg(&bytes[..end]);
        }
        for i in 0..bytes.len() {
            for b in [b'"', b'\\', b'{', b'}', 0xff, b'0'] {
                let mut corrupted = bytes.to_vec();
                corrupted[i] = b;
                let _ = parse_client_msg(&corrupted);
            }
        }
    }
}

#[test]
fn subscribe_recover_field() {
    let msg = parse(r#"{"event":"pusher:subscribe","data":{"channel":"a","recover":{"epoch":"e1","serial":7}}}"#);
    assert!(matches!(msg, Ok(ClientMsg::Subscribe { recover: Some(Recover::From { ref epoch, serial: 7 }), .. })
        if epoch == "e1"));
    let msg = parse(r#"{"event":"pusher:subscribe","data":{"channel":"a","recover":null}}"#);
    assert!(matches!(msg, Ok(ClientMsg::Subscribe { recover: None, .. })));
    for bad in [
        r#""x""#,
        r#"{"epoch":"e"}"#,
        r#"{"epoch":1,"serial":2}"#,
        r#"{"epoch":"e","serial":-1}"#,
        r#"{"epoch":"","serial":1}"#,
        r#"{"epoch":"e","serial":1.5}"#,
    ] {
        let frame = format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"a","recover":{bad}}}}}"#);
        assert!(matches!(parse(&frame), Ok(ClientMsg::Subscribe { recover: Some(Recover::Invalid), .. })), "{bad}");
    }
}
