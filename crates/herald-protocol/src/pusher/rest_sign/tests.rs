//! HTTP API signing tests: the published worked vector, the timestamp window, arrays.

use super::*;

// Worked vector of Pusher's HTTP API reference ("Authentication" section).
const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const TS: i64 = 1_353_088_179;
const BODY: &[u8] = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
const BODY_MD5: &str = "ec365a775a4cd0599faeb73354201b6f";
const SIGNATURE: &str = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";
const PATH: &str = "/apps/3/events";

fn secret_for(key: &str) -> Option<&'static str> {
    (key == KEY).then_some(SECRET)
}

fn vector_query(signature: &str) -> String {
    format!("auth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&body_md5={BODY_MD5}&auth_signature={signature}")
}

fn verify(method: &str, path: &str, query: &str, body: &[u8], now: i64) -> Result<QueryParams, RestAuthError> {
    verify_request(&RestRequest { method, path, query, body }, secret_for, now)
}

#[test]
fn worked_vector() {
    assert_eq!(body_md5_hex(BODY), BODY_MD5);
    let signed = sign_request("POST", PATH, &[], BODY, KEY, SECRET, TS);
    assert!(signed.ends_with(&format!("&auth_signature={SIGNATURE}")), "{signed}");
    let params = verify("POST", PATH, &vector_query(SIGNATURE), BODY, TS);
    assert_eq!(params.as_ref().ok().and_then(|p| p.get("auth_key")), Some(KEY));
    // Parameter order in the query does not matter, nor the method's case.
    let shuffled =
        format!("auth_signature={SIGNATURE}&body_md5={BODY_MD5}&auth_version=1.0&auth_timestamp={TS}&auth_key={KEY}");
    assert!(verify("post", PATH, &shuffled, BODY, TS).is_ok());
}

#[test]
fn every_single_bit_flip_fails() {
    for i in 0..SIGNATURE.len() {
        let mut sig = SIGNATURE.as_bytes().to_vec();
        sig[i] = if sig[i] == b'0' { b'1' } else { b'0' };
        let sig = String::from_utf8(sig).unwrap_or_default();
        let result = verify("POST", PATH, &vector_query(&sig), BODY, TS);
        assert!(matches!(result, Err(RestAuthError::BadSignature { .. })), "flip at {i} accepted");
    }
}

#[test]
fn signature_covers_method_path_and_params() {
    assert!(verify("GET", PATH, &vector_query(SIGNATURE), BODY, TS).is_err());
    assert!(verify("POST", "/apps/4/events", &vector_query(SIGNATURE), BODY, TS).is_err());
    let extra = format!("{}&info=user_count", vector_query(SIGNATURE));
    assert!(verify("POST", PATH, &extra, BODY, TS).is_err());
}

#[test]
fn bad_signature_message_like_hosted() {
    let err = verify("POST", PATH, &vector_query("abc"), BODY, TS).err();
    let expected_string =
        format!("POST\n{PATH}\nauth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&body_md5={BODY_MD5}");
    assert_eq!(
        err.as_ref().map(ToString::to_string),
        Some(format!(
            "Invalid signature: you should have sent HmacSHA256Hex({expected_string:?}, your_secret_key), but you sent \"abc\""
        ))
    );
    assert_eq!(err, Some(RestAuthError::BadSignature { string_to_sign: expected_string, sent: "abc".into() }));
}

#[test]
fn timestamp_window_is_599_not_600() {
    let query = vector_query(SIGNATURE);
    assert!(verify("POST", PATH, &query, BODY, TS + 599).is_ok());
    assert!(verify("POST", PATH, &query, BODY, TS - 599).is_ok());
    assert_eq!(
        verify("POST", PATH, &query, BODY, TS + 600).err(),
        Some(RestAuthError::TimestampExpired { given: TS, now: TS + 600 })
    );
    assert!(matches!(verify("POST", PATH, &query, BODY, TS - 600), Err(RestAuthError::TimestampExpired { .. })));
    assert!(matches!(verify("POST", PATH, &query, BODY, i64::MIN), Err(RestAuthError::TimestampExpired { .. })));
    let text = verify("POST", PATH, &query, BODY, TS + 600).err().map(|e| e.to_string());
    assert_eq!(
        text.as_deref(),
        Some("Timestamp expired: Given timestamp (1353088179) not within 600s of server time (1353088779)")
    );
}

#[test]
fn missing_and_bad_auth_params() {
    let full = vector_query(SIGNATURE);
    let without =
        |name: &str| full.split('&').filter(|p| !p.starts_with(&format!("{name}="))).collect::<Vec<_>>().join("&");
    for name in ["auth_key", "auth_timestamp", "auth_version", "auth_signature", "body_md5"] {
        assert_eq!(
            verify("POST", PATH, &without(name), BODY, TS).err(),
            Some(RestAuthError::MissingParam(match name {
                "auth_key" => "auth_key",
                "auth_timestamp" => "auth_timestamp",
                "auth_version" => "auth_version",
                "auth_signature" => "auth_signature",
                _ => "body_md5",
            })),
            "{name}"
        );
    }
    assert_eq!(
        verify("POST", PATH, &without("auth_timestamp"), BODY, TS).err().map(|e| e.to_string()).as_deref(),
        Some("Timestamp required")
    );
    let unknown = full.replace(KEY, "ffffffffffffffffffff");
    assert_eq!(verify("POST", PATH, &unknown, BODY, TS).err(), Some(RestAuthError::UnknownKey));
    let v2 = full.replace("auth_version=1.0", "auth_version=2.0");
    assert_eq!(verify("POST", PATH, &v2, BODY, TS).err(), Some(RestAuthError::UnsupportedVersion));
    let bad_ts = full.replace(&TS.to_string(), "soon");
    assert_eq!(verify("POST", PATH, &bad_ts, BODY, TS).err(), Some(RestAuthError::MalformedQuery));
    let twice = format!("{full}&auth_key={KEY}");
    assert_eq!(verify("POST", PATH, &twice, BODY, TS).err(), Some(RestAuthError::MalformedQuery));
    assert_eq!(verify("POST", PATH, &format!("{full}&x=%FF"), BODY, TS).err(), Some(RestAuthError::MalformedQuery));
}

#[test]
fn body_md5_must_match_the_body() {
    let query = vector_query(SIGNATURE);
    assert_eq!(verify("POST", PATH, &query, b"{}", TS).err(), Some(RestAuthError::BodyMd5Mismatch));
    assert_eq!(verify("POST", PATH, &query, b"", TS).err(), Some(RestAuthError::BodyMd5Mismatch));
    let upper = query.replace(BODY_MD5, &BODY_MD5.to_ascii_uppercase());
    assert!(verify("POST", PATH, &upper, BODY, TS).err().is_some_and(|e| e
        == RestAuthError::BadSignature {
            string_to_sign: format!(
                "POST\n{PATH}\nauth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&body_md5={}",
                BODY_MD5.to_ascii_uppercase()
            ),
            sent: SIGNATURE.into(),
        }));
}

#[test]
fn get_without_body_round_trips_with_decoding() {
    let extra = [("filter_by_prefix", "presence-"), ("info", "user_count,subscription_count"), ("q", "a b+c&d=é")];
    let query = sign_request("GET", "/apps/3/channels", &extra, b"", KEY, SECRET, TS);
    assert!(!query.contains("body_md5"));
    let params = verify("GET", "/apps/3/channels", &query, b"", TS + 10);
    assert!(params.is_ok(), "{params:?}");
    let params = params.unwrap_or_default();
    assert_eq!(params.get("filter_by_prefix"), Some("presence-"));
    assert_eq!(params.get("info"), Some("user_count,subscription_count"));
    assert_eq!(params.get("q"), Some("a b+c&d=é"));
    assert_eq!(params.get("missing"), None);
}

#[test]
fn plus_is_space_and_keys_are_lowercased() {
    // Signed over the decoded values: "a b" (the client wrote it as a+b).
    let string_to_sign = format!("GET\n/p\nauth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&name=a b");
    let sig = crate::pusher::socket_auth::sign(SECRET, &string_to_sign);
    let query = format!("Name=a+b&auth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&auth_signature={sig}");
    let params = verify("GET", "/p", &query, b"", TS);
    assert_eq!(params.ok().and_then(|p| p.get("name").map(str::to_owned)).as_deref(), Some("a b"));
}

#[test]
fn array_params_in_both_forms() {
    let base = format!("auth_key={KEY}&auth_timestamp={TS}&auth_version=1.0");
    // Ruby gem form: signed as sent, sorted under the bare key.
    let query = sign_request("GET", "/p", &[("info[]", "b"), ("info[]", "a")], b"", KEY, SECRET, TS);
    let params = verify("GET", "/p", &query, b"", TS);
    assert_eq!(
        params.map(|p| p.get_all("info").map(str::to_owned).collect::<Vec<_>>()),
        Ok(vec!["b".into(), "a".into()])
    );
    let gem = format!("GET\n/p\n{base}&info[]=b&info[]=a");
    assert_eq!(
        crate::pusher::socket_auth::sign(SECRET, &gem),
        query.rsplit_once("auth_signature=").map(|(_, s)| s.to_owned()).unwrap_or_default()
    );

    // PHP/Node form: repeated keys (with or without brackets) signed comma-joined.
    for sent in ["info[]=b&info[]=a", "info=b&info=a"] {
        let sig = crate::pusher::socket_auth::sign(SECRET, &format!("GET\n/p\n{base}&info=b,a"));
        let query = format!("{sent}&{base}&auth_signature={sig}");
        assert!(verify("GET", "/p", &query, b"", TS).is_ok(), "{sent}");
    }
}

#[test]
fn comma_form_only_when_arrays_present() {
    assert_eq!(comma_joined_query(&[("a", "1"), ("b", "2")]), None);
    assert_eq!(comma_joined_query(&[("b", "2"), ("a[]", "1")]).as_deref(), Some("a=1&b=2"));
    assert_eq!(canonical_query(&[("b", "2"), ("a[]", "1"), ("a[]", "0")]), "a[]=1&a[]=0&b=2");
}
