//! [`V2Msg`], the twenty WAMP v2 Basic Profile messages (WAMP2 `messages.md`), with
//! their type codes, [`Id`] and [`Payload`]. How each maps to an array, and its spec name
//! ([`V2Msg::name`]), is in `layout`, which builds on these types.

use std::fmt;

use super::value::{Dict, Value};

/// Message type codes of the Basic Profile.
pub mod code {
    /// `[1, Realm, Details]`
    pub const HELLO: u64 = 1;
    /// `[2, Session, Details]`
    pub const WELCOME: u64 = 2;
    /// `[3, Details, Reason]`
    pub const ABORT: u64 = 3;
    /// `[4, AuthMethod, Extra]` (Advanced Profile, authentication)
    pub const CHALLENGE: u64 = 4;
    /// `[5, Signature, Extra]` (Advanced Profile, authentication)
    pub const AUTHENTICATE: u64 = 5;
    /// `[6, Details, Reason]`
    pub const GOODBYE: u64 = 6;
    /// `[8, REQUEST.Type, REQUEST.Request, Details, Error, Arguments?, ArgumentsKw?]`
    pub const ERROR: u64 = 8;
    /// `[16, Request, Options, Topic, Arguments?, ArgumentsKw?]`
    pub const PUBLISH: u64 = 16;
    /// `[17, PUBLISH.Request, Publication]`
    pub const PUBLISHED: u64 = 17;
    /// `[32, Request, Options, Topic]`
    pub const SUBSCRIBE: u64 = 32;
    /// `[33, SUBSCRIBE.Request, Subscription]`
    pub const SUBSCRIBED: u64 = 33;
    /// `[34, Request, SUBSCRIBED.Subscription]`
    pub const UNSUBSCRIBE: u64 = 34;
    /// `[35, UNSUBSCRIBE.Request]`
    pub const UNSUBSCRIBED: u64 = 35;
    /// `[36, Subscription, Publication, Details, Arguments?, ArgumentsKw?]`
    pub const EVENT: u64 = 36;
    /// `[48, Request, Options, Procedure, Arguments?, ArgumentsKw?]`
    pub const CALL: u64 = 48;
    /// `[50, CALL.Request, Details, Arguments?, ArgumentsKw?]`
    pub const RESULT: u64 = 50;
    /// `[64, Request, Options, Procedure]`
    pub const REGISTER: u64 = 64;
    /// `[65, REGISTER.Request, Registration]`
    pub const REGISTERED: u64 = 65;
    /// `[66, Request, REGISTERED.Registration]`
    pub const UNREGISTER: u64 = 66;
    /// `[67, UNREGISTER.Request]`
    pub const UNREGISTERED: u64 = 67;
    /// `[68, Request, REGISTERED.Registration, Details, Arguments?, ArgumentsKw?]`
    pub const INVOCATION: u64 = 68;
    /// `[70, INVOCATION.Request, Options, Arguments?, ArgumentsKw?]`
    pub const YIELD: u64 = 70;
}

/// A WAMP v2 id: an integer in `[1, 2^53]` (WAMP2 "IDs"), so JavaScript doubles hold it exactly.
/// Session and publication ids must be drawn at random over that range; that is the caller's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(u64);

impl Id {
    /// The largest id, 2^53.
    pub const MAX: u64 = 1 << 53;

    /// `n` as an id, if it is in `[1, 2^53]`.
    #[must_use]
    pub const fn new(n: u64) -> Option<Id> {
        if n >= 1 && n <= Id::MAX { Some(Id(n)) } else { None }
    }

    /// `n` clamped into `[1, 2^53]`, for ids the router draws itself.
    #[must_use]
    pub const fn saturating(n: u64) -> Id {
        if n < 1 {
            Id(1)
        } else if n > Id::MAX {
            Id(Id::MAX)
        } else {
            Id(n)
        }
    }

    /// The integer.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The optional `Arguments` list and `ArgumentsKw` dict that end PUBLISH, EVENT, CALL, RESULT,
/// INVOCATION, YIELD and ERROR. Presence is kept (`[]` differs from absent on the wire); when
/// only `kwargs` is set, encoders write an empty `Arguments` before it, as the format requires.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    /// Positional arguments.
    pub args: Option<Vec<Value>>,
    /// Keyword arguments.
    pub kwargs: Option<Dict>,
}

/// One WAMP v2 Basic Profile message; names follow WAMP2 `messages.md`.
#[derive(Debug, Clone, PartialEq)]
pub enum V2Msg {
    /// `[1, Realm|uri, Details|dict]`: the client opens a session.
    Hello {
        /// Realm to join.
        realm: String,
        /// `roles` (required), `agent`, auth fields.
        details: Dict,
    },
    /// `[2, Session|id, Details|dict]`: the router accepts it.
    Welcome {
        /// Session id, random over the id range.
        session: Id,
        /// `roles` (required; see [`super::welcome_details`]), `agent`...
        details: Dict,
    },
    /// `[3, Details|dict, Reason|uri]`: either side refuses or breaks off the session; never
    /// answered.
    Abort {
        /// Optional `message` and the like.
        details: Dict,
        /// Reason URI, e.g. `wamp.error.protocol_violation`.
        reason: String,
    },
    /// `[4, AuthMethod|string, Extra|dict]`: the router asks the client to prove its identity.
    Challenge {
        /// `ticket`, `wampcra` or `cryptosign`.
        method: String,
        /// What the method needs: the challenge string, salt...
        extra: Dict,
    },
    /// `[5, Signature|string, Extra|dict]`: the client's answer to CHALLENGE.
    Authenticate {
        /// The ticket, or the signature over the challenge.
        signature: String,
        /// Method-specific extras (unused by the methods herald speaks).
        extra: Dict,
    },
    /// `[6, Details|dict, Reason|uri]`: either side closes; the other answers GOODBYE.
    Goodbye {
        /// Optional `message` and the like.
        details: Dict,
        /// Reason URI, e.g. `wamp.close.system_shutdown`.
        reason: String,
    },
    /// `[8, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri, Arguments?, ArgumentsKw?]`.
    Error {
        /// Type code of the failed request (SUBSCRIBE, CALL, INVOCATION...).
        request_type: u64,
        /// Id of the failed request.
        request: Id,
        /// Error details.
        details: Dict,
        /// Error URI.
        error: String,
        /// Application error payload.
        payload: Payload,
    },
    /// `[16, Request|id, Options|dict, Topic|uri, Arguments?, ArgumentsKw?]`.
    Publish {
        /// Request id.
        request: Id,
        /// See [`super::PublishOptions`].
        options: Dict,
        /// Topic published to.
        topic: String,
        /// Event payload.
        payload: Payload,
    },
    /// `[17, PUBLISH.Request|id, Publication|id]`: sent only if `acknowledge` was set.
    Published {
        /// Id of the PUBLISH.
        request: Id,
        /// Publication id, random over the id range.
        publication: Id,
    },
    /// `[32, Request|id, Options|dict, Topic|uri]`.
    Subscribe {
        /// Request id.
        request: Id,
        /// See [`super::SubscribeOptions`].
        options: Dict,
        /// Topic, or pattern under a `match` policy.
        topic: String,
    },
    /// `[33, SUBSCRIBE.Request|id, Subscription|id]`.
    Subscribed {
        /// Id of the SUBSCRIBE.
        request: Id,
        /// Subscription id, shared by every subscriber of the same topic and policy.
        subscription: Id,
    },
    /// `[34, Request|id, SUBSCRIBED.Subscription|id]`.
    Unsubscribe {
        /// Request id.
        request: Id,
        /// Subscription to leave.
        subscription: Id,
    },
    /// `[35, UNSUBSCRIBE.Request|id]`.
    Unsubscribed {
        /// Id of the UNSUBSCRIBE.
        request: Id,
    },
    /// `[36, SUBSCRIBED.Subscription|id, PUBLISHED.Publication|id, Details|dict, Arguments?, ArgumentsKw?]`.
    Event {
        /// The subscription it is delivered under.
        subscription: Id,
        /// The publication it comes from.
        publication: Id,
        /// `topic` is required for pattern-based subscriptions.
        details: Dict,
        /// The publisher's payload.
        payload: Payload,
    },
    /// `[48, Request|id, Options|dict, Procedure|uri, Arguments?, ArgumentsKw?]`.
    Call {
        /// Request id.
        request: Id,
        /// See [`super::CallOptions`].
        options: Dict,
        /// Procedure to call.
        procedure: String,
        /// Call arguments.
        payload: Payload,
    },
    /// `[50, CALL.Request|id, Details|dict, YIELD.Arguments?, YIELD.ArgumentsKw?]`.
    Result {
        /// Id of the CALL.
        request: Id,
        /// Result details.
        details: Dict,
        /// The callee's result.
        payload: Payload,
    },
    /// `[64, Request|id, Options|dict, Procedure|uri]`.
    Register {
        /// Request id.
        request: Id,
        /// Registration options.
        options: Dict,
        /// Procedure to provide.
        procedure: String,
    },
    /// `[65, REGISTER.Request|id, Registration|id]`.
    Registered {
        /// Id of the REGISTER.
        request: Id,
        /// Registration id.
        registration: Id,
    },
    /// `[66, Request|id, REGISTERED.Registration|id]`.
    Unregister {
        /// Request id.
        request: Id,
        /// Registration to drop.
        registration: Id,
    },
    /// `[67, UNREGISTER.Request|id]`.
    Unregistered {
        /// Id of the UNREGISTER.
        request: Id,
    },
    /// `[68, Request|id, REGISTERED.Registration|id, Details|dict, CALL.Arguments?, CALL.ArgumentsKw?]`.
    Invocation {
        /// Request id, in the router-to-callee sequence.
        request: Id,
        /// The registration being invoked.
        registration: Id,
        /// Invocation details.
        details: Dict,
        /// The caller's arguments.
        payload: Payload,
    },
    /// `[70, INVOCATION.Request|id, Options|dict, Arguments?, ArgumentsKw?]`.
    Yield {
        /// Id of the INVOCATION.
        request: Id,
        /// Yield options.
        options: Dict,
        /// The result.
        payload: Payload,
    },
}

impl V2Msg {
    /// The message type code.
    #[must_use]
    pub fn type_code(&self) -> u64 {
        match self {
            V2Msg::Hello { .. } => code::HELLO,
            V2Msg::Welcome { .. } => code::WELCOME,
            V2Msg::Abort { .. } => code::ABORT,
            V2Msg::Challenge { .. } => code::CHALLENGE,
            V2Msg::Authenticate { .. } => code::AUTHENTICATE,
            V2Msg::Goodbye { .. } => code::GOODBYE,
            V2Msg::Error { .. } => code::ERROR,
            V2Msg::Publish { .. } => code::PUBLISH,
            V2Msg::Published { .. } => code::PUBLISHED,
            V2Msg::Subscribe { .. } => code::SUBSCRIBE,
            V2Msg::Subscribed { .. } => code::SUBSCRIBED,
            V2Msg::Unsubscribe { .. } => code::UNSUBSCRIBE,
            V2Msg::Unsubscribed { .. } => code::UNSUBSCRIBED,
            V2Msg::Event { .. } => code::EVENT,
            V2Msg::Call { .. } => code::CALL,
            V2Msg::Result { .. } => code::RESULT,
            V2Msg::Register { .. } => code::REGISTER,
            V2Msg::Registered { .. } => code::REGISTERED,
            V2Msg::Unregister { .. } => code::UNREGISTER,
            V2Msg::Unregistered { .. } => code::UNREGISTERED,
            V2Msg::Invocation { .. } => code::INVOCATION,
            V2Msg::Yield { .. } => code::YIELD,
        }
    }

    /// The request id of a message that starts or answers a request (everything but HELLO,
    /// WELCOME, ABORT, GOODBYE and EVENT). A router needs it to answer a failed check with ERROR.
    #[must_use]
    pub fn request(&self) -> Option<Id> {
        match self {
            V2Msg::Error { request, .. }
            | V2Msg::Publish { request, .. }
            | V2Msg::Published { request, .. }
            | V2Msg::Subscribe { request, .. }
            | V2Msg::Subscribed { request, .. }
            | V2Msg::Unsubscribe { request, .. }
            | V2Msg::Unsubscribed { request }
            | V2Msg::Call { request, .. }
            | V2Msg::Result { request, .. }
            | V2Msg::Register { request, .. }
            | V2Msg::Registered { request, .. }
            | V2Msg::Unregister { request, .. }
            | V2Msg::Unregistered { request }
            | V2Msg::Invocation { request, .. }
            | V2Msg::Yield { request, .. } => Some(*request),
            V2Msg::Hello { .. }
            | V2Msg::Welcome { .. }
            | V2Msg::Abort { .. }
            | V2Msg::Challenge { .. }
            | V2Msg::Authenticate { .. }
            | V2Msg::Goodbye { .. }
            | V2Msg::Event { .. } => None,
        }
    }
}
