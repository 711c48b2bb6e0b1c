//! Picks named top-level fields out of a JSON object as borrowed raw values, and converts them.
//!
//! Pusher payloads are small objects with a handful of known keys; reading them as raw slices
//! avoids building a `serde_json::Value` tree and lets each field report its own type error.
//! Unknown keys are skipped; a repeated key keeps its last value, as `JSON.parse` does.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::ProtocolError;

/// Reads the fields `names` of the JSON object `json`; absent fields are `None`, `null` values
/// are kept (see [`non_null`]).
///
/// # Errors
/// [`ProtocolError::NotJson`] for invalid JSON, [`ProtocolError::NotAnObject`] for any other
/// JSON value.
pub(super) fn read_fields<'a, const N: usize>(
    json: &'a str,
    names: &[&'static str; N],
) -> Result<[Option<&'a RawValue>; N], ProtocolError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let fields =
        FieldsSeed { names }.deserialize(&mut de).and_then(|fields| de.end().map(|()| fields)).map_err(|e| match e
            .classify()
        {
            serde_json::error::Category::Data => ProtocolError::NotAnObject,
            _ => ProtocolError::NotJson,
        })?;
    Ok(fields)
}

/// Treats a `null` value as absent: Pusher clients send `null` for "not given".
pub(super) fn non_null(raw: Option<&RawValue>) -> Option<&RawValue> {
    raw.filter(|r| r.get() != "null")
}

/// Decodes a JSON string field.
///
/// # Errors
/// [`ProtocolError::WrongType`] naming `name` if the value is not a string.
pub(super) fn string(raw: &RawValue, name: &'static str) -> Result<String, ProtocolError> {
    serde_json::from_str(raw.get()).map_err(|_| ProtocolError::WrongType(name))
}

/// Decodes an optional JSON string field; `null` counts as absent.
///
/// # Errors
/// As [`string`].
pub(super) fn opt_string(raw: Option<&RawValue>, name: &'static str) -> Result<Option<String>, ProtocolError> {
    non_null(raw).map(|r| string(r, name)).transpose()
}

/// Decodes a required JSON string field.
///
/// # Errors
/// [`ProtocolError::MissingField`] if absent or `null`, otherwise as [`string`].
pub(super) fn req_string(raw: Option<&RawValue>, name: &'static str) -> Result<String, ProtocolError> {
    string(non_null(raw).ok_or(ProtocolError::MissingField(name))?, name)
}

/// Decodes a user id given as a string or an integer; integers become their decimal text,
/// verbatim, so ids beyond 2^53 keep every digit (presence `user_id`s may be either).
///
/// # Errors
/// [`ProtocolError::WrongType`] for anything else, fractions and exponents included.
pub(super) fn id_string(raw: &RawValue, name: &'static str) -> Result<String, ProtocolError> {
    let text = raw.get();
    if text.starts_with('"') {
        return string(raw, name);
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err(ProtocolError::WrongType(name))
    }
}

struct FieldsSeed<'n, const N: usize> {
    names: &'n [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for FieldsSeed<'_, N> {
    type Value = [Option<&'de RawValue>; N];

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for FieldsSeed<'_, N> {
    type Value = [Option<&'de RawValue>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = [None; N];
        while let Some(slot) = map.next_key_seed(KeySeed { names: self.names })? {
            match slot {
                Some(i) => out[i] = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

/// Maps a key to its index in `names` without allocating, escaped keys included.
struct KeySeed<'n, const N: usize> {
    names: &'n [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for KeySeed<'_, N> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<const N: usize> Visitor<'_> for KeySeed<'_, N> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.names.iter().position(|n| *n == key))
    }
}
