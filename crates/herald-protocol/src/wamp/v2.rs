//! WAMP v2 Basic Profile on the router side (WAMP2 `messages.md`): the two serializers,
//! parsing what clients send, encoding what the router sends, and the WELCOME role
//! announcement. Broker and dealer logic (subscription index, call routing, timeouts) live in
//! the core; this module only knows bytes and messages.
//!
//! Modules, each using only those listed before it: `value` ([`Value`], [`Dict`]), `msg`
//! ([`V2Msg`], [`Id`], [`Payload`], the type [`code`]s), `options` (the `*Options` checks),
//! `layout` (messages to and from array elements) and the serializers `json` and `msgpack`, which
//! also define `Value`'s own JSON and MessagePack methods.

mod json;
mod layout;
mod msg;
mod msgpack;
mod options;
mod value;

use bytes::Bytes;

use super::WampError;
use layout::Elem;

pub use msg::{Id, Payload, V2Msg, code};
pub use options::{CallOptions, PublishOptions, SubscribeOptions};
pub use value::{Dict, Integer, MAX_DEPTH, Value};

/// Reason and error URIs a router sends (WAMP2 "Predefined URIs"; `timeout` from the advanced
/// profile's call timeouts). Session-closing reasons use the `wamp.close.` namespace, as in
/// the GOODBYE examples of the Basic Profile.
pub mod reason {
    /// ABORT reason for a malformed or out-of-order message.
    pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
    /// ERROR for a URI that breaks the URI rules.
    pub const INVALID_URI: &str = "wamp.error.invalid_uri";
    /// ERROR for an option or argument the router cannot accept.
    pub const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";
    /// ERROR for a CALL to a procedure nobody registered.
    pub const NO_SUCH_PROCEDURE: &str = "wamp.error.no_such_procedure";
    /// ERROR for a REGISTER of a procedure already registered.
    pub const PROCEDURE_ALREADY_EXISTS: &str = "wamp.error.procedure_already_exists";
    /// ERROR for an UNREGISTER of an unknown registration.
    pub const NO_SUCH_REGISTRATION: &str = "wamp.error.no_such_registration";
    /// ERROR for an UNSUBSCRIBE of an unknown subscription.
    pub const NO_SUCH_SUBSCRIPTION: &str = "wamp.error.no_such_subscription";
    /// ERROR (or ABORT for HELLO) when the session may not do this.
    pub const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
    /// ABORT for a HELLO naming a realm the router does not serve.
    pub const NO_SUCH_REALM: &str = "wamp.error.no_such_realm";
    /// ERROR to the caller when `CALL.Options.timeout` expires.
    pub const TIMEOUT: &str = "wamp.error.timeout";
    /// GOODBYE reason when the router shuts down.
    pub const SYSTEM_SHUTDOWN: &str = "wamp.close.system_shutdown";
    /// GOODBYE reason when the router ends the session on someone else's request.
    pub const KILLED: &str = "wamp.close.killed";
    /// GOODBYE reason of the reply to a GOODBYE.
    pub const GOODBYE_AND_OUT: &str = "wamp.close.goodbye_and_out";
}

/// A WAMP v2 serializer, chosen by WebSocket subprotocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serializer {
    /// `wamp.2.json`: text frames.
    Json,
    /// `wamp.2.msgpack`: binary frames.
    MsgPack,
}

impl Serializer {
    /// Both, in the order a router prefers them when a client offers several.
    pub const ALL: [Serializer; 2] = [Serializer::Json, Serializer::MsgPack];

    /// The WebSocket subprotocol token.
    #[must_use]
    pub const fn subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
        }
    }

    /// The serializer a subprotocol token names (batched variants are not supported).
    #[must_use]
    pub fn from_subprotocol(token: &str) -> Option<Serializer> {
        Serializer::ALL.into_iter().find(|s| s.subprotocol() == token)
    }

    /// Whether frames go in binary WebSocket messages rather than text.
    #[must_use]
    pub const fn is_binary(self) -> bool {
        matches!(self, Serializer::MsgPack)
    }
}

/// Decodes any Basic Profile message, whoever sent it (clients use this for router messages).
///
/// # Errors
/// A [`WampError`] protocol violation: bad encoding, not an array, unknown type, wrong arity,
/// wrong element type, or an id outside `[1, 2^53]`.
pub fn decode_v2(ser: Serializer, frame: &[u8]) -> Result<V2Msg, WampError> {
    let items = match ser {
        Serializer::Json => json::decode(frame)?,
        Serializer::MsgPack => msgpack::decode(frame)?,
    };
    V2Msg::from_elements(items)
}

/// Decodes a message a client sends to the router: HELLO, ABORT, GOODBYE, ERROR (answering an
/// INVOCATION), PUBLISH, SUBSCRIBE, UNSUBSCRIBE, CALL, REGISTER, UNREGISTER, YIELD. URIs and
/// options are not judged here: see [`V2Msg::check_uris`] and the `*Options` types.
///
/// # Errors
/// Everything [`decode_v2`] rejects, plus [`WampError::UnexpectedType`] for router-only
/// messages and for an ERROR that does not answer an INVOCATION. All are protocol violations:
/// ABORT with [`reason::PROTOCOL_VIOLATION`].
pub fn parse_v2(ser: Serializer, frame: &[u8]) -> Result<V2Msg, WampError> {
    let msg = decode_v2(ser, frame)?;
    match &msg {
        V2Msg::Hello { .. }
        | V2Msg::Authenticate { .. }
        | V2Msg::Abort { .. }
        | V2Msg::Goodbye { .. }
        | V2Msg::Publish { .. }
        | V2Msg::Subscribe { .. }
        | V2Msg::Unsubscribe { .. }
        | V2Msg::Call { .. }
        | V2Msg::Register { .. }
        | V2Msg::Unregister { .. }
        | V2Msg::Yield { .. } => Ok(msg),
        V2Msg::Error { request_type: code::INVOCATION, .. } => Ok(msg),
        other => Err(WampError::UnexpectedType(other.type_code())),
    }
}

/// Encodes any message (router messages in production, client messages in tests).
#[must_use]
pub fn encode_v2(ser: Serializer, msg: &V2Msg) -> Bytes {
    encode_elements(ser, &msg.elements())
}

/// Encodes `[36, subscription, publication, details, args?, kwargs?]` straight from borrowed
/// parts. Every subscriber of one subscription gets the same bytes, so a broker calls this
/// once per (subscription, serializer) and clones the `Bytes`.
#[must_use]
pub fn encode_event_v2(
    ser: Serializer,
    subscription: Id,
    publication: Id,
    details: &Dict,
    args: Option<&[Value]>,
    kwargs: Option<&Dict>,
) -> Bytes {
    let mut elems = Vec::with_capacity(6);
    elems.extend([
        Elem::UInt(code::EVENT),
        Elem::UInt(subscription.get()),
        Elem::UInt(publication.get()),
        Elem::Dict(details),
    ]);
    layout::push_payload(&mut elems, args, kwargs);
    encode_elements(ser, &elems)
}

/// `[args, kwargs]` as one MessagePack array, straight from borrowed parts: how a WAMP payload
/// travels between herald nodes (`cluster::envelope`).
pub(crate) fn msgpack_args_kwargs(args: &[Value], kwargs: &Dict) -> Bytes {
    msgpack::encode(&[Elem::List(args), Elem::Dict(kwargs)])
}

fn encode_elements(ser: Serializer, elems: &[Elem<'_>]) -> Bytes {
    match ser {
        Serializer::Json => json::encode(elems),
        Serializer::MsgPack => msgpack::encode(elems),
    }
}

/// `WELCOME.Details.roles` of this router: a broker with `publisher_exclusion`,
/// `subscriber_blackwhite_listing`, `pattern_based_subscription`, `event_retention` and
/// `event_history` (`wamp.subscription.get_events`, on topics with history), and a dealer with
/// `call_timeout` (WAMP2 "Router: Role and Feature Announcement").
#[must_use]
pub fn router_roles() -> Dict {
    let feature_set = |names: &[&str]| {
        let features: Dict = names.iter().map(|name| ((*name).to_owned(), Value::Bool(true))).collect();
        Dict::new().with("features", features)
    };
    Dict::new()
        .with(
            "broker",
            feature_set(&[
                "publisher_exclusion",
                "subscriber_blackwhite_listing",
                "pattern_based_subscription",
                "event_retention",
                "event_history",
            ]),
        )
        .with("dealer", feature_set(&["call_timeout"]))
}

/// WELCOME details: [`router_roles`] plus `agent` (WAMP2 "Agent Identification"). Add
/// `authid`, `authrole`... with [`Dict::insert`] when the session has them.
#[must_use]
pub fn welcome_details(agent: &str) -> Dict {
    Dict::new().with("roles", router_roles()).with("agent", agent)
}

#[cfg(test)]
mod tests;
