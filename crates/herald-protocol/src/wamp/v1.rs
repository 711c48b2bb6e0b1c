//! WAMP v1 messages as Ratchet 0.4's `ServerProtocol` accepts them and AutobahnJS 0.8 /
//! autobahn-espo send them (the WAMP v1 spec, and Ratchet's `ServerProtocol::onMessage`), and the JSON text of what the server sends back.
//!
//! Every message is a JSON array in a text frame, `[type, ...]`. Parsing is lenient exactly
//! where Ratchet is (numbers where strings are expected, extra trailing elements ignored,
//! PUBLISH slot 3 judged by PHP truthiness) and strict where Ratchet would only have limped on
//! with PHP warnings (missing elements). Application payloads stay raw JSON text, so an EVENT
//! re-emits the published bytes without a parse/serialize round trip.

mod curie;
mod server_msg;

use bytes::Bytes;
use serde_json::value::RawValue;
use serde_json::{Number, error::Category};

use super::WampError;
use crate::json_text::push_str;

pub use curie::{CurieRule, MAX_PREFIXES, Prefixes};
pub use server_msg::{
    PROTOCOL_VERSION, RATCHET_SERVER_IDENT, V1ServerMsg, call_error, call_result, encode_event_v1, parse_v1_server,
    welcome,
};

/// Message type codes of WAMP v1 (the WAMP v1 spec).
pub mod code {
    /// `[0, sessionId, protocolVersion, serverIdent]`, server to client.
    pub const WELCOME: u64 = 0;
    /// `[1, prefix, uri]`, client to server.
    pub const PREFIX: u64 = 1;
    /// `[2, callId, procUri, args...]`, client to server.
    pub const CALL: u64 = 2;
    /// `[3, callId, result]`, server to client.
    pub const CALLRESULT: u64 = 3;
    /// `[4, callId, errorUri, errorDesc, errorDetails?]`, server to client.
    pub const CALLERROR: u64 = 4;
    /// `[5, topicUri]`, client to server.
    pub const SUBSCRIBE: u64 = 5;
    /// `[6, topicUri]`, client to server.
    pub const UNSUBSCRIBE: u64 = 6;
    /// `[7, topicUri, event, excludeMe | exclude, eligible?]`, client to server.
    pub const PUBLISH: u64 = 7;
    /// `[8, topicUri, event]`, server to client.
    pub const EVENT: u64 = 8;
}

/// A CALL's id, echoed verbatim in CALLRESULT / CALLERROR. AutobahnJS sends strings; Ratchet
/// also accepts numbers (its element-1 check allows "string or numeric"), and PHP's
/// `json_encode` echoes them back as numbers, so both are kept as sent.
#[derive(Debug, Clone, PartialEq)]
pub enum CallId {
    /// A JSON string id (the normal case).
    Str(String),
    /// A JSON number id.
    Num(Number),
}

impl CallId {
    fn push_json(&self, out: &mut Vec<u8>) {
        match self {
            CallId::Str(s) => push_str(out, s),
            CallId::Num(n) => out.extend_from_slice(n.to_string().as_bytes()),
        }
    }
}

/// An application value as raw JSON text, kept byte for byte as it arrived so that an EVENT
/// can re-emit it without a parse/serialise round trip. Dereferences to [`RawValue`]; equal
/// when the texts are equal.
#[derive(Debug, Clone)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// Checks that `json` is exactly one JSON value (surrounding whitespace allowed) and keeps it.
    ///
    /// # Errors
    /// [`WampError::InvalidJson`] otherwise.
    pub fn from_slice(json: &[u8]) -> Result<RawJson, WampError> {
        serde_json::from_slice::<&RawValue>(json).map(|raw| RawJson(raw.to_owned())).map_err(WampError::InvalidJson)
    }

    /// The JSON text.
    #[must_use]
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The boxed raw value, e.g. to embed in a serde structure.
    #[must_use]
    pub fn into_raw(self) -> Box<RawValue> {
        self.0
    }
}

impl From<Box<RawValue>> for RawJson {
    fn from(raw: Box<RawValue>) -> RawJson {
        RawJson(raw)
    }
}

impl std::ops::Deref for RawJson {
    type Target = RawValue;

    fn deref(&self) -> &RawValue {
        &self.0
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &RawJson) -> bool {
        self.get() == other.get()
    }
}

/// A message a v1 client sends (Ratchet's `ServerProtocol::onMessage`).
///
/// URIs are as sent: run them through [`Prefixes::apply`] to record PREFIX mappings and resolve
/// CURIEs the way the connection's [`CurieRule`] says.
#[derive(Debug, Clone, PartialEq)]
pub enum V1ClientMsg {
    /// `[1, prefix, uri]`: map a CURIE prefix for the rest of the connection.
    Prefix {
        /// The CURIE prefix (a JSON number is kept as its text).
        prefix: String,
        /// The URI it stands for.
        uri: String,
    },
    /// `[2, callId, procUri, arg1, arg2, ...]`.
    Call {
        /// Echoed in the answer.
        call_id: CallId,
        /// Procedure URI or CURIE.
        proc_uri: String,
        /// Zero or more arguments, raw JSON. (Ratchet hands an application the inner list when
        /// there is exactly one argument and it is an array; that unwrapping is the
        /// application's business, so it is not done here.)
        args: Vec<RawJson>,
    },
    /// `[5, topicUri]`: never acknowledged, and a repeat is a no-op.
    Subscribe {
        /// Topic URI or CURIE.
        topic: String,
    },
    /// `[6, topicUri]`: never acknowledged, and a repeat is a no-op.
    Unsubscribe {
        /// Topic URI or CURIE.
        topic: String,
    },
    /// `[7, topicUri, event, ...]` in any of its forms (3, 4 or 5 elements).
    Publish(V1Publish),
}

/// A v1 PUBLISH with its receiver filter normalised (Ratchet's: a truthy non-array slot 3
/// excludes the publisher, and an empty eligible list means everybody).
#[derive(Debug, Clone, PartialEq)]
pub struct V1Publish {
    /// Topic URI or CURIE.
    pub topic: String,
    /// The event, raw JSON exactly as received (`null` included).
    pub event: RawJson,
    /// Slot 3 was a truthy non-array (`true`, `1`, `"x"`...): the publisher does not get its
    /// own event. Ratchet turns this into `exclude = [own sessionId]`.
    pub exclude_me: bool,
    /// Slot 3 was an array (or object): session ids that must not get the event.
    pub exclude: Vec<String>,
    /// Slot 4: session ids that alone may get the event. `None` when absent **or empty**:
    /// Ratchet's `Topic::broadcast` ignores an empty eligible list.
    pub eligible: Option<Vec<String>>,
}

impl V1Publish {
    /// Whether the subscriber with session id `subscriber` gets this event, `publisher` being
    /// the sender's session id (Ratchet `Topic::broadcast` plus the excludeMe rewrite).
    #[must_use]
    pub fn admits(&self, publisher: &str, subscriber: &str) -> bool {
        if self.exclude_me && publisher == subscriber {
            return false;
        }
        if self.exclude.iter().any(|id| id == subscriber) {
            return false;
        }
        self.eligible.as_ref().is_none_or(|ids| ids.iter().any(|id| id == subscriber))
    }
}

/// Parses one text frame from a v1 client.
///
/// Rules, after Ratchet: the frame must be a non-empty JSON array; the type code may be a
/// number or a numeric string (PHP's loose `switch`); element 1, where present, must be a
/// string or a number (numbers are kept as their JSON text); trailing extra elements are
/// ignored. Server-to-client types (0, 3, 4, 8) are rejected like unknown ones.
///
/// # Errors
/// Any [`WampError`] except the v2-only ones; every one of them means "close with 1007".
pub fn parse_v1(frame: &[u8]) -> Result<V1ClientMsg, WampError> {
    let items = elements(frame)?;
    let code = type_code(first(&items)?)?;
    let name = match code {
        code::PREFIX => "PREFIX",
        code::CALL => "CALL",
        code::SUBSCRIBE => "SUBSCRIBE",
        code::UNSUBSCRIBE => "UNSUBSCRIBE",
        code::PUBLISH => "PUBLISH",
        code::WELCOME | code::CALLRESULT | code::CALLERROR | code::EVENT => {
            return Err(WampError::UnexpectedType(code));
        }
        other => return Err(WampError::UnknownType(other)),
    };
    let fields = Fields { name, items: &items };
    Ok(match code {
        code::PREFIX => V1ClientMsg::Prefix { prefix: fields.text(1)?, uri: fields.string(2)? },
        code::CALL => V1ClientMsg::Call {
            call_id: fields.call_id(1)?,
            proc_uri: fields.text(2)?,
            args: items.iter().skip(3).map(|raw| RawJson((*raw).to_owned())).collect(),
        },
        code::SUBSCRIBE => V1ClientMsg::Subscribe { topic: fields.text(1)? },
        code::UNSUBSCRIBE => V1ClientMsg::Unsubscribe { topic: fields.text(1)? },
        _ => V1ClientMsg::Publish(fields.publish()?),
    })
}

/// The elements of a frame that must be a non-empty JSON array, each kept as raw text.
fn elements(frame: &[u8]) -> Result<Vec<&RawValue>, WampError> {
    match serde_json::from_slice::<Vec<&RawValue>>(frame) {
        Ok(items) if items.is_empty() => Err(WampError::EmptyArray),
        Ok(items) => Ok(items),
        // Valid JSON of another type fails as a data error, anything else is a syntax error.
        Err(err) if err.classify() == Category::Data => Err(WampError::NotArray),
        Err(err) => Err(WampError::InvalidJson(err)),
    }
}

/// The type code element; [`elements`] already refused `[]`.
fn first<'f>(items: &[&'f RawValue]) -> Result<&'f RawValue, WampError> {
    items.first().copied().ok_or(WampError::EmptyArray)
}

/// The JSON type of a raw element, read from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Num,
    Bool,
    Null,
    List,
    Object,
}

fn kind(raw: &RawValue) -> Kind {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'"') => Kind::Str,
        Some(b'[') => Kind::List,
        Some(b'{') => Kind::Object,
        Some(b't' | b'f') => Kind::Bool,
        Some(b'n') => Kind::Null,
        _ => Kind::Num,
    }
}

/// A string element's contents, or a number element's JSON text; `None` for other types.
fn text(raw: &RawValue) -> Option<String> {
    match kind(raw) {
        Kind::Str => serde_json::from_str(raw.get()).ok(),
        Kind::Num => Some(raw.get().trim().to_owned()),
        _ => None,
    }
}

/// Reads the type code the way PHP's `switch` compares it with the integer constants: a number
/// or a numeric string whose value is a whole number. (`true == 1` also holds in PHP; a boolean
/// type code is too absurd to honour and is rejected.)
fn type_code(raw: &RawValue) -> Result<u64, WampError> {
    let source = match kind(raw) {
        Kind::Num | Kind::Str => text(raw).ok_or(WampError::BadTypeCode)?,
        _ => return Err(WampError::BadTypeCode),
    };
    php_whole_number(&source).ok_or(WampError::BadTypeCode)
}

fn php_whole_number(source: &str) -> Option<u64> {
    // PHP 8 numeric strings may carry leading and trailing whitespace.
    let t = source.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let numeric = |b: u8| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E');
    // The byte filter keeps Rust-only spellings such as "inf" and "NaN" out of f64 parsing.
    if t.is_empty() || !t.bytes().all(numeric) {
        return None;
    }
    if let Ok(n) = t.parse::<u64>() {
        return Some(n);
    }
    let f: f64 = t.parse().ok()?;
    // Whole, non-negative and below 2^64, so the cast is exact.
    (f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f)).then_some(f as u64)
}

/// Typed access to the elements of one client message.
struct Fields<'a, 'f> {
    name: &'static str,
    items: &'a [&'f RawValue],
}

impl<'f> Fields<'_, 'f> {
    fn get(&self, index: usize) -> Result<&'f RawValue, WampError> {
        self.items.get(index).copied().ok_or(WampError::WrongArity { message: self.name, len: self.items.len() })
    }

    fn wrong(&self, index: usize, expected: &'static str) -> WampError {
        WampError::WrongType { message: self.name, index, expected }
    }

    /// A string, or a number taken as its text (Ratchet's "string or numeric").
    fn text(&self, index: usize) -> Result<String, WampError> {
        text(self.get(index)?).ok_or_else(|| self.wrong(index, "a string or a number"))
    }

    fn string(&self, index: usize) -> Result<String, WampError> {
        let raw = self.get(index)?;
        match kind(raw) {
            Kind::Str => text(raw).ok_or_else(|| self.wrong(index, "a string")),
            _ => Err(self.wrong(index, "a string")),
        }
    }

    fn call_id(&self, index: usize) -> Result<CallId, WampError> {
        let raw = self.get(index)?;
        let wrong = || self.wrong(index, "a string or a number");
        match kind(raw) {
            Kind::Str => text(raw).map(CallId::Str).ok_or_else(wrong),
            Kind::Num => serde_json::from_str(raw.get()).map(CallId::Num).map_err(|_| wrong()),
            _ => Err(wrong()),
        }
    }

    fn publish(&self) -> Result<V1Publish, WampError> {
        let topic = self.text(1)?;
        let event = RawJson(self.get(2)?.to_owned());
        let (exclude_me, exclude) = match self.items.get(3) {
            None => (false, Vec::new()),
            Some(raw) => match kind(raw) {
                Kind::List | Kind::Object => (false, self.session_ids(raw, 3)?),
                _ => (php_truthy(raw), Vec::new()),
            },
        };
        let eligible = match self.items.get(4) {
            None => Vec::new(),
            Some(raw) => match kind(raw) {
                Kind::List | Kind::Object => self.session_ids(raw, 4)?,
                // Ratchet's `broadcast(array $eligible)` throws a TypeError here.
                _ => return Err(self.wrong(4, "an array of session ids")),
            },
        };
        let eligible = (!eligible.is_empty()).then_some(eligible);
        Ok(V1Publish { topic, event, exclude_me, exclude, eligible })
    }

    /// A list of session ids. A JSON object counts as the list of its values, as it does for
    /// PHP's decoded arrays; entries that are neither strings nor numbers can never equal a
    /// session id and are dropped.
    fn session_ids(&self, raw: &RawValue, index: usize) -> Result<Vec<String>, WampError> {
        let value: serde_json::Value = serde_json::from_str(raw.get()).map_err(|_| self.wrong(index, "an array"))?;
        let entries: Vec<serde_json::Value> = match value {
            serde_json::Value::Array(items) => items,
            serde_json::Value::Object(map) => map.into_iter().map(|(_, v)| v).collect(),
            _ => return Err(self.wrong(index, "an array")),
        };
        Ok(entries
            .into_iter()
            .filter_map(|entry| match entry {
                serde_json::Value::String(s) => Some(s),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect())
    }
}

/// PHP's `(bool)` of a decoded JSON scalar: `false`, `0`, `0.0`, `""`, `"0"` and `null` are false.
fn php_truthy(raw: &RawValue) -> bool {
    match serde_json::from_str::<serde_json::Value>(raw.get()) {
        Ok(serde_json::Value::Bool(b)) => b,
        Ok(serde_json::Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Ok(serde_json::Value::String(s)) => !(s.is_empty() || s == "0"),
        Ok(serde_json::Value::Array(items)) => !items.is_empty(),
        Ok(serde_json::Value::Object(map)) => !map.is_empty(),
        Ok(serde_json::Value::Null) | Err(_) => false,
    }
}

/// Starts a v1 frame `[code,` with room for `extra` more bytes.
fn frame_start(code: u64, extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + extra);
    out.push(b'[');
    crate::json_text::push_u64(&mut out, code);
    out.push(b',');
    out
}

fn finish(mut out: Vec<u8>) -> Bytes {
    out.push(b']');
    Bytes::from(out)
}

#[cfg(test)]
mod tests;
