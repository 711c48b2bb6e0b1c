//! Option dictionaries and URI checks: per-request ERRORs, not session aborts.

use super::*;
use crate::wamp::uri::{MatchPolicy, UriRule};

#[test]
fn subscribe_match_option() {
    let table = [
        ("{}", Some(MatchPolicy::Exact)),
        (r#"{"match":"exact"}"#, Some(MatchPolicy::Exact)),
        (r#"{"match":"prefix"}"#, Some(MatchPolicy::Prefix)),
        (r#"{"match":"wildcard","other":1}"#, Some(MatchPolicy::Wildcard)),
        (r#"{"match":"regex"}"#, None),
        (r#"{"match":1}"#, None),
    ];
    for (options, expected) in table {
        let got = SubscribeOptions::from_dict(&dict(options)).map(|o| o.policy);
        match expected {
            Some(policy) => assert_eq!(got.unwrap(), policy, "{options}"),
            None => {
                let err = got.unwrap_err();
                assert!(matches!(err, WampError::InvalidOption { option: "match", .. }));
                assert!(!err.is_protocol_violation());
                assert_eq!(err.v2_error_uri(), "wamp.error.invalid_argument");
            }
        }
    }
}

#[test]
fn publish_options_defaults_and_lists() {
    let defaults = PublishOptions::from_dict(&Dict::new()).unwrap();
    assert_eq!(defaults, PublishOptions::default());
    assert!(defaults.exclude_me && !defaults.acknowledge);

    let o = PublishOptions::from_dict(&dict(
        r#"{"acknowledge":true,"exclude_me":false,"exclude":[7891255],"eligible":[7891255,1245751],
            "exclude_authid":["bob"],"eligible_authrole":["manager"],"disclose_me":true}"#,
    ))
    .unwrap();
    assert!(o.acknowledge && !o.exclude_me);
    assert_eq!(o.exclude, vec![id(7_891_255)]);
    assert_eq!(o.eligible, Some(vec![id(7_891_255), id(1_245_751)]));
    assert_eq!(o.exclude_authid, vec!["bob".to_owned()]);
    assert_eq!(o.eligible_authrole, Some(vec!["manager".to_owned()]));
    assert_eq!(o.eligible_authid, None);

    for bad in [
        r#"{"acknowledge":1}"#,
        r#"{"exclude_me":"no"}"#,
        r#"{"exclude":7891255}"#,
        r#"{"exclude":["7891255"]}"#,
        r#"{"eligible":[0]}"#,
        r#"{"eligible_authid":[1]}"#,
    ] {
        let err = PublishOptions::from_dict(&dict(bad)).unwrap_err();
        assert!(matches!(err, WampError::InvalidOption { .. }), "{bad}: {err:?}");
    }
}

#[test]
fn publish_admits_by_black_and_white_lists() {
    let publisher = id(1);
    let opts = |json: &str| PublishOptions::from_dict(&dict(json)).unwrap();
    // (options, session, authid, authrole, admitted)
    type Row<'a> = (&'a str, u64, Option<&'a str>, Option<&'a str>, bool);
    let table: &[Row<'_>] = &[
        ("{}", 1, None, None, false),
        (r#"{"exclude_me":false}"#, 1, None, None, true),
        ("{}", 2, None, None, true),
        (r#"{"exclude":[2]}"#, 2, None, None, false),
        (r#"{"exclude":[2]}"#, 3, None, None, true),
        (r#"{"eligible":[2,3],"exclude":[2]}"#, 2, None, None, false),
        (r#"{"eligible":[2,3],"exclude":[2]}"#, 3, None, None, true),
        (r#"{"eligible":[2,3]}"#, 4, None, None, false),
        (r#"{"eligible":[]}"#, 2, None, None, false),
        (r#"{"exclude_authid":["bob"]}"#, 2, Some("bob"), None, false),
        (r#"{"exclude_authid":["bob"]}"#, 2, None, None, true),
        (r#"{"eligible_authid":["bob"]}"#, 2, None, None, false),
        (r#"{"eligible_authid":["bob"]}"#, 2, Some("bob"), None, true),
        (r#"{"eligible_authrole":["manager"]}"#, 2, Some("bob"), Some("staff"), false),
        (r#"{"eligible_authrole":["manager"]}"#, 2, Some("bob"), Some("manager"), true),
        (r#"{"exclude_authrole":["staff"]}"#, 2, None, Some("staff"), false),
    ];
    for &(json, session, authid, authrole, admitted) in table {
        assert_eq!(opts(json).admits(publisher, id(session), authid, authrole), admitted, "{json} -> {session}");
    }
}

#[test]
fn call_timeout_option() {
    let timeout = |json: &str| CallOptions::from_dict(&dict(json)).map(|o| o.timeout_ms);
    assert_eq!(timeout("{}").unwrap(), None);
    assert_eq!(timeout(r#"{"timeout":0}"#).unwrap(), None);
    assert_eq!(timeout(r#"{"timeout":5000}"#).unwrap(), Some(5000));
    assert!(matches!(timeout(r#"{"timeout":-1}"#), Err(WampError::InvalidOption { option: "timeout", .. })));
    assert!(matches!(timeout(r#"{"timeout":"5s"}"#), Err(WampError::InvalidOption { .. })));
}

#[test]
fn uri_checks_per_message() {
    let check = |text: &str, rule: UriRule| parse_v2(Serializer::Json, text.as_bytes()).unwrap().check_uris(rule);
    let ok = [
        r#"[1,"realm1",{}]"#,
        r#"[16,1,{},"com.myapp.mytopic1"]"#,
        r#"[32,1,{"match":"wildcard"},"com.myapp..userevent"]"#,
        r#"[32,1,{"match":"prefix"},"com.myapp."]"#,
        r#"[48,1,{},"com.myapp.ping"]"#,
        r#"[64,1,{},"com.myapp.ping"]"#,
        r#"[6,{},"wamp.close.goodbye_and_out"]"#,
        r#"[8,68,1,{},"com.myapp.error.x"]"#,
        r#"[34,1,2]"#,
    ];
    for text in ok {
        assert!(check(text, UriRule::Strict).is_ok(), "{text}");
    }
    let bad = [
        r#"[1,"",{}]"#,
        r#"[16,1,{},"com.myapp..x"]"#,
        r#"[32,1,{},"com.myapp..userevent"]"#,
        r#"[32,1,{"match":"prefix"},"com..myapp"]"#,
        r#"[48,1,{},"com.my app"]"#,
        r#"[64,1,{},"com.#"]"#,
        r#"[3,{},"not a uri"]"#,
    ];
    for text in bad {
        let err = check(text, UriRule::Loose).unwrap_err();
        assert!(matches!(err, WampError::InvalidUri { .. }), "{text}: {err:?}");
        assert_eq!(err.v2_error_uri(), "wamp.error.invalid_uri");
    }
    assert!(check(r#"[16,1,{},"com.MyApp"]"#, UriRule::Loose).is_ok());
    assert!(check(r#"[16,1,{},"com.MyApp"]"#, UriRule::Strict).is_err());
    assert!(matches!(
        check(r#"[32,1,{"match":"glob"},"a"]"#, UriRule::Loose),
        Err(WampError::InvalidOption { option: "match", .. })
    ));
}

#[test]
fn retention_options() {
    assert!(!SubscribeOptions::from_dict(&Dict::new()).unwrap().get_retained);
    assert!(!PublishOptions::from_dict(&Dict::new()).unwrap().retain);
    let sub = SubscribeOptions::from_dict(&dict(r#"{"get_retained":true,"match":"exact"}"#)).unwrap();
    assert!(sub.get_retained && sub.policy == MatchPolicy::Exact);
    assert!(PublishOptions::from_dict(&dict(r#"{"retain":true}"#)).unwrap().retain);
    let err = SubscribeOptions::from_dict(&dict(r#"{"get_retained":"yes"}"#)).unwrap_err();
    assert!(matches!(err, WampError::InvalidOption { option: "get_retained", .. }));
    let err = PublishOptions::from_dict(&dict(r#"{"retain":1}"#)).unwrap_err();
    assert!(matches!(err, WampError::InvalidOption { option: "retain", .. }));
}
