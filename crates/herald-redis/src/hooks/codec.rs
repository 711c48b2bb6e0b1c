//! An [`Event`] as a webhook stream entry and back: compact JSON with one-letter fields, and the
//! time it happened (Unix ms) so the debounce counts from then on whichever node delivers it.
//! Decoding never panics: a damaged entry is `None` (and skipped, counted, by the reader).

use std::borrow::Cow;

use herald_core::{Event, EventKind};
use herald_protocol::pusher::channel_name::ChannelName;
use serde::{Deserialize, Serialize};

/// The entry's fields. Borrowed on the way out, owned on the way in.
/// Strings are `Cow`: borrowed unless JSON escapes made the decoder copy them.
#[derive(Serialize, Deserialize)]
struct Entry<'a> {
    /// The kind's webhook name.
    #[serde(borrow)]
    k: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none", default, borrow)]
    c: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", default, borrow)]
    u: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", default, borrow)]
    e: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", default, borrow)]
    d: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", default, borrow)]
    s: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    n: Option<usize>,
    /// When it happened, Unix ms.
    t: u64,
}

/// The entry of `event`, which happened at `at_ms`.
pub(crate) fn encode(event: &Event, at_ms: u64) -> Vec<u8> {
    fn b(s: &str) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(s))
    }
    let mut entry =
        Entry { k: Cow::Borrowed(event.kind().name()), c: None, u: None, e: None, d: None, s: None, n: None, t: at_ms };
    entry.c = event.channel().and_then(|c| b(c.as_str()));
    match event {
        Event::MemberAdded { user_id, .. }
        | Event::MemberRemoved { user_id, .. }
        | Event::UserOnline { user_id }
        | Event::UserOffline { user_id } => entry.u = b(user_id),
        Event::ClientEvent { event, data, socket_id, user_id, .. } => {
            entry.e = b(event);
            entry.d = b(data);
            entry.s = b(socket_id);
            entry.u = user_id.as_deref().and_then(b);
        }
        Event::SubscriptionCount { count, .. } => entry.n = Some(*count),
        Event::ChannelOccupied { .. } | Event::ChannelVacated { .. } | Event::CacheMiss { .. } => {}
    }
    // Serialising strings and integers to a Vec cannot fail.
    serde_json::to_vec(&entry).unwrap_or_default()
}

/// The event of an entry and when it happened; `None` for anything damaged.
pub(crate) fn decode(bytes: &[u8], max_channel: usize) -> Option<(Event, u64)> {
    let entry: Entry<'_> = serde_json::from_slice(bytes).ok()?;
    let kind = EventKind::from_name(&entry.k)?;
    let channel = || entry.c.as_deref().and_then(|c| ChannelName::parse(c, max_channel).ok());
    let user = || entry.u.as_deref().map(Box::<str>::from);
    let event = match kind {
        EventKind::ChannelOccupied => Event::ChannelOccupied { channel: channel()? },
        EventKind::ChannelVacated => Event::ChannelVacated { channel: channel()? },
        EventKind::CacheMiss => Event::CacheMiss { channel: channel()? },
        EventKind::MemberAdded => Event::MemberAdded { channel: channel()?, user_id: user()?, info: None },
        EventKind::MemberRemoved => Event::MemberRemoved { channel: channel()?, user_id: user()? },
        EventKind::UserOnline => Event::UserOnline { user_id: user()? },
        EventKind::UserOffline => Event::UserOffline { user_id: user()? },
        EventKind::SubscriptionCount => Event::SubscriptionCount { channel: channel()?, count: entry.n? },
        EventKind::ClientEvent => Event::ClientEvent {
            channel: channel()?,
            event: entry.e.as_deref()?.into(),
            data: entry.d.as_deref()?.into(),
            socket_id: entry.s.as_deref()?.into(),
            user_id: user(),
        },
    };
    Some((event, entry.t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(s: &str) -> ChannelName {
        ChannelName::parse(s, 200).unwrap()
    }

    #[test]
    fn every_kind_comes_back_as_it_went() {
        let events = [
            Event::ChannelOccupied { channel: ch("a") },
            Event::ChannelVacated { channel: ch("a") },
            Event::CacheMiss { channel: ch("cache-a") },
            Event::MemberAdded { channel: ch("presence-a"), user_id: "1".into(), info: None },
            Event::MemberRemoved { channel: ch("presence-a"), user_id: "1".into() },
            Event::UserOnline { user_id: "u\"1".into() },
            Event::UserOffline { user_id: "u1".into() },
            Event::SubscriptionCount { channel: ch("a"), count: 7 },
            Event::ClientEvent {
                channel: ch("private-a"),
                event: "client-x".into(),
                data: r#"{"a":"\"q\""}"#.into(),
                socket_id: "1.2".into(),
                user_id: Some("9".into()),
            },
        ];
        for e in events {
            assert_eq!(decode(&encode(&e, 42), 200), Some((e, 42)));
        }
    }

    #[test]
    fn damaged_entries_are_refused_without_panicking() {
        for bad in [&b""[..], b"{", b"[]", br#"{"k":"nope","t":1}"#, br#"{"k":"channel_occupied","t":1}"#] {
            assert_eq!(decode(bad, 200), None, "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(decode(br#"{"k":"channel_occupied","c":"bad name!","t":1}"#, 200), None);
    }
}
