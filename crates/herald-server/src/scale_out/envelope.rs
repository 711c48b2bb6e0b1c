//! The node-to-node envelope: one publication as the bytes another herald node decodes.
//!
//! Binary and compact, little-endian, with a leading version byte so the format can evolve
//! (a node refuses versions it does not know instead of misreading them):
//!
//! ```text
//! u8  version (1)
//! u64 node id of the publisher        u64 sequence number on that node
//! u64 WAMP publication id             u8  flags (1 origin WAMP, 2 exclude, 4 user_id, 8 filter)
//! u8  data kind (0 string, 1 raw JSON, 2 WAMP args/kwargs as MessagePack [args, kwargs])
//! str channel   str event   [str exclude]   [str user_id]
//! [filter: u32 n, n × u64 excluded sessions, u8 has-eligible, [u32 m, m × u64 eligible]]
//! bytes data
//! ```
//! `str`/`bytes` are a u32 length then the bytes. Nothing here touches Redis: the same envelope
//! would travel over any other broker.

use herald_core::{Origin, Publication, PublicationData, WampFilter};
use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::pusher::error::ProtocolError;
use herald_protocol::wamp::WampError;
use herald_protocol::wamp::v2::{Dict, Value};
use serde_json::value::RawValue;

/// The format version this node writes and reads.
pub(crate) const VERSION: u8 = 1;

/// Longest channel or topic name accepted from another node (the sender validated it already).
const MAX_NAME: usize = u16::MAX as usize;

const FLAG_WAMP: u8 = 1;
const FLAG_EXCLUDE: u8 = 2;
const FLAG_USER: u8 = 4;
const FLAG_FILTER: u8 = 8;

const KIND_STR: u8 = 0;
const KIND_JSON: u8 = 1;
const KIND_WAMP: u8 = 2;

/// Why an envelope from another node could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvelopeError {
    /// Written by a herald speaking another format version.
    #[error("envelope version {0} is not supported (this node speaks {VERSION})")]
    Version(u8),
    /// The bytes end before the envelope does.
    #[error("envelope is truncated")]
    Truncated,
    /// Bytes follow the end of the envelope.
    #[error("envelope has {0} trailing bytes")]
    Trailing(usize),
    /// A text field is not UTF-8.
    #[error("envelope text is not UTF-8")]
    Utf8(#[source] std::str::Utf8Error),
    /// An unknown data kind.
    #[error("envelope data kind {0} is unknown")]
    Kind(u8),
    /// The channel name is unusable.
    #[error("envelope channel is invalid: {0}")]
    Channel(#[source] ProtocolError),
    /// Raw JSON data that is not JSON.
    #[error("envelope JSON data is invalid: {0}")]
    Json(#[source] serde_json::Error),
    /// WAMP arguments that do not decode.
    #[error("envelope WAMP data is invalid: {0}")]
    Wamp(#[source] WampError),
}

/// A publication received from another node.
#[derive(Debug)]
pub(crate) struct Received {
    /// The publishing node.
    pub(crate) node: u64,
    /// Its sequence number on that node (increasing), to drop retried duplicates.
    pub(crate) seq: u64,
    /// The publication, ready for `Hub::deliver`.
    pub(crate) publication: Publication,
}

/// Encodes `p` as published by `node` with sequence number `seq`.
pub(crate) fn encode(node: u64, seq: u64, p: &Publication) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + p.channel.as_str().len() + p.event.len() + data_hint(&p.data));
    out.push(VERSION);
    for n in [node, seq, p.id] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    let mut flags = 0;
    if p.origin == Origin::Wamp {
        flags |= FLAG_WAMP;
    }
    if p.exclude.is_some() {
        flags |= FLAG_EXCLUDE;
    }
    if p.user_id.is_some() {
        flags |= FLAG_USER;
    }
    if p.filter.is_some() {
        flags |= FLAG_FILTER;
    }
    out.push(flags);
    out.push(match p.data {
        PublicationData::Str(_) => KIND_STR,
        PublicationData::Json(_) => KIND_JSON,
        PublicationData::Wamp { .. } => KIND_WAMP,
    });
    put(&mut out, p.channel.as_str().as_bytes());
    put(&mut out, p.event.as_bytes());
    for s in [&p.exclude, &p.user_id].into_iter().flatten() {
        put(&mut out, s.as_bytes());
    }
    if let Some(f) = &p.filter {
        put_ids(&mut out, &f.exclude);
        out.push(u8::from(f.eligible.is_some()));
        if let Some(e) = &f.eligible {
            put_ids(&mut out, e);
        }
    }
    match &p.data {
        PublicationData::Str(s) => put(&mut out, s.as_bytes()),
        PublicationData::Json(raw) => put(&mut out, raw.get().as_bytes()),
        PublicationData::Wamp { args, kwargs } => {
            let both = Value::List(vec![Value::List(args.clone()), Value::Dict(kwargs.clone())]);
            put(&mut out, &both.to_msgpack());
        }
    }
    out
}

/// Decodes an envelope written by [`encode`] (on any node).
///
/// # Errors
/// [`EnvelopeError`] for another version or damaged bytes.
pub(crate) fn decode(bytes: &[u8]) -> Result<Received, EnvelopeError> {
    let mut r = Reader(bytes);
    let version = r.u8()?;
    if version != VERSION {
        return Err(EnvelopeError::Version(version));
    }
    let (node, seq, id) = (r.u64()?, r.u64()?, r.u64()?);
    let flags = r.u8()?;
    let kind = r.u8()?;
    let channel = ChannelName::topic(r.str()?, MAX_NAME).map_err(EnvelopeError::Channel)?;
    let event = r.str()?.to_owned();
    let exclude = if flags & FLAG_EXCLUDE != 0 { Some(r.str()?.to_owned()) } else { None };
    let user_id = if flags & FLAG_USER != 0 { Some(r.str()?.to_owned()) } else { None };
    let filter = if flags & FLAG_FILTER != 0 {
        let exclude = r.ids()?;
        let eligible = if r.u8()? != 0 { Some(r.ids()?) } else { None };
        Some(WampFilter { exclude, eligible })
    } else {
        None
    };
    let raw = r.bytes()?;
    let data = match kind {
        KIND_STR => PublicationData::Str(utf8(raw)?.into()),
        KIND_JSON => {
            let raw = RawValue::from_string(utf8(raw)?.to_owned()).map_err(EnvelopeError::Json)?;
            PublicationData::Json(raw)
        }
        KIND_WAMP => wamp_data(raw)?,
        other => return Err(EnvelopeError::Kind(other)),
    };
    if !r.0.is_empty() {
        return Err(EnvelopeError::Trailing(r.0.len()));
    }
    let mut publication =
        Publication::new(channel, event, data).excluding(exclude).with_user_id(user_id).with_filter(filter);
    if flags & FLAG_WAMP != 0 {
        publication = publication.from_wamp();
    }
    publication.id = id;
    Ok(Received { node, seq, publication })
}

fn wamp_data(raw: &[u8]) -> Result<PublicationData, EnvelopeError> {
    match Value::from_msgpack(raw).map_err(EnvelopeError::Wamp)? {
        Value::List(mut both) if both.len() == 2 => {
            let kwargs = match both.pop() {
                Some(Value::Dict(d)) => d,
                _ => Dict::new(),
            };
            let args = match both.pop() {
                Some(Value::List(a)) => a,
                _ => Vec::new(),
            };
            Ok(PublicationData::Wamp { args, kwargs })
        }
        _ => Err(EnvelopeError::Kind(KIND_WAMP)),
    }
}

fn data_hint(data: &PublicationData) -> usize {
    match data {
        PublicationData::Str(s) => s.len(),
        PublicationData::Json(raw) => raw.get().len(),
        PublicationData::Wamp { .. } => 64,
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    // Publications are bounded far below 4 GiB by the apps' limits.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

fn put_ids(out: &mut Vec<u8>, ids: &[u64]) {
    let len = u32::try_from(ids.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    for id in ids.iter().take(len as usize) {
        out.extend_from_slice(&id.to_le_bytes());
    }
}

fn utf8(b: &[u8]) -> Result<&str, EnvelopeError> {
    std::str::from_utf8(b).map_err(EnvelopeError::Utf8)
}

/// A cursor over the envelope's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.0.len() < n {
            return Err(EnvelopeError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, EnvelopeError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn bytes(&mut self) -> Result<&'a [u8], EnvelopeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'a str, EnvelopeError> {
        utf8(self.bytes()?)
    }

    fn ids(&mut self) -> Result<Vec<u64>, EnvelopeError> {
        let n = self.u32()? as usize;
        // Bounded by the bytes present, so a forged count cannot allocate more than arrived.
        if self.0.len() / 8 < n {
            return Err(EnvelopeError::Truncated);
        }
        (0..n).map(|_| self.u64()).collect()
    }
}

#[cfg(test)]
mod tests;
