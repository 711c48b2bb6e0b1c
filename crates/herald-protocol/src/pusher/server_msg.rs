//! Encoding of the messages a Pusher server sends (the Pusher Channels Protocol page's event list).
//!
//! Each function returns the JSON text of one message as [`Bytes`], ready to be put into a
//! WebSocket text frame by the caller (no framing here). `data` is double-encoded, i.e. a JSON
//! string holding JSON, except for `pusher:error`, whose `data` is an object like the
//! hosted service sends, and application events, whose `data` is what the publisher
//! gave. Frames are written by hand: [`event`] runs once per publication on the publish path.

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::json_text::JsonWriter;

/// Payload of an application event: whatever JSON or text the publisher gave.
#[derive(Debug, Clone, Copy)]
pub enum EventData<'a> {
    /// A string, as the HTTP API delivers it; emitted as a JSON string.
    Str(&'a str),
    /// Any JSON value, as client events carry it; emitted verbatim.
    Raw(&'a RawValue),
}

/// `pusher:connection_established`, the first message on every connection.
/// pusher-js refuses the handshake if `activity_timeout_s` is 0.
pub fn connection_established(socket_id: &str, activity_timeout_s: u32) -> Bytes {
    let mut data = JsonWriter::with_capacity(48 + socket_id.len());
    data.raw(r#"{"socket_id":"#)
        .string(socket_id)
        .raw(r#","activity_timeout":"#)
        .uint(u64::from(activity_timeout_s))
        .raw("}");
    envelope("pusher:connection_established", None, data.as_str())
}

/// `pusher:error` with `data` as an object `{"message":..,"code":..}`; `code` is `null` for
/// non-fatal problems.
pub fn error(code: Option<u16>, message: &str) -> Bytes {
    let mut w = JsonWriter::with_capacity(64 + message.len());
    w.raw(r#"{"event":"pusher:error","data":{"message":"#).string(message).raw(r#","code":"#);
    match code {
        Some(code) => w.uint(u64::from(code)),
        None => w.raw("null"),
    };
    w.raw("}}");
    w.into_bytes()
}

/// `pusher:pong`, the answer to a client's `pusher:ping`.
pub fn pong() -> Bytes {
    Bytes::from_static(br#"{"event":"pusher:pong","data":"{}"}"#)
}

/// `pusher_internal:subscription_succeeded` for a non-presence channel, with `data` `"{}"`
/// exactly as the hosted service sends it (some clients parse it).
pub fn subscription_succeeded(channel: &str) -> Bytes {
    envelope("pusher_internal:subscription_succeeded", Some(channel), "{}")
}

/// `pusher_internal:subscription_succeeded` for a presence channel:
/// `{"presence":{"ids":[..],"hash":{id:info|null},"count":n}}`, string-encoded. `members` must
/// hold distinct user ids; a member without `user_info` is listed with `null`.
pub fn presence_subscription_succeeded<'a>(
    channel: &str,
    members: impl ExactSizeIterator<Item = (&'a str, Option<&'a RawValue>)>,
) -> Bytes {
    let guess = members.len() * 24;
    let mut ids = JsonWriter::with_capacity(guess / 2 + 2);
    let mut hash = JsonWriter::with_capacity(guess + 2);
    let mut count: u64 = 0;
    for (id, info) in members {
        if count > 0 {
            ids.raw(",");
            hash.raw(",");
        }
        ids.string(id);
        hash.string(id).raw(":").raw(info.map_or("null", RawValue::get));
        count += 1;
    }
    let mut data = JsonWriter::with_capacity(48 + ids.len() + hash.len());
    data.raw(r#"{"presence":{"ids":["#)
        .raw(ids.as_str())
        .raw(r#"],"hash":{"#)
        .raw(hash.as_str())
        .raw(r#"},"count":"#)
        .uint(count)
        .raw("}}");
    envelope("pusher_internal:subscription_succeeded", Some(channel), data.as_str())
}

/// `pusher_internal:member_added`; `user_info` is left out when the member has none.
pub fn member_added(channel: &str, user_id: &str, user_info: Option<&RawValue>) -> Bytes {
    let info_len = user_info.map_or(0, |i| i.get().len());
    let mut data = JsonWriter::with_capacity(32 + user_id.len() + info_len);
    data.raw(r#"{"user_id":"#).string(user_id);
    if let Some(info) = user_info {
        data.raw(r#","user_info":"#).raw(info.get());
    }
    data.raw("}");
    envelope("pusher_internal:member_added", Some(channel), data.as_str())
}

/// `pusher_internal:member_removed`.
pub fn member_removed(channel: &str, user_id: &str) -> Bytes {
    let mut data = JsonWriter::with_capacity(16 + user_id.len());
    data.raw(r#"{"user_id":"#).string(user_id).raw("}");
    envelope("pusher_internal:member_removed", Some(channel), data.as_str())
}

/// `pusher:cache_miss`, sent after `subscription_succeeded` on an empty cache channel; it has no
/// `data` (cache channels).
pub fn cache_miss(channel: &str) -> Bytes {
    let mut w = JsonWriter::with_capacity(48 + channel.len());
    w.raw(r#"{"event":"pusher:cache_miss","channel":"#).string(channel).raw("}");
    w.into_bytes()
}

/// `pusher:signin_success` carrying the signed `user_data` string back.
pub fn signin_success(user_data: &str) -> Bytes {
    let mut data = JsonWriter::with_capacity(20 + user_data.len() * 9 / 8);
    data.raw(r#"{"user_data":"#).string(user_data).raw("}");
    envelope("pusher:signin_success", None, data.as_str())
}

/// `pusher_internal:watchlist_events`: each entry is an event name (`"online"` or
/// `"offline"`) with the user ids it concerns.
pub fn watchlist_events(events: &[(&str, &[&str])]) -> Bytes {
    let mut data = JsonWriter::with_capacity(16 + events.len() * 48);
    data.raw(r#"{"events":["#);
    for (i, (name, user_ids)) in events.iter().enumerate() {
        if i > 0 {
            data.raw(",");
        }
        data.raw(r#"{"name":"#).string(name).raw(r#","user_ids":["#);
        for (j, id) in user_ids.iter().enumerate() {
            if j > 0 {
                data.raw(",");
            }
            data.string(id);
        }
        data.raw("]}");
    }
    data.raw("]}");
    envelope("pusher_internal:watchlist_events", None, data.as_str())
}

/// `pusher_internal:subscription_count`.
pub fn subscription_count(channel: &str, count: usize) -> Bytes {
    let mut data = JsonWriter::with_capacity(32);
    data.raw(r#"{"subscription_count":"#).uint(u64::try_from(count).unwrap_or(u64::MAX)).raw("}");
    envelope("pusher_internal:subscription_count", Some(channel), data.as_str())
}

/// `pusher:subscription_error` on `channel` with `{"type":"AuthError","error":..,"status":..}`,
/// the shape pusher-js itself emits when authorization fails.
pub fn subscription_error(channel: &str, status: u16, message: &str) -> Bytes {
    let mut data = JsonWriter::with_capacity(48 + message.len());
    data.raw(r#"{"type":"AuthError","error":"#).string(message).raw(r#","status":"#).uint(u64::from(status)).raw("}");
    envelope("pusher:subscription_error", Some(channel), data.as_str())
}

/// An application or client event on `channel`. `user_id` is set for client
/// events on presence channels, naming the sender.
pub fn event(event: &str, channel: &str, data: EventData<'_>, user_id: Option<&str>) -> Bytes {
    event_at(event, channel, data, user_id, None)
}

/// A channel event as [`event`], followed on channels that keep a history by its position in
/// that history: top-level `"epoch":"..","serial":n` after the usual fields (clients that do
/// not know them ignore them).
pub fn event_at(
    event: &str,
    channel: &str,
    data: EventData<'_>,
    user_id: Option<&str>,
    position: Option<(&str, u64)>,
) -> Bytes {
    let data_len = match data {
        EventData::Str(s) => s.len() + s.len() / 8 + 2,
        EventData::Raw(raw) => raw.get().len(),
    };
    let capacity = 40 + event.len() + channel.len() + data_len + user_id.map_or(0, |u| u.len() + 16);
    let mut w = JsonWriter::with_capacity(capacity);
    w.raw(r#"{"event":"#).string(event).raw(r#","channel":"#).string(channel).raw(r#","data":"#);
    match data {
        EventData::Str(s) => w.string(s),
        EventData::Raw(raw) => w.raw(raw.get()),
    };
    if let Some(user_id) = user_id {
        w.raw(r#","user_id":"#).string(user_id);
    }
    if let Some((epoch, serial)) = position {
        w.raw(r#","epoch":"#).string(epoch).raw(r#","serial":"#).uint(serial);
    }
    w.raw("}");
    w.into_bytes()
}

/// `pusher_internal:subscription_succeeded` (as [`subscription_succeeded`] or
/// [`presence_subscription_succeeded`] made it) with the channel's history position added as
/// top-level `"epoch"` and `"serial"`.
pub fn with_position(frame_json: &[u8], epoch: &str, serial: u64) -> Bytes {
    let body = frame_json.strip_suffix(b"}").unwrap_or(frame_json);
    let mut w = JsonWriter::with_capacity(body.len() + epoch.len() + 40);
    w.raw(&String::from_utf8_lossy(body)).raw(r#","epoch":"#).string(epoch).raw(r#","serial":"#).uint(serial).raw("}");
    w.into_bytes()
}

/// `pusher:recovery_failed`: the subscription stands, but the publications missed since the
/// position the client gave cannot be replayed. `data` carries the reason and the channel's
/// current position.
pub fn recovery_failed(channel: &str, reason: &str, epoch: &str, serial: u64) -> Bytes {
    let mut data = JsonWriter::with_capacity(48 + reason.len() + epoch.len());
    data.raw(r#"{"reason":"#)
        .string(reason)
        .raw(r#","epoch":"#)
        .string(epoch)
        .raw(r#","serial":"#)
        .uint(serial)
        .raw("}");
    envelope("pusher:recovery_failed", Some(channel), data.as_str())
}

/// `{"event":..,"channel":..,"data":"<data as a JSON string>"}`.
fn envelope(event: &str, channel: Option<&str>, data: &str) -> Bytes {
    let capacity = 32 + event.len() + channel.map_or(0, |c| c.len() + 12) + data.len() * 9 / 8;
    let mut w = JsonWriter::with_capacity(capacity);
    w.raw(r#"{"event":"#).string(event);
    if let Some(channel) = channel {
        w.raw(r#","channel":"#).string(channel);
    }
    w.raw(r#","data":"#).string(data).raw("}");
    w.into_bytes()
}

#[cfg(test)]
mod tests;
