use super::*;

/// Recognises the expected error.
type Check = fn(&WampError) -> bool;

fn raw(json: &str) -> RawJson {
    RawJson::from_slice(json.as_bytes()).unwrap()
}

fn publish(frame: &str) -> V1Publish {
    match parse_v1(frame.as_bytes()).unwrap() {
        V1ClientMsg::Publish(p) => p,
        other => panic!("{frame}: {other:?}"),
    }
}

#[test]
fn client_messages_from_the_spec() {
    let table: Vec<(&str, V1ClientMsg)> = vec![
        (
            r#"[1,"calc","http://example.com/simple/calc#"]"#,
            V1ClientMsg::Prefix { prefix: "calc".into(), uri: "http://example.com/simple/calc#".into() },
        ),
        (
            r#"[2,"7DK6TdN4wLiUJgNM","http://example.com/api#howdy"]"#,
            V1ClientMsg::Call {
                call_id: CallId::Str("7DK6TdN4wLiUJgNM".into()),
                proc_uri: "http://example.com/api#howdy".into(),
                args: vec![],
            },
        ),
        (
            r#"[2,"Yp9EFZt9DFkuKndg","api:add2",23,99]"#,
            V1ClientMsg::Call {
                call_id: CallId::Str("Yp9EFZt9DFkuKndg".into()),
                proc_uri: "api:add2".into(),
                args: vec![raw("23"), raw("99")],
            },
        ),
        (
            r#"[2, 17, "p", {"a": [1, 2]}, null]"#,
            V1ClientMsg::Call {
                call_id: CallId::Num(17.into()),
                proc_uri: "p".into(),
                args: vec![raw(r#"{"a": [1, 2]}"#), raw("null")],
            },
        ),
        (r#"[5,"oro/email_event/7/1"]"#, V1ClientMsg::Subscribe { topic: "oro/email_event/7/1".into() }),
        (r#"[5,"newNotification","ignored"]"#, V1ClientMsg::Subscribe { topic: "newNotification".into() }),
        (r#"[5,12]"#, V1ClientMsg::Subscribe { topic: "12".into() }),
        (r#"[6,"recordUpdate.Account.a1"]"#, V1ClientMsg::Unsubscribe { topic: "recordUpdate.Account.a1".into() }),
        // PHP's loose switch: numeric strings and whole floats select the type too.
        (r#"["5","t"]"#, V1ClientMsg::Subscribe { topic: "t".into() }),
        (r#"[" 6 ","t"]"#, V1ClientMsg::Unsubscribe { topic: "t".into() }),
        (r#"[5.0,"t"]"#, V1ClientMsg::Subscribe { topic: "t".into() }),
    ];
    for (frame, expected) in table {
        assert_eq!(parse_v1(frame.as_bytes()).unwrap(), expected, "{frame}");
    }
}

#[test]
fn publish_forms() {
    // Espo's keepalive (`client/src/web-socket-manager.js` publishes it).
    let p = publish(r#"[7,"",""]"#);
    assert_eq!((p.topic.as_str(), p.event.get()), ("", r#""""#));
    assert!(!p.exclude_me && p.exclude.is_empty() && p.eligible.is_none());

    // Oro's backend form (its PHP `WampClient` publishes it): empty lists mean everybody.
    let p = publish(r#"[7,"oro/data/update",[{"username":null,"tagname":"x"}],[],[]]"#);
    assert_eq!(p.event.get(), r#"[{"username":null,"tagname":"x"}]"#);
    assert!(!p.exclude_me && p.exclude.is_empty() && p.eligible.is_none());

    let p = publish(r#"[7,"t",null,true]"#);
    assert!(p.exclude_me && p.exclude.is_empty());
    assert_eq!(p.event.get(), "null");

    for (slot3, exclude_me) in [
        ("false", false),
        ("0", false),
        ("0.0", false),
        (r#""""#, false),
        (r#""0""#, false),
        ("null", false),
        ("1", true),
        (r#""yes""#, true),
        ("-2.5", true),
    ] {
        let p = publish(&format!(r#"[7,"t",1,{slot3}]"#));
        assert_eq!(p.exclude_me, exclude_me, "slot 3 = {slot3}");
    }

    let p = publish(r#"[7,"t",{"a":1},["s1",2,null,{"x":1}],["s3"]]"#);
    assert!(!p.exclude_me);
    assert_eq!(p.exclude, vec!["s1".to_owned(), "2".to_owned()]);
    assert_eq!(p.eligible, Some(vec!["s3".to_owned()]));

    // A JSON object decodes to a PHP array: its values are the list.
    let p = publish(r#"[7,"t",1,{"k":"s1"},{}]"#);
    assert_eq!(p.exclude, vec!["s1".to_owned()]);
    assert_eq!(p.eligible, None);
}

#[test]
fn publish_admits_like_topic_broadcast() {
    // Three subscribers a, b, c; publisher a.
    let cases: &[(&str, [bool; 3])] = &[
        (r#"[7,"t",1]"#, [true, true, true]),
        (r#"[7,"t",1,true]"#, [false, true, true]),
        (r#"[7,"t",1,["b"]]"#, [true, false, true]),
        (r#"[7,"t",1,[],["c"]]"#, [false, false, true]),
        (r#"[7,"t",1,[],[]]"#, [true, true, true]),
        (r#"[7,"t",1,["c"],["a","c"]]"#, [true, false, false]),
    ];
    for (frame, expected) in cases {
        let p = publish(frame);
        let got = ["a", "b", "c"].map(|s| p.admits("a", s));
        assert_eq!(&got, expected, "{frame}");
    }
}

#[test]
fn malformed_frames_close_with_1007() {
    let table: &[(&[u8], Check)] = &[
        (b"", |e| matches!(e, WampError::InvalidJson(_))),
        (b"[5,\"t\"", |e| matches!(e, WampError::InvalidJson(_))),
        (b"[5,\"t\"] x", |e| matches!(e, WampError::InvalidJson(_))),
        (b"[5,\"\xff\"]", |e| matches!(e, WampError::InvalidJson(_))),
        (b"{\"0\":5}", |e| matches!(e, WampError::NotArray)),
        (b"null", |e| matches!(e, WampError::NotArray)),
        (b"\"[5]\"", |e| matches!(e, WampError::NotArray)),
        (b"[]", |e| matches!(e, WampError::EmptyArray)),
        (b"[9,\"t\"]", |e| matches!(e, WampError::UnknownType(9))),
        (b"[18446744073709551616,\"t\"]", |e| matches!(e, WampError::UnknownType(_) | WampError::BadTypeCode)),
        (b"[1e400,\"t\"]", |e| matches!(e, WampError::BadTypeCode)),
        (b"[-5,\"t\"]", |e| matches!(e, WampError::BadTypeCode)),
        (b"[5.5,\"t\"]", |e| matches!(e, WampError::BadTypeCode)),
        (b"[\"five\",\"t\"]", |e| matches!(e, WampError::BadTypeCode)),
        (b"[\"inf\",\"t\"]", |e| matches!(e, WampError::BadTypeCode)),
        (b"[true,\"p\",\"u\"]", |e| matches!(e, WampError::BadTypeCode)),
        (b"[null]", |e| matches!(e, WampError::BadTypeCode)),
        (b"[0,\"sid\",1]", |e| matches!(e, WampError::UnexpectedType(0))),
        (b"[8,\"t\",1]", |e| matches!(e, WampError::UnexpectedType(8))),
        (b"[5]", |e| matches!(e, WampError::WrongArity { message: "SUBSCRIBE", len: 1 })),
        (b"[5,{}]", |e| matches!(e, WampError::WrongType { index: 1, .. })),
        (b"[5,[\"t\"]]", |e| matches!(e, WampError::WrongType { index: 1, .. })),
        (b"[6,null]", |e| matches!(e, WampError::WrongType { index: 1, .. })),
        (b"[1,\"p\"]", |e| matches!(e, WampError::WrongArity { message: "PREFIX", .. })),
        (b"[1,\"p\",5]", |e| matches!(e, WampError::WrongType { index: 2, .. })),
        (b"[2,\"id\"]", |e| matches!(e, WampError::WrongArity { message: "CALL", .. })),
        (b"[2,true,\"p\"]", |e| matches!(e, WampError::WrongType { index: 1, .. })),
        (b"[2,\"id\",[]]", |e| matches!(e, WampError::WrongType { index: 2, .. })),
        (b"[7,\"t\"]", |e| matches!(e, WampError::WrongArity { message: "PUBLISH", .. })),
        (b"[7,\"t\",1,[],\"x\"]", |e| matches!(e, WampError::WrongType { index: 4, .. })),
        (b"[7,\"t\",1,[],null]", |e| matches!(e, WampError::WrongType { index: 4, .. })),
    ];
    for (frame, check) in table {
        let err = parse_v1(frame).unwrap_err();
        assert!(check(&err), "{}: {err:?}", String::from_utf8_lossy(frame));
        assert_eq!(err.v1_close_code(), 1007);
    }
}

#[test]
fn deep_payloads_pass_through_without_recursion() {
    // The event stays raw text: serde_json skips over it without recursing, so depth costs no
    // stack, and the bytes go out unchanged.
    let depth = 200_000;
    let event = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let p = publish(&format!("[7,\"t\",{event}]"));
    assert_eq!(p.event.get(), event);
}

#[test]
fn curie_resolution_ratchet() {
    let mut prefixes = Prefixes::new(CurieRule::Ratchet);
    assert_eq!(prefixes.resolve("calc:square"), "calc:square", "nothing declared yet");
    prefixes.insert("calc".into(), "http://example.com/simple/calc#".into()).unwrap();
    prefixes.insert("espo".into(), "urn:espo".into()).unwrap();
    let table = [
        ("calc:square", "http://example.com/simple/calc##square"),
        ("calc:a:b", "http://example.com/simple/calc##a"),
        ("calc:", "http://example.com/simple/calc##"),
        ("espo:newNotification", "urn:espo#newNotification"),
        ("other:square", "other:square"),
        ("calc", "calc"),
        ("http://example.com/simple/calc#square", "http://example.com/simple/calc#square"),
        ("calc:x?next=https://y", "calc:x?next=https://y"),
        ("calc:x?next=httpsss://y", "calc:x?next=httpsss://y"),
        ("calc:HTTP://y", "http://example.com/simple/calc##HTTP"),
        ("newNotification", "newNotification"),
    ];
    for (uri, expected) in table {
        assert_eq!(prefixes.resolve(uri), expected, "{uri}");
    }
}

#[test]
fn curie_resolution_spec() {
    let mut prefixes = Prefixes::new(CurieRule::Spec);
    prefixes.insert("calc".into(), "http://example.com/simple/calc#".into()).unwrap();
    prefixes.insert("http".into(), "never-used".into()).unwrap();
    let table = [
        ("calc:square", "http://example.com/simple/calc#square"),
        ("calc:a:b", "http://example.com/simple/calc#a:b"),
        ("other:square", "other:square"),
        ("http://example.com/x", "http://example.com/x"),
    ];
    for (uri, expected) in table {
        assert_eq!(prefixes.resolve(uri), expected, "{uri}");
    }
}

#[test]
fn prefix_then_subscribe_resolves_the_topic() {
    let mut prefixes = Prefixes::default();
    let frames = [r#"[1,"t","http://herald.test/topic"]"#, r#"[5,"t:news"]"#, r#"[7,"t:news",1,true]"#];
    let out: Vec<_> = frames.iter().map(|f| prefixes.apply(parse_v1(f.as_bytes()).unwrap()).unwrap()).collect();
    assert_eq!(out[0], None);
    assert_eq!(out[1], Some(V1ClientMsg::Subscribe { topic: "http://herald.test/topic#news".into() }));
    assert!(matches!(&out[2], Some(V1ClientMsg::Publish(p)) if p.topic == "http://herald.test/topic#news"));
}

#[test]
fn prefix_table_is_bounded() {
    let mut prefixes = Prefixes::with_limit(CurieRule::Ratchet, 2);
    prefixes.insert("a".into(), "1".into()).unwrap();
    prefixes.insert("b".into(), "2".into()).unwrap();
    prefixes.insert("a".into(), "3".into()).unwrap();
    let err = prefixes.insert("c".into(), "4".into()).unwrap_err();
    assert!(matches!(err, WampError::TooManyPrefixes { limit: 2 }));
    assert_eq!(prefixes.len(), 2);
    assert_eq!(prefixes.resolve("a:x"), "3#x");
}

#[test]
fn server_frames_are_byte_exact() {
    assert_eq!(&welcome("5f3a9c", Some(RATCHET_SERVER_IDENT))[..], br#"[0,"5f3a9c",1,"Ratchet/0.4.4"]"#);
    assert_eq!(&welcome("5f3a9c", None)[..], br#"[0,"5f3a9c",1]"#);
    let id = CallId::Str("Yp9E".into());
    assert_eq!(&call_result(&id, &raw("[1,2]"))[..], br#"[3,"Yp9E",[1,2]]"#);
    assert_eq!(&call_result(&CallId::Num(7.into()), &raw("null"))[..], br#"[3,7,null]"#);
    assert_eq!(
        &call_error(&id, "api:add2", "You are not allowed to make calls", None)[..],
        br#"[4,"Yp9E","api:add2","You are not allowed to make calls"]"#
    );
    assert_eq!(
        &call_error(&id, "oro/x", "", Some(&raw(r#"{"code":500}"#)))[..],
        br#"[4,"Yp9E","oro/x","",{"code":500}]"#
    );
    assert_eq!(
        &encode_event_v1("oro/ping", &raw(r#""Connection keep alive""#))[..],
        br#"[8,"oro/ping","Connection keep alive"]"#
    );
    assert_eq!(&encode_event_v1("a\"b", &raw("null"))[..], br#"[8,"a\"b",null]"#);
}

#[test]
fn event_carries_the_published_payload_verbatim() {
    let p = publish(r#"[7, "streamUpdate.Account.a1", {"createdById": "u1", "pin": false} , true]"#);
    let frame = encode_event_v1(&p.topic, &p.event);
    assert_eq!(&frame[..], br#"[8,"streamUpdate.Account.a1",{"createdById": "u1", "pin": false}]"#);
    let back: serde_json::Value = serde_json::from_slice(&frame).unwrap();
    assert_eq!(back[2]["createdById"], "u1");
}

#[test]
fn server_frames_round_trip_through_the_client_parser() {
    let id = CallId::Str("c1".into());
    let table = [
        (
            welcome("sid", Some("Ratchet/0.4.4")),
            V1ServerMsg::Welcome {
                session_id: "sid".into(),
                protocol_version: 1,
                server_ident: Some("Ratchet/0.4.4".into()),
            },
        ),
        (
            welcome("sid", None),
            V1ServerMsg::Welcome { session_id: "sid".into(), protocol_version: 1, server_ident: None },
        ),
        (call_result(&id, &raw("42")), V1ServerMsg::CallResult { call_id: id.clone(), result: raw("42") }),
        (
            call_error(&id, "e", "d", Some(&raw("[1]"))),
            V1ServerMsg::CallError {
                call_id: id.clone(),
                error_uri: "e".into(),
                desc: "d".into(),
                details: Some(raw("[1]")),
            },
        ),
        (encode_event_v1("t", &raw("{}")), V1ServerMsg::Event { topic: "t".into(), event: raw("{}") }),
    ];
    for (frame, expected) in table {
        assert_eq!(parse_v1_server(&frame).unwrap(), expected);
    }
    assert!(matches!(parse_v1_server(br#"[5,"t"]"#), Err(WampError::UnexpectedType(5))));
}
