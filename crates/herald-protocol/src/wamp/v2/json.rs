//! The `wamp.2.json` serializer: a WAMP message is one JSON array in a text frame, and binary
//! values travel as `"\u0000" + base64` strings (WAMP2 "Serializations", "Binary conversion of
//! JSON strings").
//!
//! Decoding goes through serde_json (which bounds nesting at 128 and rejects invalid UTF-8);
//! encoding writes text directly, so encoders cannot fail. [`Value::from_json`] and
//! [`Value::to_json`] are defined here, next to the `\0` convention they follow.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::layout::Elem;
use super::value::{Dict, Value};
use crate::json_text::{push_f64, push_i64, push_str, push_u64};
use crate::wamp::WampError;

impl Value {
    /// Decodes one JSON text (e.g. a v1 payload bridged to v2 subscribers).
    ///
    /// # Errors
    /// [`WampError::InvalidJson`] when `json` is not exactly one JSON value.
    pub fn from_json(json: &[u8]) -> Result<Value, WampError> {
        decode_value(json)
    }

    /// Encodes as JSON text (e.g. a v2 payload bridged to v1 subscribers).
    #[must_use]
    pub fn to_json(&self) -> Bytes {
        let mut out = Vec::new();
        write_value(&mut out, self);
        Bytes::from(out)
    }
}

/// Decodes a frame that must hold one JSON array.
pub(super) fn decode(frame: &[u8]) -> Result<Vec<Value>, WampError> {
    match decode_value(frame)? {
        Value::List(items) => Ok(items),
        _ => Err(WampError::NotArray),
    }
}

/// Decodes one JSON text into a [`Value`].
fn decode_value(json: &[u8]) -> Result<Value, WampError> {
    serde_json::from_slice::<JsonValue>(json).map(|v| v.0).map_err(WampError::InvalidJson)
}

/// Encodes a message from its elements.
pub(super) fn encode(elems: &[Elem<'_>]) -> Bytes {
    let mut out = Vec::with_capacity(128);
    out.push(b'[');
    for (i, elem) in elems.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match *elem {
            Elem::UInt(n) => push_u64(&mut out, n),
            Elem::Str(s) => push_str(&mut out, s),
            Elem::Dict(d) => write_dict(&mut out, d),
            Elem::List(items) => write_list(&mut out, items),
        }
    }
    out.push(b']');
    Bytes::from(out)
}

/// Appends `value` as JSON text.
fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(n) => match n.split() {
            Ok(u) => push_u64(out, u),
            Err(i) => push_i64(out, i),
        },
        Value::Float(f) => push_f64(out, *f),
        Value::Str(s) => push_str(out, s),
        Value::Bin(bytes) => {
            // Base64 needs no escaping, so the string is written in one go.
            out.extend_from_slice(b"\"\\u0000");
            out.extend_from_slice(STANDARD.encode(bytes).as_bytes());
            out.push(b'"');
        }
        Value::List(items) => write_list(out, items),
        Value::Dict(d) => write_dict(out, d),
    }
}

fn write_list(out: &mut Vec<u8>, items: &[Value]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_value(out, item);
    }
    out.push(b']');
}

fn write_dict(out: &mut Vec<u8>, dict: &Dict) {
    out.push(b'{');
    for (i, (key, value)) in dict.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_str(out, key);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

/// A string is binary when it is `\0` followed by canonical base64; anything else, including
/// `\0` followed by non-base64, stays a string, so JSON-to-JSON relaying never alters text.
fn string_value(s: &str) -> Option<Vec<u8>> {
    s.strip_prefix('\0').and_then(|b64| STANDARD.decode(b64).ok())
}

/// [`Value`] as serde_json reads it. Private so the `\0` convention stays a JSON matter rather
/// than a `Deserialize` impl every format would inherit.
struct JsonValue(Value);

impl<'de> Deserialize<'de> for JsonValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<JsonValue, D::Error> {
        deserializer.deserialize_any(JsonVisitor).map(JsonValue)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Int(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Int(n.into()))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
        Ok(Value::Float(f))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(string_value(s).map_or_else(|| Value::Str(s.to_owned()), Value::Bin))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(match string_value(&s) {
            Some(bytes) => Value::Bin(bytes),
            None => Value::Str(s),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        // The hint counts what the frame holds, but cap it so a reservation never outgrows it.
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(JsonValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some((key, JsonValue(value))) = map.next_entry::<String, JsonValue>()? {
            entries.push((key, value));
        }
        Ok(Value::Dict(Dict::from(entries)))
    }
}
