//! Decoding of the frames a Pusher client sends.
//!
//! This only checks the shape of a message. Channel-name rules, signatures, membership and rate
//! limits are checked by the caller with [`ChannelName`](super::ChannelName) and
//! [`socket_auth`](super::socket_auth).

use serde_json::value::RawValue;

use super::ProtocolError;
use super::field_reader::{non_null, opt_string, read_fields, req_string, string};

/// Prefix every client event name must carry (Pusher's "Client events" docs).
pub const CLIENT_EVENT_PREFIX: &str = "client-";

/// One decoded client frame.
#[derive(Debug)]
pub enum ClientMsg {
    /// `pusher:ping`; the server answers `pusher:pong`. Any `data` is ignored.
    Ping,
    /// `pusher:pong`, the answer to a server `pusher:ping`. Any `data` is ignored.
    Pong,
    /// `pusher:subscribe`.
    Subscribe {
        /// The channel, not yet validated.
        channel: String,
        /// `"<key>:<signature>"`; pusher-js sends `""` for public and `#server-to-user-` channels.
        auth: Option<String>,
        /// Presence member JSON, kept as the exact string that was signed.
        channel_data: Option<String>,
        /// `recover`: the last history position the client saw on this channel.
        recover: Option<Recover>,
    },
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel, not yet validated.
        channel: String,
    },
    /// `pusher:signin`.
    Signin {
        /// `"<key>:<signature>"`.
        auth: String,
        /// User JSON, kept as the exact string that was signed.
        user_data: String,
    },
    /// A `client-*` event to relay to the channel's other subscribers.
    ClientEvent {
        /// Event name, starting with [`CLIENT_EVENT_PREFIX`].
        event: String,
        /// The channel, not yet validated.
        channel: String,
        /// The payload exactly as sent (any JSON value, usually an object or a string).
        data: Box<RawValue>,
    },
    /// Any other event name. The server answers with a `pusher:error`; it is not fatal.
    Other {
        /// The unknown event name.
        event: String,
    },
}

/// The `recover` field of a `pusher:subscribe`: `{"epoch":"..","serial":n}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recover {
    /// The last position the client saw.
    From {
        /// The history's epoch.
        epoch: String,
        /// The last serial seen.
        serial: u64,
    },
    /// Present but not of that shape. The subscription itself is still valid: the caller
    /// answers it as a failed recovery rather than refusing the channel.
    Invalid,
}

impl Recover {
    fn parse(raw: Option<&RawValue>) -> Option<Recover> {
        let raw = non_null(raw)?;
        let Ok([epoch, serial]) = read_fields(raw.get(), &["epoch", "serial"]) else { return Some(Recover::Invalid) };
        let epoch = non_null(epoch).and_then(|e| string(e, "epoch").ok());
        let serial = non_null(serial).and_then(|s| s.get().parse::<u64>().ok());
        Some(match (epoch, serial) {
            (Some(epoch), Some(serial)) if !epoch.is_empty() && epoch.len() <= 64 => Recover::From { epoch, serial },
            _ => Recover::Invalid,
        })
    }
}

/// Parses one client frame (a UTF-8 JSON text frame).
///
/// `data` of `pusher:*` events is an object (pusher-js) but is also accepted as a JSON string
/// holding an object, since some clients double-encode. A `null` optional field counts as absent.
///
/// # Errors
/// [`ProtocolError::NotJson`] for bytes that are not UTF-8 JSON,
/// [`ProtocolError::NotAnObject`] for another JSON value, [`ProtocolError::MissingField`] and
/// [`ProtocolError::WrongType`] for absent or mistyped fields (including a `data` that is
/// neither an object nor a string holding one).
pub fn parse_client_msg(frame: &[u8]) -> Result<ClientMsg, ProtocolError> {
    let text = std::str::from_utf8(frame).map_err(|_| ProtocolError::NotJson)?;
    let [event, channel, data] = read_fields(text, &["event", "channel", "data"])?;
    let event = req_string(event, "event")?;
    match event.as_str() {
        "pusher:ping" => Ok(ClientMsg::Ping),
        "pusher:pong" => Ok(ClientMsg::Pong),
        "pusher:subscribe" => {
            with_data_fields(data, &["channel", "auth", "channel_data", "recover"], |[ch, auth, cd, recover]| {
                Ok(ClientMsg::Subscribe {
                    channel: req_string(ch, "channel")?,
                    auth: opt_string(auth, "auth")?,
                    channel_data: opt_string(cd, "channel_data")?,
                    recover: Recover::parse(recover),
                })
            })
        }
        "pusher:unsubscribe" => with_data_fields(data, &["channel"], |[ch]| {
            Ok(ClientMsg::Unsubscribe { channel: req_string(ch, "channel")? })
        }),
        "pusher:signin" => with_data_fields(data, &["auth", "user_data"], |[auth, ud]| {
            Ok(ClientMsg::Signin { auth: req_string(auth, "auth")?, user_data: req_string(ud, "user_data")? })
        }),
        name if name.starts_with(CLIENT_EVENT_PREFIX) => {
            let channel = req_string(channel, "channel")?;
            // `null` is a legitimate payload for a relayed event, so only absence is an error.
            let data = data.ok_or(ProtocolError::MissingField("data"))?.to_owned();
            Ok(ClientMsg::ClientEvent { event, channel, data })
        }
        _ => Ok(ClientMsg::Other { event }),
    }
}

/// Reads the fields of a `pusher:*` event's `data`, given as an object or as a string holding
/// one, and hands them to `build`.
fn with_data_fields<const N: usize, T>(
    data: Option<&RawValue>,
    names: &[&'static str; N],
    build: impl FnOnce([Option<&RawValue>; N]) -> Result<T, ProtocolError>,
) -> Result<T, ProtocolError> {
    let data = non_null(data).ok_or(ProtocolError::MissingField("data"))?;
    let wrong_type = |_| ProtocolError::WrongType("data");
    if data.get().starts_with('"') {
        let inner = string(data, "data")?;
        build(read_fields(&inner, names).map_err(wrong_type)?)
    } else {
        build(read_fields(data.get(), names).map_err(wrong_type)?)
    }
}

#[cfg(test)]
mod tests;
