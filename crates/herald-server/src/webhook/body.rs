//! The request body Pusher sends: `{"time_ms": …, "events": [ … ]}`, one object per event with
//! its `name` and the fields of its kind.

use std::time::{SystemTime, UNIX_EPOCH};

use herald_core::Event;
use serde::Serialize;

use super::item::Item;

#[derive(Serialize)]
struct Body<'a> {
    time_ms: u64,
    events: Vec<Wire<'a>>,
}

#[derive(Serialize)]
struct Wire<'a> {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a str>,
    /// The client's `data`, as the JSON text it sent: a string in the body.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_count: Option<usize>,
}

fn wire(event: &Event) -> Wire<'_> {
    let mut w = Wire {
        name: event.kind().name(),
        channel: event.channel().map(|c| c.as_str()),
        event: None,
        data: None,
        socket_id: None,
        user_id: None,
        subscription_count: None,
    };
    match event {
        Event::MemberAdded { user_id, .. }
        | Event::MemberRemoved { user_id, .. }
        | Event::UserOnline { user_id }
        | Event::UserOffline { user_id } => w.user_id = Some(user_id),
        Event::ClientEvent { event, data, socket_id, user_id, .. } => {
            w.event = Some(event);
            w.data = Some(data);
            w.socket_id = Some(socket_id);
            w.user_id = user_id.as_deref();
        }
        Event::SubscriptionCount { count, .. } => w.subscription_count = Some(*count),
        Event::ChannelOccupied { .. } | Event::ChannelVacated { .. } | Event::CacheMiss { .. } => {}
    }
    w
}

/// The JSON body of a request carrying `events`, stamped `time_ms`.
pub(crate) fn encode<T: Item>(time_ms: u64, events: &[T]) -> Vec<u8> {
    let body = Body { time_ms, events: events.iter().map(|i| wire(i.event())).collect() };
    // Serialising borrowed strings and integers to a Vec cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use herald_protocol::pusher::channel_name::ChannelName;
    use serde_json::json;

    use super::*;

    #[test]
    fn each_kind_has_pushers_fields() {
        let ch = |n: &str| ChannelName::parse(n, 200).unwrap();
        let events = vec![
            Event::ChannelOccupied { channel: ch("a") },
            Event::MemberAdded { channel: ch("presence-a"), user_id: "u1".into(), info: None },
            Event::ClientEvent {
                channel: ch("presence-a"),
                event: "client-x".into(),
                data: "{\"k\":1}".into(),
                socket_id: "1.2".into(),
                user_id: Some("u1".into()),
            },
            Event::ClientEvent {
                channel: ch("private-a"),
                event: "client-y".into(),
                data: "\"s\"".into(),
                socket_id: "3.4".into(),
                user_id: None,
            },
            Event::SubscriptionCount { channel: ch("a"), count: 3 },
            Event::UserOffline { user_id: "u1".into() },
        ];
        let v: serde_json::Value = serde_json::from_slice(&encode(42, &events)).unwrap();
        assert_eq!(
            v,
            json!({"time_ms": 42, "events": [
                {"name": "channel_occupied", "channel": "a"},
                {"name": "member_added", "channel": "presence-a", "user_id": "u1"},
                {"name": "client_event", "channel": "presence-a", "event": "client-x", "data": "{\"k\":1}",
                 "socket_id": "1.2", "user_id": "u1"},
                {"name": "client_event", "channel": "private-a", "event": "client-y", "data": "\"s\"",
                 "socket_id": "3.4"},
                {"name": "subscription_count", "channel": "a", "subscription_count": 3},
                {"name": "user_offline", "user_id": "u1"},
            ]})
        );
    }
}
