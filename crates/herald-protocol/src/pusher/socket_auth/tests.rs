//! Socket signature tests: the published vectors, bit flips, presence and user data.

use super::*;

// The vectors published in Pusher's "Auth signatures" docs. The presence vector signs
// "Mr. Pusher": the page prints "Mr. Channels", but the published digest is over "Mr. Pusher"
// (as every client library's test of this vector has it).
const KEY: &str = "278d425bdf160c739803";
const SECRET: &str = "7ad3773142a6692b25b8";
const SOCKET: &str = "1234.1234";
const PRIVATE_SIG: &str = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
const PRESENCE_DATA: &str = r#"{"user_id":10,"user_info":{"name":"Mr. Pusher"}}"#;
const PRESENCE_SIG: &str = "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c";
const USER_DATA: &str = r#"{"id":"12345"}"#;
const SIGNIN_SIG: &str = "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba";

/// Flips the lowest bit of the hex digit at `i`.
fn flip_bit(sig: &str, i: usize) -> String {
    let mut bytes = sig.as_bytes().to_vec();
    let digit = u8::from_str_radix(&sig[i..=i], 16).unwrap_or(0) ^ 1;
    bytes[i] = b"0123456789abcdef"[usize::from(digit)];
    String::from_utf8(bytes).unwrap_or_default()
}

#[test]
fn published_vectors_sign() {
    assert_eq!(sign(SECRET, "1234.1234:private-foobar"), PRIVATE_SIG);
    assert_eq!(sign(SECRET, &format!("1234.1234:presence-foobar:{PRESENCE_DATA}")), PRESENCE_SIG);
    assert_eq!(sign(SECRET, "1234.1234::user::{\"id\":\"12345\"}"), SIGNIN_SIG);
    assert_eq!(channel_auth(KEY, SECRET, SOCKET, "private-foobar", None), format!("{KEY}:{PRIVATE_SIG}"));
    assert_eq!(signin_auth(KEY, SECRET, SOCKET, USER_DATA), format!("{KEY}:{SIGNIN_SIG}"));
}

#[test]
fn published_vectors_verify() {
    let private = format!("{KEY}:{PRIVATE_SIG}");
    assert_eq!(verify_channel_auth(KEY, SECRET, SOCKET, "private-foobar", None, &private), Ok(()));
    let presence = format!("{KEY}:{PRESENCE_SIG}");
    assert_eq!(verify_channel_auth(KEY, SECRET, SOCKET, "presence-foobar", Some(PRESENCE_DATA), &presence), Ok(()));
    assert_eq!(verify_signin(KEY, SECRET, SOCKET, USER_DATA, &format!("{KEY}:{SIGNIN_SIG}")), Ok(()));
    // Upper-case hex is the same signature.
    let upper = format!("{KEY}:{}", PRIVATE_SIG.to_ascii_uppercase());
    assert_eq!(verify_channel_auth(KEY, SECRET, SOCKET, "private-foobar", None, &upper), Ok(()));
}

#[test]
fn every_single_bit_flip_fails() {
    for i in 0..PRIVATE_SIG.len() {
        let auth = format!("{KEY}:{}", flip_bit(PRIVATE_SIG, i));
        let result = verify_channel_auth(KEY, SECRET, SOCKET, "private-foobar", None, &auth);
        assert!(matches!(result, Err(AuthError::BadSignature { .. })), "bit flip at {i} accepted");
    }
    let auth = format!("{KEY}:{}", flip_bit(SIGNIN_SIG, 63));
    assert!(matches!(verify_signin(KEY, SECRET, SOCKET, USER_DATA, &auth), Err(AuthError::BadSignature { .. })));
}

#[test]
fn anything_else_signed_fails() {
    let private = format!("{KEY}:{PRIVATE_SIG}");
    for (socket, channel) in [("1234.1235", "private-foobar"), (SOCKET, "private-foobaz")] {
        assert!(verify_channel_auth(KEY, SECRET, socket, channel, None, &private).is_err());
    }
    assert!(verify_channel_auth(KEY, "other-secret", SOCKET, "private-foobar", None, &private).is_err());
    // The presence signature covers channel_data byte for byte.
    let presence = format!("{KEY}:{PRESENCE_SIG}");
    let reformatted = r#"{"user_id": 10,"user_info":{"name":"Mr. Pusher"}}"#;
    assert!(verify_channel_auth(KEY, SECRET, SOCKET, "presence-foobar", Some(reformatted), &presence).is_err());
    assert!(verify_channel_auth(KEY, SECRET, SOCKET, "presence-foobar", None, &presence).is_err());
}

#[test]
fn auth_format_errors() {
    let check = |auth: &str| verify_channel_auth(KEY, SECRET, SOCKET, "private-foobar", None, auth);
    assert_eq!(check(""), Err(AuthError::Missing));
    assert_eq!(check(PRIVATE_SIG), Err(AuthError::Malformed));
    assert_eq!(check(&format!("278d425bdf160c739804:{PRIVATE_SIG}")), Err(AuthError::WrongKey));
    assert_eq!(check(&format!(":{PRIVATE_SIG}")), Err(AuthError::WrongKey));
    for bad in ["", "zz", &PRIVATE_SIG[..62], &format!("{PRIVATE_SIG}00"), &format!("{PRIVATE_SIG}:x")] {
        assert!(matches!(check(&format!("{KEY}:{bad}")), Err(AuthError::BadSignature { .. })), "{bad:?}");
    }
}

#[test]
fn bad_signature_message_like_hosted() {
    let auth = format!("{KEY}:{}", "0".repeat(64));
    let err = verify_channel_auth(KEY, SECRET, SOCKET, "private-foobar", None, &auth).err();
    assert_eq!(
        err.map(|e| e.to_string()),
        Some(format!("Invalid signature: Expected HMAC SHA256 hex digest of 1234.1234:private-foobar, but got {auth}"))
    );
    let err = verify_signin(KEY, SECRET, SOCKET, USER_DATA, &auth).err();
    assert!(matches!(err, Some(AuthError::BadSignature { ref expected_string, .. })
        if expected_string == "1234.1234::user::{\"id\":\"12345\"}"));
}

#[test]
fn presence_member_parsing() {
    let m = parse_presence_member(PRESENCE_DATA);
    assert_eq!(m.as_ref().map(|m| m.user_id.as_str()).ok(), Some("10"));
    assert_eq!(m.as_ref().ok().and_then(|m| m.user_info.as_ref()).map(|i| i.get()), Some(r#"{"name":"Mr. Pusher"}"#));
    let m = parse_presence_member(r#"{"user_id":"abc"}"#);
    assert!(matches!(m, Ok(PresenceMember { ref user_id, user_info: None }) if user_id == "abc"));
    let m = parse_presence_member(r#"{"user_id":"abc","user_info":null}"#);
    assert!(matches!(m, Ok(PresenceMember { user_info: None, .. })));
    // Beyond 2^53 digits survive, negative integers are ids too.
    let m = parse_presence_member(r#"{"user_id":12345678901234567890123}"#);
    assert_eq!(m.map(|m| m.user_id).ok().as_deref(), Some("12345678901234567890123"));
    assert_eq!(parse_presence_member(r#"{"user_id":-3}"#).map(|m| m.user_id).ok().as_deref(), Some("-3"));

    let max = format!(r#"{{"user_id":"{}"}}"#, "é".repeat(128));
    assert!(parse_presence_member(&max).is_ok());
    let table = [
        ("not json", ProtocolError::NotJson),
        ("[]", ProtocolError::NotAnObject),
        (r#"{"user_info":{}}"#, ProtocolError::MissingField("user_id")),
        (r#"{"user_id":null}"#, ProtocolError::MissingField("user_id")),
        (r#"{"user_id":1.5}"#, ProtocolError::WrongType("user_id")),
        (r#"{"user_id":1e3}"#, ProtocolError::WrongType("user_id")),
        (r#"{"user_id":true}"#, ProtocolError::WrongType("user_id")),
        (r#"{"user_id":{}}"#, ProtocolError::WrongType("user_id")),
        (r#"{"user_id":""}"#, ProtocolError::EmptyField("user_id")),
    ];
    for (input, expected) in table {
        assert_eq!(parse_presence_member(input).err(), Some(expected), "{input}");
    }
    let long = format!(r#"{{"user_id":"{}"}}"#, "a".repeat(129));
    assert_eq!(parse_presence_member(&long).err(), Some(ProtocolError::UserIdTooLong { len: 129, max: 128 }));
}

#[test]
fn user_data_parsing() {
    assert_eq!(parse_user_data(USER_DATA), Ok(UserData { id: "12345".into(), watchlist: vec![] }));
    assert_eq!(
        parse_user_data(r#"{"id":"a","name":"x","watchlist":["b",7,"c"]}"#),
        Ok(UserData { id: "a".into(), watchlist: vec!["b".into(), "7".into(), "c".into()] })
    );
    assert_eq!(parse_user_data(r#"{"id":"a","watchlist":null}"#).map(|u| u.watchlist.len()), Ok(0));
    let table = [
        ("{", ProtocolError::NotJson),
        ("\"x\"", ProtocolError::NotAnObject),
        ("{}", ProtocolError::MissingField("id")),
        (r#"{"id":12345}"#, ProtocolError::WrongType("id")),
        (r#"{"id":""}"#, ProtocolError::EmptyField("id")),
        (r#"{"id":"a","watchlist":"b"}"#, ProtocolError::WrongType("watchlist")),
        (r#"{"id":"a","watchlist":[null]}"#, ProtocolError::WrongType("watchlist")),
        (r#"{"id":"a","watchlist":[["b"]]}"#, ProtocolError::WrongType("watchlist")),
    ];
    for (input, expected) in table {
        assert_eq!(parse_user_data(input).err(), Some(expected), "{input}");
    }
}
