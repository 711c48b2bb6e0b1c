//! Fuzzes channel-name validation (`ChannelName::parse`) and what is derived from a valid name:
//! its kind, the `#server-to-user-` id, whether client events are allowed, and the server
//! frames that carry it, which must stay valid JSON.
#![no_main]

use herald_protocol::pusher::server_msg;
use herald_protocol::pusher::{Access, ChannelName};
use libfuzzer_sys::fuzz_target;

const SERVER_TO_USER: &str = "#server-to-user-";

fuzz_target!(|data: &[u8]| {
    let Some((&limit, rest)) = data.split_first() else { return };
    let Ok(name) = std::str::from_utf8(rest) else { return };
    for max in [usize::from(limit), 200, usize::MAX] {
        let Ok(channel) = ChannelName::parse(name, max) else { continue };
        assert_eq!(channel.as_str(), name);
        assert!(name.len() <= max, "a name longer than the limit was accepted");
        assert!(name.is_ascii(), "a non-ASCII name was accepted: {name:?}");
        let kind = channel.kind();
        assert_eq!(kind.access == Access::ServerToUser, name.starts_with(SERVER_TO_USER));
        assert_eq!(channel.server_to_user_id().is_some(), name.starts_with(SERVER_TO_USER));
        if name.starts_with('#') {
            assert!(name.starts_with(SERVER_TO_USER) && name.len() > SERVER_TO_USER.len());
        }
        if channel.allows_client_events() {
            assert!(matches!(kind.access, Access::Private | Access::Presence));
        }
        for frame in [
            server_msg::subscription_succeeded(name),
            server_msg::cache_miss(name),
            server_msg::member_removed(name, name),
        ] {
            if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&frame) {
                panic!("frame for channel {name:?} is not JSON: {e}");
            }
        }
    }
});
