//! Fuzzes the signed JSON a client hands over: presence `channel_data`
//! (`parse_presence_member`) and sign-in `user_data` (`parse_user_data`), the signature checks
//! that cover them, and the presence and sign-in frames built from what they yield.
//!
//! Input layout: byte 0 picks the parser (even: channel_data, odd: user_data), the rest is the
//! JSON text.
#![no_main]

use herald_protocol::pusher::server_msg;
use herald_protocol::pusher::socket_auth::{
    self, MAX_USER_ID_LEN, parse_presence_member, parse_user_data, verify_channel_auth, verify_signin,
};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "fuzz-key";
const SECRET: &str = "fuzz-secret";
const SOCKET: &str = "123.456";

fn assert_json(frame: &[u8]) {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(frame) {
        panic!("server frame is not valid JSON ({e}): {:?}", String::from_utf8_lossy(frame));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    // The text doubles as a forged `auth` value: it must be refused, never panic.
    let _ = verify_channel_auth(KEY, SECRET, SOCKET, "presence-fuzz", Some(text), text);
    let _ = verify_signin(KEY, SECRET, SOCKET, text, text);
    if which % 2 == 0 {
        let good = socket_auth::channel_auth(KEY, SECRET, SOCKET, "presence-fuzz", Some(text));
        assert!(verify_channel_auth(KEY, SECRET, SOCKET, "presence-fuzz", Some(text), &good).is_ok());
        if let Ok(member) = parse_presence_member(text) {
            assert!(!member.user_id.is_empty());
            assert!(member.user_id.chars().count() <= MAX_USER_ID_LEN);
            let info = member.user_info.as_deref();
            assert_json(&server_msg::member_added("presence-fuzz", &member.user_id, info));
            assert_json(&server_msg::member_removed("presence-fuzz", &member.user_id));
            assert_json(&server_msg::presence_subscription_succeeded(
                "presence-fuzz",
                [(member.user_id.as_str(), info)].into_iter(),
            ));
        }
    } else {
        let good = socket_auth::signin_auth(KEY, SECRET, SOCKET, text);
        assert!(verify_signin(KEY, SECRET, SOCKET, text, &good).is_ok());
        if let Ok(user) = parse_user_data(text) {
            assert!(!user.id.is_empty());
            assert_json(&server_msg::signin_success(text));
            let ids: Vec<&str> = user.watchlist.iter().map(String::as_str).collect();
            assert_json(&server_msg::watchlist_events(&[("online", &ids), ("offline", &ids)]));
        }
    }
});
