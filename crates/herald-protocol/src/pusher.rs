//! The Pusher Channels protocol v7 wire format, sans-IO.
//!
//! The public documents it follows, named by their titles in the Pusher Channels docs
//! (<https://pusher.com/docs/channels/>): "Pusher Channels Protocol" (frames, events, close and
//! error codes), "Channels" (naming), "Auth signatures", "Presence channels", "Client events",
//! "User authentication", "Cache channels" and the "HTTP API reference". Where the hosted
//! service or pusher-js does something the docs leave out, the item's comment says so.
//!
//! Owns decoding of client frames, encoding of server frames, channel-name rules, close codes,
//! and the HMAC signatures of socket auth and of the HTTP API. It must not do I/O, read the
//! clock or keep connection state: callers pass time, secrets and frames in.

pub mod channel_name;
pub mod client_msg;
pub mod close_code;
pub mod error;
pub mod rest_sign;
pub mod server_msg;
pub mod socket_auth;

mod field_reader;

pub use channel_name::{Access, ChannelKind, ChannelName};
pub use client_msg::{ClientMsg, parse_client_msg};
pub use close_code::CloseCode;
pub use error::ProtocolError;
pub use server_msg::EventData;

/// Whether `name` is an event name Pusher keeps for itself (`pusher:…`, `pusher_internal:…`):
/// one that no publisher from outside, a WAMP session for one, may send to Pusher clients.
pub fn is_reserved_event_name(name: &str) -> bool {
    name.starts_with("pusher:") || name.starts_with("pusher_internal:")
}

#[cfg(test)]
mod tests {
    #[test]
    fn pusher_keeps_its_own_prefixes() {
        assert!(super::is_reserved_event_name("pusher:subscription_succeeded"));
        assert!(super::is_reserved_event_name("pusher_internal:member_added"));
        assert!(!super::is_reserved_event_name("client-typing"));
        assert!(!super::is_reserved_event_name("OrderShipped"));
    }
}
