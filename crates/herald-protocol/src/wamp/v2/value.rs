//! [`Value`], the opaque application payload of WAMP v2 (Arguments, ArgumentsKw, Details,
//! Options), which must re-encode faithfully in JSON and in MessagePack.
//!
//! Why our own type rather than `serde_json::Value`: MessagePack distinguishes binary from
//! strings and carries the full `u64` range, and a router must hand both on unchanged. Binary
//! crosses to JSON clients by the WAMP convention (WAMP2 "Binary conversion of JSON strings"):
//! a string made of `\0` followed by base64. The JSON decoder turns such strings back into
//! [`Value::Bin`], so bytes published by a MessagePack client reach a JSON subscriber as the
//! convention says, and a JSON publisher's binary reaches a MessagePack subscriber as `bin`.
//!
//! What is not kept: MessagePack `float32` is widened to `f64` (same number, re-encoded as
//! `float64`); extension types and non-string map keys are refused at decode time
//! ([`WampError::UnsupportedValue`]); JSON integers beyond the 64-bit range arrive as floats,
//! as serde_json reads them.
//!
//! This module knows no format: [`Value::from_json`] and [`Value::to_json`] are written in
//! `json`, [`Value::from_msgpack`] and [`Value::to_msgpack`] in `msgpack`, so each serializer
//! builds on the type and the type never calls back into a serializer.
//!
//! [`WampError::UnsupportedValue`]: crate::wamp::WampError::UnsupportedValue

/// Deepest list/dict nesting a decoder accepts, matching serde_json's own recursion limit so
/// both serializers refuse the same messages.
pub const MAX_DEPTH: usize = 128;

/// One WAMP v2 application value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JSON `null`, MessagePack `nil`.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer anywhere in `[-2^63, 2^64)`.
    Int(Integer),
    /// A floating-point number.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// Bytes: MessagePack `bin`, or a JSON `"\u0000<base64>"` string.
    Bin(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A dict with string keys.
    Dict(Dict),
}

/// An integer in the union of the `i64` and `u64` ranges, which is what both serializers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Integer(i128);

impl Integer {
    /// The value as `u64`, if it is non-negative.
    #[must_use]
    pub fn as_u64(self) -> Option<u64> {
        u64::try_from(self.0).ok()
    }

    /// `Ok` with the value when it is non-negative, `Err` with it when negative: the two
    /// encodings both serializers have.
    pub(crate) fn split(self) -> Result<u64, i64> {
        // Every constructor stays within i64::MIN..=u64::MAX, so the fallback is never taken.
        u64::try_from(self.0).map_err(|_| i64::try_from(self.0).unwrap_or(i64::MIN))
    }
}

impl From<u64> for Integer {
    fn from(n: u64) -> Integer {
        Integer(i128::from(n))
    }
}

impl From<i64> for Integer {
    fn from(n: i64) -> Integer {
        Integer(i128::from(n))
    }
}

impl From<u32> for Integer {
    fn from(n: u32) -> Integer {
        Integer(i128::from(n))
    }
}

impl From<i32> for Integer {
    fn from(n: i32) -> Integer {
        Integer(i128::from(n))
    }
}

/// A WAMP dict: string keys, insertion order kept so a message re-encodes in the order it
/// arrived. Lookups are linear; WAMP dicts hold a handful of keys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dict(Vec<(String, Value)>);

impl Dict {
    /// An empty dict (`{}`).
    #[must_use]
    pub fn new() -> Dict {
        Dict(Vec::new())
    }

    /// The value under `key` (the first one, should a decoded dict repeat a key).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, replacing an existing entry in place or appending a new one.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((key, value)),
        }
    }

    /// [`Dict::insert`] in builder form.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Dict {
        self.insert(key, value);
        self
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(at).1)
    }

    /// Entries in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for `{}`.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, Value)> for Dict {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Dict {
        Dict(iter.into_iter().collect())
    }
}

impl From<Vec<(String, Value)>> for Dict {
    fn from(entries: Vec<(String, Value)>) -> Dict {
        Dict(entries)
    }
}

impl Value {
    /// The string, for [`Value::Str`].
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, for [`Value::Bool`].
    #[must_use]
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer as `u64`, for a non-negative [`Value::Int`].
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The items, for [`Value::List`].
    #[must_use]
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The dict, for [`Value::Dict`].
    #[must_use]
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Value {
        Value::Int(n.into())
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(n.into())
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Str(s)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Value {
        Value::List(items)
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Value {
        Value::Dict(d)
    }
}
