//! The wire formats herald speaks, one per kind of client.
//!
//! A type of its own, below everything that needs it: a connection has a wire, a publication is
//! encoded once per wire, the counters are labelled by wire. None of those modules has to import
//! another to name it.

use herald_protocol::wamp::Serializer;

/// The wire format a connection speaks; a publication is encoded once per format in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Wire {
    /// Pusher Channels protocol 7 JSON text frames.
    Pusher,
    /// WAMP v1 JSON arrays (subprotocol `wamp`).
    WampV1,
    /// WAMP v2 with this serializer.
    WampV2(Serializer),
}
