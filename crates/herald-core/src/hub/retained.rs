//! Retained events (WAMP v2 advanced profile "Event Retention"): the latest publication marked
//! `retain` on each channel of an app, handed to a subscriber that asks for it as it joins.
//!
//! The store is per app, so one realm never reads another's. [`Hub::deliver`] keeps a retained
//! publication under its channel's read lock and [`Hub::subscribe`] hands it to `on_joined` under
//! the channel's write lock (through [`Joined::retained`]): a joining subscriber gets either the
//! retained event or the live one, and never an older retained event after a newer live one.
//!
//! Memory is bounded per app by [`MAX_TOPICS`] channels and [`MAX_BYTES`] of payload; when a new
//! retained event does not fit, the channels retained longest ago are forgotten first (retention
//! is best effort in WAMP), and an event larger than [`MAX_EVENT_BYTES`] is delivered but not kept.
//!
//! [`Hub::deliver`]: super::Hub::deliver
//! [`Hub::subscribe`]: super::Hub::subscribe

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use herald_protocol::pusher::channel_name::ChannelName;
use parking_lot::Mutex;

use super::Joined;
use crate::publication::Publication;

/// Channels of one app with a retained event, at most.
pub const MAX_TOPICS: usize = 10_000;
/// Payload bytes (the event's JSON text) of one app's retained events, at most.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Payload bytes of one retained event, at most: a larger one is delivered but not kept.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// One retained event and its bookkeeping.
#[derive(Debug)]
struct Entry {
    publication: Arc<Publication>,
    /// Its key in `RetainedStore::order`.
    seq: u64,
    /// What it counts against [`MAX_BYTES`].
    bytes: usize,
}

/// The retained events of one app.
#[derive(Debug, Default)]
pub(crate) struct RetainedStore {
    entries: HashMap<ChannelName, Entry>,
    /// Channels by when their event was retained, oldest first: who makes room.
    order: BTreeMap<u64, ChannelName>,
    next_seq: u64,
    bytes: usize,
}

impl RetainedStore {
    /// Keeps `publication` as its channel's retained event, replacing the previous one; false
    /// when it is too large to keep.
    pub(crate) fn put(&mut self, publication: Arc<Publication>) -> bool {
        let bytes = size_of(&publication);
        if bytes > MAX_EVENT_BYTES {
            return false;
        }
        self.remove(publication.channel.as_str());
        while self.entries.len() >= MAX_TOPICS || self.bytes + bytes > MAX_BYTES {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            if let Some(old) = self.entries.remove(oldest.as_str()) {
                self.bytes -= old.bytes;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += bytes;
        self.order.insert(seq, publication.channel.clone());
        self.entries.insert(publication.channel.clone(), Entry { publication, seq, bytes });
        true
    }

    /// The retained event of `channel`.
    pub(crate) fn get(&self, channel: &str) -> Option<Arc<Publication>> {
        self.entries.get(channel).map(|e| Arc::clone(&e.publication))
    }

    fn remove(&mut self, channel: &str) {
        if let Some(old) = self.entries.remove(channel) {
            self.order.remove(&old.seq);
            self.bytes -= old.bytes;
        }
    }
}

/// What a retained event counts against the byte bound: its payload as JSON text, its channel
/// and its event name.
fn size_of(publication: &Publication) -> usize {
    publication.data.json_text().len() + publication.channel.as_str().len() + publication.event.len()
}

/// Keeps `publication` when it asks to be retained. Called by `Hub::deliver` under the
/// channel's lock.
pub(super) fn keep(store: &Mutex<RetainedStore>, publication: &Arc<Publication>) {
    if publication.retain {
        store.lock().put(Arc::clone(publication));
    }
}

impl Joined<'_> {
    /// The channel's retained event, read under the channel's lock: nothing published after it
    /// can reach the joining subscriber before the frame `on_joined` queues for it.
    pub fn retained(&self) -> Option<Arc<Publication>> {
        let (store, channel) = self.retained;
        store.lock().get(channel.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use herald_protocol::pusher::channel_name::ChannelName;
    use herald_protocol::wamp::Serializer;
    use herald_protocol::wamp::v2::Value;

    use super::{MAX_EVENT_BYTES, MAX_TOPICS, RetainedStore};
    use crate::app::{AppConfig, AppRegistry};
    use crate::backend::LocalBackend;
    use crate::hub::Hub;
    use crate::outbox::OutboxLimits;
    use crate::publication::{Publication, PublicationData};
    use crate::wire::Wire;

    fn drain(conn: &crate::Conn) -> Vec<bytes::Bytes> {
        let mut q = std::collections::VecDeque::new();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let _ = conn.outbox.poll_drain(&mut cx, &mut q);
        q.into_iter().collect()
    }

    /// The text of a small unmasked text frame.
    fn text(frame: &bytes::Bytes) -> String {
        String::from_utf8(frame[2..].to_vec()).unwrap()
    }

    fn channel(name: &str) -> ChannelName {
        ChannelName::topic(name, 255).unwrap()
    }

    fn wamp(topic: &str, text: &str) -> Publication {
        let data = PublicationData::Wamp { args: vec![Value::Str(text.into())], kwargs: Default::default() };
        Publication::new(channel(topic), topic, data).from_wamp()
    }

    fn hub(ids: &[&str]) -> Hub {
        let config = |id: &&str| AppConfig { id: (*id).into(), key: format!("{id}-key"), ..AppConfig::default() };
        let apps = AppRegistry::new(ids.iter().map(config).collect()).unwrap();
        Hub::new(apps, Arc::new(LocalBackend), OutboxLimits::default())
    }

    /// Subscribes a fresh WAMP v2 connection and returns what `on_joined` saw as retained.
    fn join(hub: &Hub, app: usize, topic: &str) -> (Option<Arc<Publication>>, Arc<crate::Conn>) {
        let app = Arc::clone(hub.apps().get(app).unwrap());
        let conn = hub.connect(Wire::WampV2(Serializer::Json));
        let mut seen = None;
        hub.subscribe(&app, &conn, &channel(topic), None, |j| {
            seen = j.retained();
            if let Some(frame) = seen.as_ref().and_then(|p| p.encode_retained(conn.wire, j.subscription)) {
                conn.outbox.push(frame).unwrap();
            }
        })
        .unwrap();
        (seen, conn)
    }

    #[test]
    fn latest_retained_event_goes_to_a_joining_subscriber() {
        let hub = hub(&["a"]);
        let app = Arc::clone(hub.apps().get(0).unwrap());
        assert!(join(&hub, 0, "t.one").0.is_none());
        hub.publish(&app, wamp("t.one", "first").retaining(true));
        hub.publish(&app, wamp("t.one", "live only"));
        assert_eq!(join(&hub, 0, "t.one").0.unwrap().data.json_text(), "\"first\"");
        hub.publish(&app, wamp("t.one", "second").retaining(true));
        let (got, conn) = join(&hub, 0, "t.one");
        assert_eq!(got.unwrap().data.json_text(), "\"second\"");
        // A publication after the join is live, behind the retained frame `on_joined` queued.
        hub.publish(&app, wamp("t.one", "third").retaining(true));
        let frames = drain(&conn);
        assert_eq!(frames.len(), 2);
        assert!(text(&frames[0]).contains(r#"{"retained":true},["second"]"#), "{}", text(&frames[0]));
        assert!(text(&frames[1]).ends_with(r#"{},["third"]]"#), "{}", text(&frames[1]));
        // Other channels have nothing retained.
        assert!(join(&hub, 0, "t.two").0.is_none());
    }

    #[test]
    fn retained_events_are_kept_on_channels_with_history_too() {
        let history = vec![crate::app::history::HistoryConfig { channels: "*".into(), ..Default::default() }];
        let config = AppConfig { id: "h".into(), key: "h-key".into(), history, ..AppConfig::default() };
        let hub = Hub::new(AppRegistry::new(vec![config]).unwrap(), Arc::new(LocalBackend), OutboxLimits::default());
        let app = Arc::clone(hub.apps().get(0).unwrap());
        hub.publish(&app, wamp("t.hist", "kept").retaining(true));
        hub.publish(&app, wamp("t.hist", "live"));
        let (got, _) = join(&hub, 0, "t.hist");
        assert_eq!(got.unwrap().data.json_text(), "\"kept\"");
    }

    #[test]
    fn retained_events_are_per_app() {
        let hub = hub(&["a", "b"]);
        let a = Arc::clone(hub.apps().get(0).unwrap());
        hub.publish(&a, wamp("shared.topic", "of a").retaining(true));
        assert!(join(&hub, 0, "shared.topic").0.is_some());
        assert!(join(&hub, 1, "shared.topic").0.is_none());
    }

    #[test]
    fn store_is_bounded_oldest_first() {
        let mut store = RetainedStore::default();
        for i in 0..=MAX_TOPICS {
            assert!(store.put(Arc::new(wamp(&format!("t.{i}"), "x"))));
        }
        assert_eq!(store.entries.len(), MAX_TOPICS);
        assert!(store.get("t.0").is_none(), "the oldest channel made room");
        assert!(store.get("t.1").is_some() && store.get(&format!("t.{MAX_TOPICS}")).is_some());
        // Replacing keeps one entry per channel.
        assert!(store.put(Arc::new(wamp("t.1", "y"))));
        assert_eq!(store.entries.len(), MAX_TOPICS);
        assert_eq!(store.get("t.1").unwrap().data.json_text(), "\"y\"");
        // Too large to keep: refused, the previous one stays.
        assert!(!store.put(Arc::new(wamp("t.1", &"z".repeat(MAX_EVENT_BYTES)))));
        assert_eq!(store.get("t.1").unwrap().data.json_text(), "\"y\"");
    }
}
