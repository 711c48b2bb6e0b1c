//! The array layout of each [`V2Msg`]: building a message from the elements a serializer
//! decoded (checking count and element types) and flattening it back into elements to encode,
//! and the spec name of each type code ([`V2Msg::name`]).
//! Structure only: URI rules and option semantics are checked in [`super::options`], because
//! the Basic Profile answers those with ERROR rather than ABORT.

use super::msg::{Id, Payload, V2Msg, code};
use super::value::{Dict, Value};
use crate::wamp::WampError;

/// Name and allowed element counts (type code included) of each message type.
fn shape(type_code: u64) -> Option<(&'static str, usize, usize)> {
    Some(match type_code {
        code::HELLO => ("HELLO", 3, 3),
        code::WELCOME => ("WELCOME", 3, 3),
        code::ABORT => ("ABORT", 3, 3),
        code::CHALLENGE => ("CHALLENGE", 3, 3),
        code::AUTHENTICATE => ("AUTHENTICATE", 3, 3),
        code::GOODBYE => ("GOODBYE", 3, 3),
        code::ERROR => ("ERROR", 5, 7),
        code::PUBLISH => ("PUBLISH", 4, 6),
        code::PUBLISHED => ("PUBLISHED", 3, 3),
        code::SUBSCRIBE => ("SUBSCRIBE", 4, 4),
        code::SUBSCRIBED => ("SUBSCRIBED", 3, 3),
        code::UNSUBSCRIBE => ("UNSUBSCRIBE", 3, 3),
        code::UNSUBSCRIBED => ("UNSUBSCRIBED", 2, 2),
        code::EVENT => ("EVENT", 4, 6),
        code::CALL => ("CALL", 4, 6),
        code::RESULT => ("RESULT", 3, 5),
        code::REGISTER => ("REGISTER", 4, 4),
        code::REGISTERED => ("REGISTERED", 3, 3),
        code::UNREGISTER => ("UNREGISTER", 3, 3),
        code::UNREGISTERED => ("UNREGISTERED", 2, 2),
        code::INVOCATION => ("INVOCATION", 4, 6),
        code::YIELD => ("YIELD", 3, 5),
        _ => return None,
    })
}

impl V2Msg {
    /// The spec name, e.g. `"PUBLISH"`, for logs.
    #[must_use]
    pub fn name(&self) -> &'static str {
        shape(self.type_code()).map_or("?", |(name, _, _)| name)
    }

    /// Builds a message from its decoded elements, checking count and element types.
    pub(super) fn from_elements(items: Vec<Value>) -> Result<V2Msg, WampError> {
        let type_code = match items.first() {
            None => return Err(WampError::EmptyArray),
            Some(Value::Int(n)) => n.as_u64().ok_or(WampError::BadTypeCode)?,
            Some(_) => return Err(WampError::BadTypeCode),
        };
        let (name, min, max) = shape(type_code).ok_or(WampError::UnknownType(type_code))?;
        let len = items.len();
        if len < min || len > max {
            return Err(WampError::WrongArity { message: name, len });
        }
        let mut f = Fields { name, len, index: 0, items: items.into_iter() };
        f.skip_type_code();
        Ok(match type_code {
            code::HELLO => V2Msg::Hello { realm: f.uri()?, details: f.dict()? },
            code::WELCOME => V2Msg::Welcome { session: f.id()?, details: f.dict()? },
            code::ABORT => V2Msg::Abort { details: f.dict()?, reason: f.uri()? },
            code::GOODBYE => V2Msg::Goodbye { details: f.dict()?, reason: f.uri()? },
            code::CHALLENGE => V2Msg::Challenge { method: f.uri()?, extra: f.dict()? },
            code::AUTHENTICATE => V2Msg::Authenticate { signature: f.uri()?, extra: f.dict()? },
            code::ERROR => V2Msg::Error {
                request_type: f.type_code()?,
                request: f.id()?,
                details: f.dict()?,
                error: f.uri()?,
                payload: f.payload()?,
            },
            code::PUBLISH => {
                V2Msg::Publish { request: f.id()?, options: f.dict()?, topic: f.uri()?, payload: f.payload()? }
            }
            code::PUBLISHED => V2Msg::Published { request: f.id()?, publication: f.id()? },
            code::SUBSCRIBE => V2Msg::Subscribe { request: f.id()?, options: f.dict()?, topic: f.uri()? },
            code::SUBSCRIBED => V2Msg::Subscribed { request: f.id()?, subscription: f.id()? },
            code::UNSUBSCRIBE => V2Msg::Unsubscribe { request: f.id()?, subscription: f.id()? },
            code::UNSUBSCRIBED => V2Msg::Unsubscribed { request: f.id()? },
            code::EVENT => {
                V2Msg::Event { subscription: f.id()?, publication: f.id()?, details: f.dict()?, payload: f.payload()? }
            }
            code::CALL => {
                V2Msg::Call { request: f.id()?, options: f.dict()?, procedure: f.uri()?, payload: f.payload()? }
            }
            code::RESULT => V2Msg::Result { request: f.id()?, details: f.dict()?, payload: f.payload()? },
            code::REGISTER => V2Msg::Register { request: f.id()?, options: f.dict()?, procedure: f.uri()? },
            code::REGISTERED => V2Msg::Registered { request: f.id()?, registration: f.id()? },
            code::UNREGISTER => V2Msg::Unregister { request: f.id()?, registration: f.id()? },
            code::UNREGISTERED => V2Msg::Unregistered { request: f.id()? },
            code::INVOCATION => {
                V2Msg::Invocation { request: f.id()?, registration: f.id()?, details: f.dict()?, payload: f.payload()? }
            }
            _ => V2Msg::Yield { request: f.id()?, options: f.dict()?, payload: f.payload()? },
        })
    }

    /// The message as a list of elements, for the serializers.
    pub(super) fn elements(&self) -> Vec<Elem<'_>> {
        let mut out = vec![Elem::UInt(self.type_code())];
        let payload = match self {
            V2Msg::Hello { realm, details } => {
                out.extend([Elem::Str(realm), Elem::Dict(details)]);
                None
            }
            V2Msg::Welcome { session, details } => {
                out.extend([Elem::id(*session), Elem::Dict(details)]);
                None
            }
            V2Msg::Abort { details, reason } | V2Msg::Goodbye { details, reason } => {
                out.extend([Elem::Dict(details), Elem::Str(reason)]);
                None
            }
            V2Msg::Challenge { method: text, extra } | V2Msg::Authenticate { signature: text, extra } => {
                out.extend([Elem::Str(text), Elem::Dict(extra)]);
                None
            }
            V2Msg::Error { request_type, request, details, error, payload } => {
                out.extend([Elem::UInt(*request_type), Elem::id(*request), Elem::Dict(details), Elem::Str(error)]);
                Some(payload)
            }
            V2Msg::Publish { request, options, topic, payload } => {
                out.extend([Elem::id(*request), Elem::Dict(options), Elem::Str(topic)]);
                Some(payload)
            }
            V2Msg::Subscribe { request, options, topic } => {
                out.extend([Elem::id(*request), Elem::Dict(options), Elem::Str(topic)]);
                None
            }
            V2Msg::Published { request, publication: second }
            | V2Msg::Subscribed { request, subscription: second }
            | V2Msg::Unsubscribe { request, subscription: second }
            | V2Msg::Registered { request, registration: second }
            | V2Msg::Unregister { request, registration: second } => {
                out.extend([Elem::id(*request), Elem::id(*second)]);
                None
            }
            V2Msg::Unsubscribed { request } | V2Msg::Unregistered { request } => {
                out.push(Elem::id(*request));
                None
            }
            V2Msg::Event { subscription, publication, details, payload } => {
                out.extend([Elem::id(*subscription), Elem::id(*publication), Elem::Dict(details)]);
                Some(payload)
            }
            V2Msg::Call { request, options, procedure, payload } => {
                out.extend([Elem::id(*request), Elem::Dict(options), Elem::Str(procedure)]);
                Some(payload)
            }
            V2Msg::Result { request, details: dict, payload } | V2Msg::Yield { request, options: dict, payload } => {
                out.extend([Elem::id(*request), Elem::Dict(dict)]);
                Some(payload)
            }
            V2Msg::Register { request, options, procedure } => {
                out.extend([Elem::id(*request), Elem::Dict(options), Elem::Str(procedure)]);
                None
            }
            V2Msg::Invocation { request, registration, details, payload } => {
                out.extend([Elem::id(*request), Elem::id(*registration), Elem::Dict(details)]);
                Some(payload)
            }
        };
        if let Some(payload) = payload {
            push_payload(&mut out, payload.args.as_deref(), payload.kwargs.as_ref());
        }
        out
    }
}

/// One element of a message being encoded, borrowed from the message.
#[derive(Debug, Clone, Copy)]
pub(super) enum Elem<'a> {
    UInt(u64),
    Str(&'a str),
    Dict(&'a Dict),
    List(&'a [Value]),
}

impl Elem<'_> {
    fn id(id: Id) -> Elem<'static> {
        Elem::UInt(id.get())
    }
}

/// Appends `Arguments` / `ArgumentsKw`, writing `[]` for absent arguments when keywords follow.
pub(super) fn push_payload<'a>(out: &mut Vec<Elem<'a>>, args: Option<&'a [Value]>, kwargs: Option<&'a Dict>) {
    match (args, kwargs) {
        (args, Some(kwargs)) => out.extend([Elem::List(args.unwrap_or(&[])), Elem::Dict(kwargs)]),
        (Some(args), None) => out.push(Elem::List(args)),
        (None, None) => {}
    }
}

/// Takes the elements of one message in order, with typed errors naming the position.
struct Fields {
    name: &'static str,
    len: usize,
    index: usize,
    items: std::vec::IntoIter<Value>,
}

impl Fields {
    fn skip_type_code(&mut self) {
        self.items.next();
        self.index = 1;
    }

    fn next(&mut self) -> Result<(usize, Value), WampError> {
        let index = self.index;
        self.index += 1;
        let value = self.items.next().ok_or(WampError::WrongArity { message: self.name, len: self.len })?;
        Ok((index, value))
    }

    fn wrong(&self, index: usize, expected: &'static str) -> WampError {
        WampError::WrongType { message: self.name, index, expected }
    }

    fn id(&mut self) -> Result<Id, WampError> {
        match self.next()? {
            (index, Value::Int(n)) => {
                n.as_u64().and_then(Id::new).ok_or(WampError::IdOutOfRange { message: self.name, index })
            }
            (index, _) => Err(self.wrong(index, "an id (integer)")),
        }
    }

    fn type_code(&mut self) -> Result<u64, WampError> {
        match self.next()? {
            (index, Value::Int(n)) => n.as_u64().ok_or_else(|| self.wrong(index, "a message type code")),
            (index, _) => Err(self.wrong(index, "a message type code")),
        }
    }

    fn uri(&mut self) -> Result<String, WampError> {
        match self.next()? {
            (_, Value::Str(s)) => Ok(s),
            (index, _) => Err(self.wrong(index, "a URI (string)")),
        }
    }

    fn dict(&mut self) -> Result<Dict, WampError> {
        match self.next()? {
            (_, Value::Dict(d)) => Ok(d),
            (index, _) => Err(self.wrong(index, "a dict")),
        }
    }

    fn payload(&mut self) -> Result<Payload, WampError> {
        let mut payload = Payload::default();
        if self.index < self.len {
            match self.next()? {
                (_, Value::List(args)) => payload.args = Some(args),
                (index, _) => return Err(self.wrong(index, "an Arguments list")),
            }
        }
        if self.index < self.len {
            match self.next()? {
                (_, Value::Dict(kwargs)) => payload.kwargs = Some(kwargs),
                (index, _) => return Err(self.wrong(index, "an ArgumentsKw dict")),
            }
        }
        Ok(payload)
    }
}
