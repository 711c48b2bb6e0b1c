//! A publication: one event on one channel, encoded at most once per wire format.
//!
//! Whatever its source (HTTP API, client event, WAMP publish, ZeroMQ), an event becomes a
//! `Publication`; fan-out asks it for the complete WebSocket frame of a subscriber's wire format.
//! The first subscriber of each format pays for the encoding; every other one gets a clone of
//! the same `Bytes` (a reference count, no copy).
//!
//! The Pusher <-> WAMP mapping (docs/wamp.md) lives in `publication/payload.rs`: Pusher `data` strings become
//! a WAMP payload value, WAMP arguments become Pusher `data`.

mod payload;

use std::sync::OnceLock;

use bytes::Bytes;
use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::pusher::server_msg;
use herald_protocol::wamp::v2::{Dict, Id, Value};
use herald_protocol::wamp::{Serializer, encode_event_v1, encode_event_v2};
use herald_protocol::ws;
use serde_json::value::RawValue;

use crate::conn::Conn;
use crate::wire::Wire;

/// The event's payload as the publisher gave it.
#[derive(Debug)]
pub enum PublicationData {
    /// A string (Pusher HTTP API `data`): sent to Pusher clients as a JSON string.
    Str(Box<str>),
    /// Raw JSON (Pusher client events, WAMP v1 events, ZeroMQ submissions): sent verbatim.
    Json(Box<RawValue>),
    /// WAMP v2 arguments, as published.
    Wamp {
        /// Positional arguments.
        args: Vec<Value>,
        /// Keyword arguments.
        kwargs: Dict,
    },
}

impl PublicationData {
    /// The payload as the text of Pusher's `data`: a string as it is, raw JSON as its text,
    /// WAMP arguments as the JSON a WAMP v1 subscriber would get.
    pub fn json_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            PublicationData::Str(s) => std::borrow::Cow::Borrowed(s),
            PublicationData::Json(raw) => std::borrow::Cow::Borrowed(raw.get()),
            PublicationData::Wamp { .. } => std::borrow::Cow::Owned(payload::v1_payload(self).get().to_owned()),
        }
    }
}

/// Who published, which decides whether WAMP receivers get the Pusher event name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The Pusher HTTP API or a Pusher client event: WAMP v2 receivers get `kwargs.event`.
    Pusher,
    /// A WAMP session or a WAMP-style ingress: the payload is passed as published.
    Wamp,
}

/// WAMP publisher exclusion and black/white listing, by WAMP session id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WampFilter {
    /// Sessions that must not receive the event.
    pub exclude: Vec<u64>,
    /// When set, only these sessions may receive it.
    pub eligible: Option<Vec<u64>>,
}

impl WampFilter {
    /// Whether the connection with this WAMP session id may receive the event.
    pub fn admits(&self, session: u64) -> bool {
        !self.exclude.contains(&session) && self.eligible.as_ref().is_none_or(|e| e.contains(&session))
    }
}

/// Where a publication sits in its channel's history (module `history`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The history's epoch.
    pub epoch: std::sync::Arc<str>,
    /// 1 for the epoch's first publication, +1 per publication.
    pub serial: u64,
}

/// One event on one channel.
#[derive(Debug)]
pub struct Publication {
    /// Where it goes.
    pub channel: ChannelName,
    /// The event name (the Pusher `event`; for WAMP publications, `kwargs.event` or the topic).
    pub event: Box<str>,
    /// The payload.
    pub data: PublicationData,
    /// Who published it.
    pub origin: Origin,
    /// A socket id not to deliver to (the publisher's own connection).
    pub exclude: Option<Box<str>>,
    /// The sending user on presence client events.
    pub user_id: Option<Box<str>>,
    /// WAMP exclusion and eligibility lists.
    pub filter: Option<Box<WampFilter>>,
    /// The WAMP publication id (random, as WAMP requires).
    pub id: u64,
    /// The WAMP publisher, when its role discloses it to subscribers.
    pub publisher: Option<Box<Publisher>>,
    /// Kept as the channel's retained event (WAMP v2 `retain`), on the node that delivers it.
    pub retain: bool,
    /// Where it sits in its channel's history (channels with history only): set once, before
    /// the first frame is encoded, by the hub or by a backend that sequences publications
    /// across nodes.
    position: OnceLock<Position>,
    frames: [OnceLock<Bytes>; 4],
}

/// A WAMP publisher disclosed to subscribers (`disclose = { publisher = true }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publisher {
    /// The publisher's WAMP session id.
    pub session: u64,
    /// Its authid.
    pub authid: Box<str>,
    /// Its authrole.
    pub authrole: Box<str>,
}

impl Publication {
    /// Discloses the publisher in WAMP v2 EVENT details.
    #[must_use]
    pub fn disclosing(mut self, publisher: Option<Publisher>) -> Self {
        self.publisher = publisher.map(Box::new);
        self
    }

    /// A publication with nothing encoded yet, from a Pusher source.
    pub fn new(channel: ChannelName, event: impl Into<Box<str>>, data: PublicationData) -> Self {
        Self {
            channel,
            event: event.into(),
            data,
            origin: Origin::Pusher,
            exclude: None,
            user_id: None,
            filter: None,
            publisher: None,
            retain: false,
            id: rand::random_range(1..=(1u64 << 53)),
            position: OnceLock::new(),
            frames: Default::default(),
        }
    }

    /// Marks the publication as coming from WAMP (no Pusher event name added for WAMP receivers).
    #[must_use]
    pub fn from_wamp(mut self) -> Self {
        self.origin = Origin::Wamp;
        self
    }

    /// Excludes the connection with this socket id.
    #[must_use]
    pub fn excluding(mut self, socket_id: Option<impl Into<Box<str>>>) -> Self {
        self.exclude = socket_id.map(Into::into);
        self
    }

    /// Adds the sender's user id (presence client events).
    #[must_use]
    pub fn with_user_id(mut self, user_id: Option<impl Into<Box<str>>>) -> Self {
        self.user_id = user_id.map(Into::into);
        self
    }

    /// Adds WAMP exclusion/eligibility lists.
    #[must_use]
    pub fn with_filter(mut self, filter: Option<WampFilter>) -> Self {
        self.filter = filter.map(Box::new);
        self
    }

    /// Marks the publication to be kept as its channel's retained event.
    #[must_use]
    pub fn retaining(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Its position in its channel's history, once given.
    pub fn position(&self) -> Option<&Position> {
        self.position.get()
    }

    /// Gives the publication its history position. Must happen before any frame is encoded
    /// (the Pusher frame carries it); the hub does it under the channel's history lock, a
    /// backend sequencing across nodes before it hands the publication to the hub.
    ///
    /// # Errors
    /// The position back when one was set already.
    pub fn set_position(&self, position: Position) -> Result<(), Position> {
        debug_assert!(self.frames.iter().all(|f| f.get().is_none()), "position set after encoding");
        self.position.set(position)
    }

    /// Roughly what holding it costs: the payload, names and ids (history memory budget).
    pub fn approx_bytes(&self) -> usize {
        let data = match &self.data {
            PublicationData::Str(s) => s.len(),
            PublicationData::Json(raw) => raw.get().len(),
            PublicationData::Wamp { .. } => self.data.json_text().len(),
        };
        data + self.event.len() + self.channel.as_str().len() + self.user_id.as_ref().map_or(0, |u| u.len())
    }

    /// Whether `conn` may receive this publication.
    pub fn admits(&self, conn: &Conn) -> bool {
        if self.exclude.as_deref() == Some(conn.socket_id.as_str()) {
            return false;
        }
        self.filter.as_ref().is_none_or(|f| f.admits(conn.session))
    }

    /// The complete WebSocket frame for `wire`, encoded on first use and shared afterwards.
    ///
    /// `subscription` is the WAMP v2 subscription id of the channel; it is the same for every
    /// exact subscriber of the channel, so the cached frame is valid for all of them.
    pub fn frame(&self, wire: Wire, subscription: u64) -> &Bytes {
        let slot = match wire {
            Wire::Pusher => 0,
            Wire::WampV1 => 1,
            Wire::WampV2(Serializer::Json) => 2,
            Wire::WampV2(Serializer::MsgPack) => 3,
        };
        self.frames[slot].get_or_init(|| self.encode(wire, subscription, None))
    }

    /// Encodes the frame for `wire`; `topic` is set for WAMP v2 pattern subscriptions, whose
    /// EVENT details carry the concrete topic.
    pub fn encode(&self, wire: Wire, subscription: u64, topic: Option<&str>) -> Bytes {
        match wire {
            Wire::Pusher => ws::encode_text(&self.pusher_json()),
            Wire::WampV1 => {
                let payload = payload::v1_payload(&self.data);
                ws::encode_text(&encode_event_v1(self.channel.as_str(), &payload))
            }
            Wire::WampV2(ser) => self.encode_v2(ser, subscription, topic, false),
        }
    }

    /// The WAMP v2 EVENT of this publication sent as a retained event (`retained: true` in
    /// its details), to one subscriber of `subscription`; other wires have no retained events.
    pub fn encode_retained(&self, wire: Wire, subscription: u64) -> Option<Bytes> {
        match wire {
            Wire::WampV2(ser) => Some(self.encode_v2(ser, subscription, None, true)),
            Wire::Pusher | Wire::WampV1 => None,
        }
    }

    /// The WAMP v2 `(args, kwargs)` subscribers of this publication get (event history reads).
    pub fn v2_args(&self) -> (std::borrow::Cow<'_, [Value]>, Option<std::borrow::Cow<'_, Dict>>) {
        payload::v2_payload(&self.data, self.origin, &self.event)
    }

    fn encode_v2(&self, ser: Serializer, subscription: u64, topic: Option<&str>, retained: bool) -> Bytes {
        let (args, kwargs) = payload::v2_payload(&self.data, self.origin, &self.event);
        let mut details = topic.map_or_else(Dict::new, |t| Dict::new().with("topic", t));
        if let Some(p) = &self.publisher {
            details.insert("publisher", p.session);
            details.insert("publisher_authid", p.authid.as_ref());
            details.insert("publisher_authrole", p.authrole.as_ref());
        }
        if retained {
            details.insert("retained", true);
        }
        let sub = Id::saturating(subscription);
        let publication = Id::saturating(self.id);
        let body = encode_event_v2(ser, sub, publication, &details, Some(&args), kwargs.as_deref());
        match ser {
            Serializer::Json => ws::encode_text(&body),
            Serializer::MsgPack => ws::encode_binary(&body),
        }
    }

    /// The event's `data` as Pusher clients receive it, as text (HTTP API cache info).
    pub fn pusher_data_text(&self) -> String {
        match payload::pusher_data(&self.data, self.origin) {
            payload::PusherData::Str(s) => s.into_owned(),
            payload::PusherData::Raw(r) => r.get().to_owned(),
        }
    }

    /// The Pusher JSON text of this event (without WebSocket framing).
    pub fn pusher_json(&self) -> Bytes {
        let data = payload::pusher_data(&self.data, self.origin);
        let position = self.position().map(|p| (&*p.epoch, p.serial));
        server_msg::event_at(
            &self.event,
            self.channel.as_str(),
            data.as_event_data(),
            self.user_id.as_deref(),
            position,
        )
    }
}

#[cfg(test)]
mod tests;
