//! The node-to-node envelope: one publication as the bytes another herald node decodes.
//!
//! Binary, compact and little-endian. The first nine bytes, the preamble, are the same in every
//! format version, so a node can always tell which version, and which node, wrote an envelope it
//! refuses:
//!
//! ```text
//! u8  format version                  u64 id of the publishing node
//! ```
//!
//! Version 2, the one this code writes and reads, goes on with:
//!
//! ```text
//! u64 sequence number on that node    u64 WAMP publication id
//! u8  flags: 1 WAMP origin, 2 exclude, 4 user_id, 8 filter, 16 publisher, 32 position,
//!     64 retain (WAMP v2: every node keeps it as the topic's retained event; no bytes of its own)
//! u8  data kind: 0 string, 1 JSON text, 2 WAMP [args, kwargs] as one MessagePack array
//! str channel   str event   [str exclude]   [str user_id]
//! [filter: ids exclude, u8 has-eligible (0 or 1), [ids eligible]]
//! [publisher: u64 WAMP session, str authid, str authrole]
//! bytes data
//! [position: str epoch, u64 serial]
//! ```
//!
//! `str` and `bytes` are a u32 length then that many bytes; `ids` is a u32 count then that many
//! u64. Version 1 had no publisher (flag 16). The position (flag 32) came later within version 2,
//! and comes last so that the one who sequences a channel's publications (a Lua script in Redis)
//! can append it to bytes a node encoded without it: an envelope without it reads as before. Decoding is strict: unknown flags, a data kind or
//! a yes/no byte out of range, text that is not UTF-8, data that is not what its kind says, and
//! trailing bytes are all refused, so what decodes encodes back to the same envelope.
//!
//! The version changes whenever the layout does, and nodes of different versions cannot read
//! each other: [`Envelope::decode`] refuses another version with [`EnvelopeError::Version`]
//! instead of guessing at the bytes. Nothing here knows the broker that carries envelopes.

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::pusher::channel_name::ChannelName;
use crate::pusher::error::ProtocolError;
use crate::wamp::WampError;
use crate::wamp::v2::{Dict, Value, msgpack_args_kwargs};

/// The format version this code writes and the only one it reads.
pub const VERSION: u8 = 2;

/// Bytes of the preamble (version and node id), the same in every version.
pub const PREAMBLE_LEN: usize = 9;

/// Longest channel or topic name accepted from another node (the sender validated it already
/// against its own, smaller, limits).
const MAX_NAME: usize = u16::MAX as usize;

const FLAG_WAMP: u8 = 1;
const FLAG_EXCLUDE: u8 = 2;
const FLAG_USER: u8 = 4;
const FLAG_FILTER: u8 = 8;
const FLAG_PUBLISHER: u8 = 16;
/// The envelope ends with its channel position (channels with history, sequenced by the broker).
pub const FLAG_POSITION: u8 = 32;
/// WAMP v2 `retain`: each node keeps the event as its topic's retained event.
const FLAG_RETAIN: u8 = 64;
const FLAGS_KNOWN: u8 =
    FLAG_WAMP | FLAG_EXCLUDE | FLAG_USER | FLAG_FILTER | FLAG_PUBLISHER | FLAG_POSITION | FLAG_RETAIN;

/// Offset of the flags byte: after the preamble, the sequence number and the WAMP id.
pub const FLAGS_OFFSET: usize = PREAMBLE_LEN + 16;

const KIND_STR: u8 = 0;
const KIND_JSON: u8 = 1;
const KIND_WAMP: u8 = 2;

/// One publication on its way from the node that accepted it to the others.
///
/// Borrowed where it can be: encoding needs no copy of the publication, and a decoded envelope
/// points into the received bytes (WAMP arguments and filter ids excepted, which are parsed).
#[derive(Clone, Debug)]
pub struct Envelope<'a> {
    /// The publishing node's id (random per process), so that a node skips its own envelopes.
    pub node: u64,
    /// The envelope's number on its node, increasing: receivers drop what they have seen, so a
    /// batch sent twice after a lost connection is not delivered twice.
    pub seq: u64,
    /// The WAMP publication id, the same on every node.
    pub id: u64,
    /// Published by WAMP (a session or a WAMP-style ingress): WAMP subscribers get the payload
    /// as published, without the Pusher event name.
    pub wamp: bool,
    /// WAMP v2 `retain`: every node keeps it as the topic's retained event.
    pub retain: bool,
    /// The channel (Pusher) or topic (WAMP).
    pub channel: ChannelName,
    /// The event name.
    pub event: &'a str,
    /// A socket id not to deliver to.
    pub exclude: Option<&'a str>,
    /// The sending user of a presence client event.
    pub user_id: Option<&'a str>,
    /// WAMP exclusion and eligibility lists.
    pub filter: Option<Filter<'a>>,
    /// The WAMP publisher, when its role discloses it to subscribers.
    pub publisher: Option<Publisher<'a>>,
    /// The payload.
    pub data: Data<'a>,
    /// The publication's place in its channel's history (epoch, serial), when the broker
    /// sequenced it.
    pub position: Option<(&'a str, u64)>,
}

/// WAMP publisher exclusion and black/white listing, by WAMP session id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter<'a> {
    /// Sessions that must not receive the event.
    pub exclude: Cow<'a, [u64]>,
    /// When set, only these sessions may receive it.
    pub eligible: Option<Cow<'a, [u64]>>,
}

/// A WAMP publisher disclosed to subscribers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publisher<'a> {
    /// The publisher's WAMP session id.
    pub session: u64,
    /// Its authid.
    pub authid: &'a str,
    /// Its authrole.
    pub authrole: &'a str,
}

/// The payload, as the publisher gave it.
#[derive(Clone, Debug)]
pub enum Data<'a> {
    /// A string (Pusher HTTP API `data`).
    Str(&'a str),
    /// JSON text (client events, WAMP v1 events, ingress submissions).
    Json(&'a RawValue),
    /// WAMP v2 arguments.
    Wamp {
        /// Positional arguments.
        args: Cow<'a, [Value]>,
        /// Keyword arguments.
        kwargs: Cow<'a, Dict>,
    },
}

/// Why an envelope from another node is refused.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Written by a node that speaks another format version; its bytes are not read further.
    #[error("an envelope of format version {version} from node {node:016x}: this node speaks version {VERSION}")]
    Version {
        /// The version the sender wrote.
        version: u8,
        /// The sender's node id, from the preamble every version shares.
        node: u64,
    },
    /// The bytes end before the envelope does.
    #[error("envelope is truncated")]
    Truncated,
    /// Bytes follow the end of the envelope.
    #[error("envelope has {0} trailing bytes")]
    Trailing(usize),
    /// Flag bits this version does not define.
    #[error("envelope flags {0:#04x} are unknown")]
    Flags(u8),
    /// A data kind this version does not define.
    #[error("envelope data kind {0} is unknown")]
    Kind(u8),
    /// A yes/no byte that is neither 0 nor 1.
    #[error("envelope yes/no byte is {0}")]
    Bool(u8),
    /// A text field is not UTF-8.
    #[error("envelope text is not UTF-8: {0}")]
    Utf8(#[source] std::str::Utf8Error),
    /// The channel name is empty, has a control character or is too long.
    #[error("envelope channel is invalid: {0}")]
    Channel(#[source] ProtocolError),
    /// JSON data that is not exactly one JSON value (whitespace around it included).
    #[error("envelope JSON data is invalid: {0}")]
    Json(#[source] serde_json::Error),
    /// WAMP data that is not MessagePack.
    #[error("envelope WAMP data is invalid: {0}")]
    Wamp(#[source] WampError),
    /// WAMP data that is MessagePack but not an `[args list, kwargs dict]` array.
    #[error("envelope WAMP data is not an [args, kwargs] array")]
    WampShape,
}

impl Envelope<'_> {
    /// The envelope's bytes, in format [`VERSION`].
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let wamp_data;
        let data: &[u8] = match &self.data {
            Data::Str(s) => s.as_bytes(),
            Data::Json(raw) => raw.get().as_bytes(),
            Data::Wamp { args, kwargs } => {
                wamp_data = msgpack_args_kwargs(args, kwargs);
                &wamp_data
            }
        };
        let mut out = Vec::with_capacity(64 + self.channel.as_str().len() + self.event.len() + data.len());
        out.push(VERSION);
        for n in [self.node, self.seq, self.id] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.push(self.flags());
        out.push(match self.data {
            Data::Str(_) => KIND_STR,
            Data::Json(_) => KIND_JSON,
            Data::Wamp { .. } => KIND_WAMP,
        });
        put(&mut out, self.channel.as_str().as_bytes());
        put(&mut out, self.event.as_bytes());
        for s in [self.exclude, self.user_id].into_iter().flatten() {
            put(&mut out, s.as_bytes());
        }
        if let Some(f) = &self.filter {
            put_ids(&mut out, &f.exclude);
            out.push(u8::from(f.eligible.is_some()));
            if let Some(e) = &f.eligible {
                put_ids(&mut out, e);
            }
        }
        if let Some(p) = &self.publisher {
            out.extend_from_slice(&p.session.to_le_bytes());
            put(&mut out, p.authid.as_bytes());
            put(&mut out, p.authrole.as_bytes());
        }
        put(&mut out, data);
        if let Some((epoch, serial)) = self.position {
            put(&mut out, epoch.as_bytes());
            out.extend_from_slice(&serial.to_le_bytes());
        }
        out
    }

    fn flags(&self) -> u8 {
        let mut flags = 0;
        for (set, flag) in [
            (self.wamp, FLAG_WAMP),
            (self.exclude.is_some(), FLAG_EXCLUDE),
            (self.user_id.is_some(), FLAG_USER),
            (self.filter.is_some(), FLAG_FILTER),
            (self.publisher.is_some(), FLAG_PUBLISHER),
            (self.position.is_some(), FLAG_POSITION),
            (self.retain, FLAG_RETAIN),
        ] {
            if set {
                flags |= flag;
            }
        }
        flags
    }
}

impl<'a> Envelope<'a> {
    /// Decodes an envelope written by [`Envelope::encode`] on any node of this format version.
    ///
    /// # Errors
    /// [`EnvelopeError::Version`] for another format version (with the sender's node id);
    /// the other variants for damaged or malformed bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Envelope<'a>, EnvelopeError> {
        let mut r = Reader(bytes);
        let (version, node) = (r.u8()?, r.u64()?);
        if version != VERSION {
            return Err(EnvelopeError::Version { version, node });
        }
        let (seq, id) = (r.u64()?, r.u64()?);
        let flags = r.u8()?;
        if flags & !FLAGS_KNOWN != 0 {
            return Err(EnvelopeError::Flags(flags));
        }
        let kind = r.u8()?;
        if kind > KIND_WAMP {
            return Err(EnvelopeError::Kind(kind));
        }
        let channel = ChannelName::topic(r.str()?, MAX_NAME).map_err(EnvelopeError::Channel)?;
        let event = r.str()?;
        let exclude = if flags & FLAG_EXCLUDE != 0 { Some(r.str()?) } else { None };
        let user_id = if flags & FLAG_USER != 0 { Some(r.str()?) } else { None };
        let filter = if flags & FLAG_FILTER != 0 {
            let exclude = Cow::Owned(r.ids()?);
            let eligible = if r.bool()? { Some(Cow::Owned(r.ids()?)) } else { None };
            Some(Filter { exclude, eligible })
        } else {
            None
        };
        let publisher = if flags & FLAG_PUBLISHER != 0 {
            Some(Publisher { session: r.u64()?, authid: r.str()?, authrole: r.str()? })
        } else {
            None
        };
        let raw = r.bytes()?;
        let position = if flags & FLAG_POSITION != 0 { Some((r.str()?, r.u64()?)) } else { None };
        if !r.0.is_empty() {
            return Err(EnvelopeError::Trailing(r.0.len()));
        }
        let data = match kind {
            KIND_STR => Data::Str(utf8(raw)?),
            KIND_JSON => Data::Json(json(utf8(raw)?)?),
            _ => wamp_data(raw)?,
        };
        Ok(Envelope {
            node,
            seq,
            id,
            wamp: flags & FLAG_WAMP != 0,
            retain: flags & FLAG_RETAIN != 0,
            channel,
            event,
            exclude,
            user_id,
            filter,
            publisher,
            data,
            position,
        })
    }
}

/// `[args, kwargs]`, exactly: a list and a dict, nothing else.
fn wamp_data<'a>(raw: &[u8]) -> Result<Data<'a>, EnvelopeError> {
    let Value::List(both) = Value::from_msgpack(raw).map_err(EnvelopeError::Wamp)? else {
        return Err(EnvelopeError::WampShape);
    };
    let Ok([Value::List(args), Value::Dict(kwargs)]) = <[Value; 2]>::try_from(both) else {
        return Err(EnvelopeError::WampShape);
    };
    Ok(Data::Wamp { args: Cow::Owned(args), kwargs: Cow::Owned(kwargs) })
}

/// One JSON value, exactly: whitespace around it is refused too, since no encoder writes it
/// and it would not survive a round trip.
fn json(text: &str) -> Result<&RawValue, EnvelopeError> {
    let raw: &RawValue = serde_json::from_str(text).map_err(EnvelopeError::Json)?;
    if raw.get().len() != text.len() {
        return Err(EnvelopeError::Json(serde::de::Error::custom("whitespace around the value")));
    }
    Ok(raw)
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
        let Some((head, tail)) = self.0.split_at_checked(n) else { return Err(EnvelopeError::Truncated) };
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        let mut b = [0; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }

    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        Ok(self.array::<1>()?[0])
    }

    fn bool(&mut self) -> Result<bool, EnvelopeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(EnvelopeError::Bool(other)),
        }
    }

    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, EnvelopeError> {
        Ok(u64::from_le_bytes(self.array()?))
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
