//! The `wamp.2.msgpack` serializer: a WAMP message is one MessagePack array in a binary frame
//! (WAMP2 "Serializations": MessagePack with the v5 `str`/`bin` split).
//!
//! The decoder is a small cursor over the frame, written here so that every limit is ours:
//! nesting stops at [`MAX_DEPTH`], a declared length never reserves more than the frame could
//! hold, strings must be UTF-8, and extension types are refused. `rmp` supplies the marker
//! table and the writers; writing into its `ByteBuf` cannot fail. [`Value::from_msgpack`] and
//! [`Value::to_msgpack`] are defined here, next to the cursor and the writers they use.

use std::convert::Infallible;

use bytes::Bytes;
use rmp::Marker;
use rmp::encode::{self, ByteBuf, ValueWriteError};

use super::layout::Elem;
use super::value::{Dict, MAX_DEPTH, Value};
use crate::wamp::WampError;

impl Value {
    /// Decodes one MessagePack value.
    ///
    /// # Errors
    /// [`WampError::InvalidMsgPack`] and the other MessagePack decoding errors.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Value, WampError> {
        decode_value(bytes)
    }

    /// Encodes as MessagePack.
    #[must_use]
    pub fn to_msgpack(&self) -> Bytes {
        let mut buf = ByteBuf::new();
        write_value(&mut buf, self);
        Bytes::from(buf.into_vec())
    }
}

/// Decodes a frame that must hold one MessagePack array.
pub(super) fn decode(frame: &[u8]) -> Result<Vec<Value>, WampError> {
    match decode_value(frame)? {
        Value::List(items) => Ok(items),
        _ => Err(WampError::NotArray),
    }
}

/// Decodes exactly one MessagePack value.
fn decode_value(bytes: &[u8]) -> Result<Value, WampError> {
    let mut reader = Reader { buf: bytes, pos: 0 };
    let value = reader.value(0)?;
    if reader.pos == bytes.len() {
        Ok(value)
    } else {
        Err(WampError::InvalidMsgPack { offset: reader.pos, reason: "trailing bytes after the value" })
    }
}

/// Encodes a message from its elements.
pub(super) fn encode(elems: &[Elem<'_>]) -> Bytes {
    let mut buf = ByteBuf::with_capacity(64);
    written(encode::write_array_len(&mut buf, len32(elems.len())));
    for elem in elems {
        match *elem {
            Elem::UInt(n) => written(encode::write_uint(&mut buf, n)),
            Elem::Str(s) => written(encode::write_str(&mut buf, s)),
            Elem::Dict(d) => write_dict(&mut buf, d),
            Elem::List(items) => write_list(&mut buf, items),
        }
    }
    Bytes::from(buf.into_vec())
}

fn write_value(buf: &mut ByteBuf, value: &Value) {
    match value {
        Value::Null => infallible(encode::write_nil(buf)),
        Value::Bool(b) => infallible(encode::write_bool(buf, *b)),
        Value::Int(n) => match n.split() {
            Ok(u) => written(encode::write_uint(buf, u)),
            Err(i) => written(encode::write_sint(buf, i)),
        },
        Value::Float(f) => written(encode::write_f64(buf, *f)),
        Value::Str(s) => written(encode::write_str(buf, s)),
        Value::Bin(bytes) => written(encode::write_bin(buf, bytes)),
        Value::List(items) => write_list(buf, items),
        Value::Dict(d) => write_dict(buf, d),
    }
}

fn write_list(buf: &mut ByteBuf, items: &[Value]) {
    written(encode::write_array_len(buf, len32(items.len())));
    for item in items {
        write_value(buf, item);
    }
}

fn write_dict(buf: &mut ByteBuf, dict: &Dict) {
    written(encode::write_map_len(buf, len32(dict.len())));
    for (key, value) in dict.iter() {
        written(encode::write_str(buf, key));
        write_value(buf, value);
    }
}

/// MessagePack lengths are 32-bit; nothing decoded from a frame comes near that.
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `ByteBuf` writes cannot fail: its error type is `Infallible`.
fn written<T>(result: Result<T, ValueWriteError<Infallible>>) {
    match result {
        Ok(_) => {}
        Err(ValueWriteError::InvalidMarkerWrite(never) | ValueWriteError::InvalidDataWrite(never)) => match never {},
    }
}

fn infallible(result: Result<(), Infallible>) {
    match result {
        Ok(()) => {}
        Err(never) => match never {},
    }
}

/// A cursor over one frame.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WampError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(WampError::InvalidMsgPack { offset: self.pos, reason: "truncated" })?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WampError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len8(&mut self) -> Result<usize, WampError> {
        Ok(usize::from(u8::from_be_bytes(self.fixed()?)))
    }

    fn len16(&mut self) -> Result<usize, WampError> {
        Ok(usize::from(u16::from_be_bytes(self.fixed()?)))
    }

    fn len32(&mut self) -> Result<usize, WampError> {
        // An impossible length on a 16-bit target simply fails as truncated.
        Ok(usize::try_from(u32::from_be_bytes(self.fixed()?)).unwrap_or(usize::MAX))
    }

    fn value(&mut self, depth: usize) -> Result<Value, WampError> {
        let at = self.pos;
        let marker = Marker::from_u8(u8::from_be_bytes(self.fixed()?));
        Ok(match marker {
            Marker::FixPos(n) => Value::Int(u64::from(n).into()),
            Marker::FixNeg(n) => Value::Int(i64::from(n).into()),
            Marker::Null => Value::Null,
            Marker::True => Value::Bool(true),
            Marker::False => Value::Bool(false),
            Marker::U8 => Value::Int(u64::from(u8::from_be_bytes(self.fixed()?)).into()),
            Marker::U16 => Value::Int(u64::from(u16::from_be_bytes(self.fixed()?)).into()),
            Marker::U32 => Value::Int(u64::from(u32::from_be_bytes(self.fixed()?)).into()),
            Marker::U64 => Value::Int(u64::from_be_bytes(self.fixed()?).into()),
            Marker::I8 => Value::Int(i64::from(i8::from_be_bytes(self.fixed()?)).into()),
            Marker::I16 => Value::Int(i64::from(i16::from_be_bytes(self.fixed()?)).into()),
            Marker::I32 => Value::Int(i64::from(i32::from_be_bytes(self.fixed()?)).into()),
            Marker::I64 => Value::Int(i64::from_be_bytes(self.fixed()?).into()),
            Marker::F32 => Value::Float(f64::from(f32::from_be_bytes(self.fixed()?))),
            Marker::F64 => Value::Float(f64::from_be_bytes(self.fixed()?)),
            Marker::FixStr(n) => self.string(at, usize::from(n))?,
            Marker::Str8 => {
                let n = self.len8()?;
                self.string(at, n)?
            }
            Marker::Str16 => {
                let n = self.len16()?;
                self.string(at, n)?
            }
            Marker::Str32 => {
                let n = self.len32()?;
                self.string(at, n)?
            }
            Marker::Bin8 => {
                let n = self.len8()?;
                Value::Bin(self.take(n)?.to_vec())
            }
            Marker::Bin16 => {
                let n = self.len16()?;
                Value::Bin(self.take(n)?.to_vec())
            }
            Marker::Bin32 => {
                let n = self.len32()?;
                Value::Bin(self.take(n)?.to_vec())
            }
            Marker::FixArray(n) => self.list(usize::from(n), depth)?,
            Marker::Array16 => {
                let n = self.len16()?;
                self.list(n, depth)?
            }
            Marker::Array32 => {
                let n = self.len32()?;
                self.list(n, depth)?
            }
            Marker::FixMap(n) => self.dict(usize::from(n), depth)?,
            Marker::Map16 => {
                let n = self.len16()?;
                self.dict(n, depth)?
            }
            Marker::Map32 => {
                let n = self.len32()?;
                self.dict(n, depth)?
            }
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => {
                return Err(WampError::UnsupportedValue { what: "extension type" });
            }
            Marker::Reserved => {
                return Err(WampError::InvalidMsgPack { offset: at, reason: "reserved marker 0xc1" });
            }
        })
    }

    fn string(&mut self, at: usize, n: usize) -> Result<Value, WampError> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(s.to_owned())),
            Err(_) => Err(WampError::InvalidUtf8 { offset: at }),
        }
    }

    /// Room to reserve for `n` declared entries: each takes at least one byte, so never more
    /// than what is left of the frame.
    fn capacity(&self, n: usize) -> usize {
        n.min(self.buf.len() - self.pos)
    }

    fn list(&mut self, n: usize, depth: usize) -> Result<Value, WampError> {
        if depth >= MAX_DEPTH {
            return Err(WampError::TooDeep { limit: MAX_DEPTH });
        }
        let mut items = Vec::with_capacity(self.capacity(n));
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::List(items))
    }

    fn dict(&mut self, n: usize, depth: usize) -> Result<Value, WampError> {
        if depth >= MAX_DEPTH {
            return Err(WampError::TooDeep { limit: MAX_DEPTH });
        }
        let mut entries = Vec::with_capacity(self.capacity(n));
        for _ in 0..n {
            let Value::Str(key) = self.value(depth + 1)? else {
                return Err(WampError::UnsupportedValue { what: "map key that is not a string" });
            };
            entries.push((key, self.value(depth + 1)?));
        }
        Ok(Value::Dict(Dict::from(entries)))
    }
}
