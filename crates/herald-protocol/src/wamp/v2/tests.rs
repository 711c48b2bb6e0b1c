mod malformed;
mod options;

use super::*;

fn id(n: u64) -> Id {
    Id::new(n).unwrap()
}

fn dict(json: &str) -> Dict {
    match Value::from_json(json.as_bytes()).unwrap() {
        Value::Dict(d) => d,
        other => panic!("not a dict: {other:?}"),
    }
}

fn list(json: &str) -> Vec<Value> {
    match Value::from_json(json.as_bytes()).unwrap() {
        Value::List(items) => items,
        other => panic!("not a list: {other:?}"),
    }
}

fn payload(args: Option<&str>, kwargs: Option<&str>) -> Payload {
    Payload { args: args.map(list), kwargs: kwargs.map(dict) }
}

fn json(text: &[u8]) -> serde_json::Value {
    serde_json::from_slice(text).unwrap()
}

/// Example messages of WAMP2 `messages.md` / the session, pub/sub and RPC chapters.
fn spec_examples() -> Vec<(&'static str, V2Msg)> {
    let hello_details = r#"{"roles":{"publisher":{},"subscriber":{}}}"#;
    vec![
        (
            r#"[1,"somerealm",{"roles":{"publisher":{},"subscriber":{}}}]"#,
            V2Msg::Hello { realm: "somerealm".into(), details: dict(hello_details) },
        ),
        (
            r#"[2,9129137332,{"roles":{"broker":{}}}]"#,
            V2Msg::Welcome { session: id(9_129_137_332), details: dict(r#"{"roles":{"broker":{}}}"#) },
        ),
        (
            r#"[3,{"message":"The realm does not exist."},"wamp.error.no_such_realm"]"#,
            V2Msg::Abort {
                details: dict(r#"{"message":"The realm does not exist."}"#),
                reason: "wamp.error.no_such_realm".into(),
            },
        ),
        (
            r#"[6,{"message":"The host is shutting down now."},"wamp.close.system_shutdown"]"#,
            V2Msg::Goodbye {
                details: dict(r#"{"message":"The host is shutting down now."}"#),
                reason: "wamp.close.system_shutdown".into(),
            },
        ),
        (
            r#"[6,{},"wamp.close.goodbye_and_out"]"#,
            V2Msg::Goodbye { details: Dict::new(), reason: "wamp.close.goodbye_and_out".into() },
        ),
        (
            r#"[8,68,6131533,{},"com.myapp.error.object_write_protected",["Object is write protected."],{"severity":3}]"#,
            V2Msg::Error {
                request_type: code::INVOCATION,
                request: id(6_131_533),
                details: Dict::new(),
                error: "com.myapp.error.object_write_protected".into(),
                payload: payload(Some(r#"["Object is write protected."]"#), Some(r#"{"severity":3}"#)),
            },
        ),
        (
            r#"[8,32,713845233,{},"wamp.error.not_authorized"]"#,
            V2Msg::Error {
                request_type: code::SUBSCRIBE,
                request: id(713_845_233),
                details: Dict::new(),
                error: "wamp.error.not_authorized".into(),
                payload: Payload::default(),
            },
        ),
        (
            r#"[16,239714735,{},"com.myapp.mytopic1"]"#,
            V2Msg::Publish {
                request: id(239_714_735),
                options: Dict::new(),
                topic: "com.myapp.mytopic1".into(),
                payload: Payload::default(),
            },
        ),
        (
            r#"[16,239714735,{},"com.myapp.mytopic1",["Hello, world!"]]"#,
            V2Msg::Publish {
                request: id(239_714_735),
                options: Dict::new(),
                topic: "com.myapp.mytopic1".into(),
                payload: payload(Some(r#"["Hello, world!"]"#), None),
            },
        ),
        (
            r#"[16,239714735,{"acknowledge":true,"exclude":[7891255,1245751]},"com.myapp.mytopic1",[],{"color":"orange","sizes":[23,42,7]}]"#,
            V2Msg::Publish {
                request: id(239_714_735),
                options: dict(r#"{"acknowledge":true,"exclude":[7891255,1245751]}"#),
                topic: "com.myapp.mytopic1".into(),
                payload: payload(Some("[]"), Some(r#"{"color":"orange","sizes":[23,42,7]}"#)),
            },
        ),
        (r#"[17,239714735,4429313566]"#, V2Msg::Published { request: id(239_714_735), publication: id(4_429_313_566) }),
        (
            r#"[32,713845233,{},"com.myapp.mytopic1"]"#,
            V2Msg::Subscribe { request: id(713_845_233), options: Dict::new(), topic: "com.myapp.mytopic1".into() },
        ),
        (
            r#"[32,912873614,{"match":"wildcard"},"com.myapp..userevent"]"#,
            V2Msg::Subscribe {
                request: id(912_873_614),
                options: dict(r#"{"match":"wildcard"}"#),
                topic: "com.myapp..userevent".into(),
            },
        ),
        (
            r#"[33,713845233,5512315355]"#,
            V2Msg::Subscribed { request: id(713_845_233), subscription: id(5_512_315_355) },
        ),
        (
            r#"[34,85346237,5512315355]"#,
            V2Msg::Unsubscribe { request: id(85_346_237), subscription: id(5_512_315_355) },
        ),
        (r#"[35,85346237]"#, V2Msg::Unsubscribed { request: id(85_346_237) }),
        (
            r#"[36,5512315355,4429313566,{}]"#,
            V2Msg::Event {
                subscription: id(5_512_315_355),
                publication: id(4_429_313_566),
                details: Dict::new(),
                payload: Payload::default(),
            },
        ),
        (
            r#"[36,5512315355,4429313566,{"topic":"com.myapp.topic.emergency.category.severe"},["Hello, world!"]]"#,
            V2Msg::Event {
                subscription: id(5_512_315_355),
                publication: id(4_429_313_566),
                details: dict(r#"{"topic":"com.myapp.topic.emergency.category.severe"}"#),
                payload: payload(Some(r#"["Hello, world!"]"#), None),
            },
        ),
        (
            r#"[48,7814135,{},"com.myapp.user.new",["johnny"],{"firstname":"John","surname":"Doe"}]"#,
            V2Msg::Call {
                request: id(7_814_135),
                options: Dict::new(),
                procedure: "com.myapp.user.new".into(),
                payload: payload(Some(r#"["johnny"]"#), Some(r#"{"firstname":"John","surname":"Doe"}"#)),
            },
        ),
        (
            r#"[48,7814135,{"timeout":5000},"com.myapp.ping"]"#,
            V2Msg::Call {
                request: id(7_814_135),
                options: dict(r#"{"timeout":5000}"#),
                procedure: "com.myapp.ping".into(),
                payload: Payload::default(),
            },
        ),
        (
            r#"[50,7814135,{},[30]]"#,
            V2Msg::Result { request: id(7_814_135), details: Dict::new(), payload: payload(Some("[30]"), None) },
        ),
        (
            r#"[64,25349185,{},"com.myapp.myprocedure1"]"#,
            V2Msg::Register {
                request: id(25_349_185),
                options: Dict::new(),
                procedure: "com.myapp.myprocedure1".into(),
            },
        ),
        (r#"[65,25349185,2103333224]"#, V2Msg::Registered { request: id(25_349_185), registration: id(2_103_333_224) }),
        (
            r#"[66,788923562,2103333224]"#,
            V2Msg::Unregister { request: id(788_923_562), registration: id(2_103_333_224) },
        ),
        (r#"[67,788923562]"#, V2Msg::Unregistered { request: id(788_923_562) }),
        (
            r#"[68,6131533,9823529,{},["johnny"],{"firstname":"John","surname":"Doe"}]"#,
            V2Msg::Invocation {
                request: id(6_131_533),
                registration: id(9_823_529),
                details: Dict::new(),
                payload: payload(Some(r#"["johnny"]"#), Some(r#"{"firstname":"John","surname":"Doe"}"#)),
            },
        ),
        (
            r#"[70,6131533,{}]"#,
            V2Msg::Yield { request: id(6_131_533), options: Dict::new(), payload: Payload::default() },
        ),
        (
            r#"[70,6131533,{},["Hello, world!"]]"#,
            V2Msg::Yield {
                request: id(6_131_533),
                options: Dict::new(),
                payload: payload(Some(r#"["Hello, world!"]"#), None),
            },
        ),
    ]
}

#[test]
fn spec_examples_decode_and_round_trip_in_both_serializers() {
    let examples = spec_examples();
    let mut codes: Vec<u64> = examples.iter().map(|(_, m)| m.type_code()).collect();
    codes.dedup();
    assert_eq!(codes.len(), 20, "every Basic Profile message type is covered");
    for (text, expected) in examples {
        let msg = decode_v2(Serializer::Json, text.as_bytes()).unwrap();
        assert_eq!(msg, expected, "{text}");
        // Our JSON is compact, so it reproduces the example byte for byte.
        assert_eq!(std::str::from_utf8(&encode_v2(Serializer::Json, &msg)).unwrap(), text);
        let packed = encode_v2(Serializer::MsgPack, &msg);
        let back = decode_v2(Serializer::MsgPack, &packed).unwrap();
        assert_eq!(back, expected, "msgpack round trip of {text}");
        assert_eq!(encode_v2(Serializer::Json, &back), encode_v2(Serializer::Json, &msg));
    }
}

#[test]
fn parse_v2_accepts_only_router_bound_messages() {
    for (text, msg) in spec_examples() {
        let result = parse_v2(Serializer::Json, text.as_bytes());
        let router_bound = match msg {
            V2Msg::Hello { .. }
            | V2Msg::Abort { .. }
            | V2Msg::Goodbye { .. }
            | V2Msg::Publish { .. }
            | V2Msg::Subscribe { .. }
            | V2Msg::Unsubscribe { .. }
            | V2Msg::Call { .. }
            | V2Msg::Register { .. }
            | V2Msg::Unregister { .. }
            | V2Msg::Yield { .. } => true,
            V2Msg::Error { request_type, .. } => request_type == code::INVOCATION,
            _ => false,
        };
        match result {
            Ok(parsed) => assert!(router_bound, "{text} accepted: {parsed:?}"),
            Err(err) => {
                assert!(!router_bound, "{text}: {err}");
                assert!(matches!(err, WampError::UnexpectedType(_)));
                assert!(err.is_protocol_violation());
                assert_eq!(err.v2_error_uri(), "wamp.error.protocol_violation");
            }
        }
    }
}

#[test]
fn msgpack_bytes_are_the_canonical_encoding() {
    let msg = V2Msg::Unsubscribed { request: id(85_346_237) };
    let bytes = encode_v2(Serializer::MsgPack, &msg);
    assert_eq!(hex::encode(&bytes), "9223ce051647bd");
    assert_eq!(decode_v2(Serializer::MsgPack, &hex::decode("9223ce051647bd").unwrap()).unwrap(), msg);

    let value = Value::List(vec![
        Value::Null,
        Value::Bool(true),
        Value::from(-1i64),
        Value::from(-200i64),
        Value::from(u64::MAX),
        Value::from(i64::MIN),
        Value::from("é"),
        Value::Bin(vec![1, 2]),
        Value::Float(0.5),
        Value::Dict(Dict::new().with("k", 1u64)),
    ]);
    let expected = "9ac0c3ffd1ff38cfffffffffffffffffd38000000000000000a2c3a9c4020102cb3fe000000000000081a16b01";
    assert_eq!(hex::encode(value.to_msgpack()), expected);
    assert_eq!(Value::from_msgpack(&hex::decode(expected).unwrap()).unwrap(), value);
}

#[test]
fn msgpack_float32_widens_to_the_same_number() {
    // [1.5f32] as float32.
    let value = Value::from_msgpack(&hex::decode("91ca3fc00000").unwrap()).unwrap();
    assert_eq!(value, Value::List(vec![Value::Float(1.5)]));
}

#[test]
fn binary_crosses_serializers_by_the_wamp_convention() {
    // The example of WAMP2 "Binary conversion of JSON strings".
    let bytes = hex::decode("10e3ff9053075c526f5fc06d4fe37cdb").unwrap();
    let as_json = br#""\u0000EOP/kFMHXFJvX8BtT+N82w==""#;
    assert_eq!(&Value::Bin(bytes.clone()).to_json()[..], as_json);
    assert_eq!(Value::from_json(as_json).unwrap(), Value::Bin(bytes.clone()));

    // A MessagePack publisher's bin reaches a JSON subscriber as the convention's string...
    let args = vec![Value::Bin(bytes.clone()), Value::from("text")];
    let packed = encode_event_v2(Serializer::MsgPack, id(1), id(2), &Dict::new(), Some(&args), None);
    let Ok(V2Msg::Event { payload, .. }) = decode_v2(Serializer::MsgPack, &packed) else { panic!() };
    let text = encode_event_v2(Serializer::Json, id(1), id(2), &Dict::new(), payload.args.as_deref(), None);
    assert_eq!(json(&text), json(br#"[36,1,2,{},["\u0000EOP/kFMHXFJvX8BtT+N82w==","text"]]"#));
    // ...and comes back as bin.
    let Ok(V2Msg::Event { payload, .. }) = decode_v2(Serializer::Json, &text) else { panic!() };
    assert_eq!(payload.args, Some(args));

    // A NUL-led string that is not base64 stays text, so JSON relays never alter it.
    assert_eq!(Value::from_json(br#""\u0000not base64!""#).unwrap(), Value::from("\0not base64!"));
}

#[test]
fn event_encoded_once_matches_the_message_encoder() {
    let details = dict(r#"{"topic":"com.app.x"}"#);
    let args = list(r#"["Hello, world!", 1, {"a": null}]"#);
    let kwargs = dict(r#"{"color":"orange"}"#);
    let cases: [(Option<&[Value]>, Option<&Dict>); 4] =
        [(None, None), (Some(&args), None), (None, Some(&kwargs)), (Some(&args), Some(&kwargs))];
    for ser in Serializer::ALL {
        for (a, k) in cases {
            let once = encode_event_v2(ser, id(5_512_315_355), id(4_429_313_566), &details, a, k);
            let msg = V2Msg::Event {
                subscription: id(5_512_315_355),
                publication: id(4_429_313_566),
                details: details.clone(),
                payload: Payload { args: a.map(<[Value]>::to_vec), kwargs: k.cloned() },
            };
            let mut expected = msg.clone();
            if let V2Msg::Event { payload, .. } = &mut expected
                && payload.kwargs.is_some()
                && payload.args.is_none()
            {
                payload.args = Some(Vec::new());
            }
            assert_eq!(once, encode_v2(ser, &msg), "{ser:?}");
            assert_eq!(decode_v2(ser, &once).unwrap(), expected, "{ser:?}");
        }
    }
    let only_kwargs = encode_event_v2(Serializer::Json, id(1), id(2), &Dict::new(), None, Some(&kwargs));
    assert_eq!(&only_kwargs[..], br#"[36,1,2,{},[],{"color":"orange"}]"#);
}

#[test]
fn welcome_advertises_the_router_roles() {
    let msg = V2Msg::Welcome { session: id(9_129_137_332), details: welcome_details("herald") };
    let text = encode_v2(Serializer::Json, &msg);
    assert_eq!(
        json(&text),
        json(
            br#"[2,9129137332,{"roles":{
                "broker":{"features":{"publisher_exclusion":true,"subscriber_blackwhite_listing":true,"pattern_based_subscription":true,"event_retention":true,"event_history":true}},
                "dealer":{"features":{"call_timeout":true}}},
                "agent":"herald"}]"#
        )
    );
    let back = decode_v2(Serializer::MsgPack, &encode_v2(Serializer::MsgPack, &msg)).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn integers_keep_their_full_range() {
    let text = br#"[18446744073709551615,-9223372036854775808,9007199254740993,1.0,-0.5,1e300]"#;
    let value = Value::from_json(text).unwrap();
    assert_eq!(&value.to_json()[..], br#"[18446744073709551615,-9223372036854775808,9007199254740993,1.0,-0.5,1e300]"#);
    assert_eq!(Value::from_msgpack(&value.to_msgpack()).unwrap(), value);
    assert_eq!(value.as_list().unwrap()[0].as_u64(), Some(u64::MAX));
}

#[test]
fn strings_escape_and_survive() {
    let value = Value::List(vec![Value::from("quote\" backslash\\ nl\n tab\t ctl\u{1} uni é 😀")]);
    let text = value.to_json();
    assert_eq!(json(&text), serde_json::json!(["quote\" backslash\\ nl\n tab\t ctl\u{1} uni é 😀"]));
    assert_eq!(Value::from_json(&text).unwrap(), value);
}

#[test]
fn dict_keeps_order_and_replaces_in_place() {
    let mut d = Dict::new().with("b", 1u64).with("a", 2u64);
    d.insert("b", 3u64);
    let keys: Vec<&str> = d.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["b", "a"]);
    assert_eq!(d.get("b"), Some(&Value::from(3u64)));
    assert_eq!(d.remove("b"), Some(Value::from(3u64)));
    assert_eq!(d.len(), 1);
    assert!(d.get("b").is_none());
    assert!(!d.is_empty());
}

#[test]
fn serializers_and_subprotocols() {
    assert_eq!(Serializer::from_subprotocol("wamp.2.json"), Some(Serializer::Json));
    assert_eq!(Serializer::from_subprotocol("wamp.2.msgpack"), Some(Serializer::MsgPack));
    assert_eq!(Serializer::from_subprotocol("wamp.2.json.batched"), None);
    assert_eq!(Serializer::from_subprotocol("wamp"), None);
    assert!(Serializer::MsgPack.is_binary() && !Serializer::Json.is_binary());
}

#[test]
fn ids_span_one_to_two_pow_53() {
    assert_eq!(Id::new(0), None);
    assert_eq!(Id::new(1).map(Id::get), Some(1));
    assert_eq!(Id::new(1 << 53).map(Id::get), Some(9_007_199_254_740_992));
    assert_eq!(Id::new((1 << 53) + 1), None);
    assert_eq!(id(42).to_string(), "42");
}

#[test]
fn message_metadata() {
    let msg = V2Msg::Subscribe { request: id(7), options: Dict::new(), topic: "a".into() };
    assert_eq!((msg.type_code(), msg.name(), msg.request()), (32, "SUBSCRIBE", Some(id(7))));
    let hello = V2Msg::Hello { realm: "r".into(), details: Dict::new() };
    assert_eq!((hello.name(), hello.request()), ("HELLO", None));
}
