//! A publication: one event on one channel, encoded at most once per wire format.
//!
//! Whatever its source (HTTP API, client event, WAMP publish), an event becomes a
//! `Publication`; fan-out then asks it for the complete WebSocket frame of a subscriber's wire
//! format. The first subscriber of each format pays for the encoding; every other one gets a
//! clone of the same `Bytes` (a reference count, no copy).

use std::sync::OnceLock;

use bytes::Bytes;
use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::pusher::server_msg::{self, EventData};
use herald_protocol::ws;
use serde_json::value::RawValue;

use crate::conn::Wire;

/// The event's payload as the publisher gave it.
#[derive(Debug)]
pub enum PublicationData {
    /// A string (HTTP API `data`): sent as a JSON string.
    Str(Box<str>),
    /// Raw JSON (client events): sent verbatim.
    Json(Box<RawValue>),
}

/// One event on one channel.
#[derive(Debug)]
pub struct Publication {
    /// Where it goes.
    pub channel: ChannelName,
    /// The event name.
    pub event: Box<str>,
    /// The payload.
    pub data: PublicationData,
    /// A socket id not to deliver to (the publisher's own connection).
    pub exclude: Option<Box<str>>,
    /// The sending user on presence client events.
    pub user_id: Option<Box<str>>,
    pusher_frame: OnceLock<Bytes>,
}

impl Publication {
    /// A publication with nothing encoded yet.
    pub fn new(channel: ChannelName, event: impl Into<Box<str>>, data: PublicationData) -> Self {
        Self {
            channel,
            event: event.into(),
            data,
            exclude: None,
            user_id: None,
            pusher_frame: OnceLock::new(),
        }
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

    /// The complete WebSocket frame for `wire`, encoded on first use and shared afterwards.
    pub fn frame(&self, wire: Wire) -> &Bytes {
        match wire {
            Wire::Pusher => self.pusher_frame.get_or_init(|| ws::encode_text(&self.pusher_json())),
        }
    }

    /// The Pusher JSON text of this event (without WebSocket framing).
    pub fn pusher_json(&self) -> Bytes {
        let data = match &self.data {
            PublicationData::Str(s) => EventData::Str(s),
            PublicationData::Json(raw) => EventData::Raw(raw),
        };
        server_msg::event(&self.event, self.channel.as_str(), data, self.user_id.as_deref())
    }
}
