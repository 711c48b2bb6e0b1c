//! Fuzzes what a Pusher client can put in a text frame: `parse_client_msg`, then everything a
//! session does with the parsed fields before any hub state (channel names, presence
//! `channel_data`, sign-in `user_data`), and the server frames built from those fields, which
//! must always be valid JSON however hostile the strings inside them.
#![no_main]

use herald_protocol::pusher::client_msg::Recover;
use herald_protocol::pusher::server_msg::{self, EventData};
use herald_protocol::pusher::socket_auth::{parse_presence_member, parse_user_data};
use herald_protocol::pusher::{ChannelName, ClientMsg, parse_client_msg};
use libfuzzer_sys::fuzz_target;

/// herald's default `max_channel_name_length`.
const MAX_CHANNEL: usize = 200;

/// A frame herald writes must parse as JSON, or every client would choke on it.
/// herald writes these frames by hand (no serde on the publish path); serde_json is the oracle.
fn assert_json(frame: &[u8]) {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(frame) {
        panic!("server frame is not valid JSON ({e}): {:?}", String::from_utf8_lossy(frame));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = parse_client_msg(data) else { return };
    match msg {
        ClientMsg::Subscribe { channel, auth, channel_data, recover } => {
            let _ = ChannelName::parse(&channel, MAX_CHANNEL);
            // A recovering subscribe echoes the client's epoch in what herald answers.
            if let Some(Recover::From { epoch, serial }) = recover {
                assert_json(&server_msg::with_position(&server_msg::subscription_succeeded(&channel), &epoch, serial));
                assert_json(&server_msg::recovery_failed(&channel, "gap", &epoch, serial));
            }
            assert_json(&server_msg::subscription_error(&channel, 400, auth.as_deref().unwrap_or("")));
            if let Some(cd) = channel_data {
                if let Ok(member) = parse_presence_member(&cd) {
                    let info = member.user_info.as_deref();
                    assert_json(&server_msg::member_added(&channel, &member.user_id, info));
                    assert_json(&server_msg::presence_subscription_succeeded(
                        &channel,
                        [(member.user_id.as_str(), info)].into_iter(),
                    ));
                }
            }
        }
        ClientMsg::Unsubscribe { channel } => {
            let _ = ChannelName::parse(&channel, MAX_CHANNEL);
        }
        ClientMsg::Signin { auth, user_data } => {
            assert_json(&server_msg::error(Some(4009), &auth));
            if parse_user_data(&user_data).is_ok() {
                assert_json(&server_msg::signin_success(&user_data));
            }
        }
        ClientMsg::ClientEvent { event, channel, data } => {
            let _ = ChannelName::parse(&channel, MAX_CHANNEL);
            assert_json(&server_msg::event(&event, &channel, EventData::Raw(&data), Some(&event)));
        }
        ClientMsg::Other { event } => {
            assert_json(&server_msg::error(None, &format!("Unsupported event {event:?}")));
        }
        ClientMsg::Ping | ClientMsg::Pong => {}
    }
});
