//! WAMP wire formats: v1 as Ratchet 0.4 / AutobahnJS 0.8 speak it, and the v2 Basic Profile in
//! JSON and MessagePack. Sans-IO: frames in, typed messages out, `Bytes` back; no session state
//! beyond the v1 CURIE table, no clock, no randomness (ids are chosen by the caller).
//!
//! Layout:
//! - [`uri`]: v2 URI rules and the subscription match policies (exact / prefix / wildcard).
//! - [`v1`]: the nine v1 message types, [`Prefixes`] (CURIE resolution), v1 encoders.
//! - [`v2`]: [`V2Msg`], the opaque payload [`Value`], serializers, option dictionaries.
//! - [`WampError`]: every rejection, with what a v1 or v2 adapter must do about it.
//!
//! "The WAMP v1 spec" is the archived <http://wamp.ws/spec/wamp1/> page; "WAMP2" is the Basic
//! Profile text of wamp-proto/wamp-proto (`rfc/text/basic/*`). Ratchet's behaviour is that of
//! ratchetphp/Ratchet 0.4.4, `src/Ratchet/Wamp/*`.

pub mod auth;
mod error;
pub mod uri;
pub mod v1;
pub mod v2;

pub use error::{V1_CLOSE_CODE, WampError};
pub use v1::{Prefixes, V1ClientMsg, encode_event_v1, parse_v1};
pub use v2::{Serializer, V2Msg, Value, encode_event_v2, encode_v2, parse_v2};
