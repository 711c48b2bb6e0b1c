//! The hub's side of history sequenced by a backend (Redis on several nodes): `Hub::publish`
//! leaves the delivery of a sequenced channel to the backend, and a subscriber that got
//! publications replayed from the backend's history is not sent them again when this node
//! delivers them later (a node lagging behind Redis).

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use bytes::Bytes;
use herald_core::app::{App, HistoryConfig};
use herald_core::{
    AppConfig, AppRegistry, Backend, Conn, Hub, OutboxLimits, Position, Publication, PublicationData, Wire,
};
use herald_protocol::pusher::channel_name::ChannelName;

/// Sequences every channel with history, as the Redis backend does, and keeps what it is given.
#[derive(Default)]
struct Sequencing(Mutex<Vec<Arc<Publication>>>);

impl Backend for Sequencing {
    fn broadcast(&self, _app: &App, publication: &Arc<Publication>) {
        self.0.lock().unwrap().push(Arc::clone(publication));
    }

    fn sequences(&self, app: &App, channel: &ChannelName) -> bool {
        herald_core::app::history::policy_for(&app.config.history, channel.as_str()).is_some()
    }
}

fn hub(backend: Arc<dyn Backend>) -> (Hub, Arc<App>) {
    let history = vec![HistoryConfig { channels: "h-*".into(), max_messages: 100, max_age_secs: 300 }];
    let cfg = AppConfig { id: "a".into(), key: "k".into(), secret: "s".into(), history, ..AppConfig::default() };
    let hub = Hub::new(AppRegistry::new(vec![cfg]).unwrap(), backend, OutboxLimits::default());
    let app = hub.app_by_id("a").unwrap();
    (hub, app)
}

fn name(s: &str) -> ChannelName {
    ChannelName::parse(s, 200).unwrap()
}

fn positioned(ch: &str, epoch: &str, serial: u64) -> Arc<Publication> {
    let p = Publication::new(name(ch), "ev", PublicationData::Str(serial.to_string().into()));
    p.set_position(Position { epoch: epoch.into(), serial }).unwrap();
    Arc::new(p)
}

/// The serials of the publications queued for `conn`.
fn serials(conn: &Conn) -> Vec<u64> {
    let mut q = VecDeque::new();
    let _ = conn.outbox.poll_drain(&mut Context::from_waker(Waker::noop()), &mut q);
    q.into_iter()
        .map(|f: Bytes| {
            let text = std::str::from_utf8(&f[2..]).unwrap();
            serde_json::from_str::<serde_json::Value>(text).unwrap()["serial"].as_u64().unwrap()
        })
        .collect()
}

#[test]
fn a_sequenced_channel_is_delivered_when_the_backend_hands_it_back_not_at_publish() {
    let backend = Arc::new(Sequencing::default());
    let (hub, app) = hub(Arc::clone(&backend) as Arc<dyn Backend>);
    let conn = hub.connect(Wire::Pusher);
    hub.subscribe(&app, &conn, &name("h-x"), None, |_| {}).unwrap();
    let plain = hub.connect(Wire::Pusher);
    hub.subscribe(&app, &plain, &name("other"), None, |_| {}).unwrap();

    assert_eq!(hub.publish(&app, Publication::new(name("h-x"), "ev", PublicationData::Str("1".into()))), 0);
    assert!(serials(&conn).is_empty(), "delivered before the backend positioned it");
    let handed = backend.0.lock().unwrap().clone();
    assert_eq!(handed.len(), 1);
    assert!(handed[0].position().is_none());
    // Channels without history: delivered at once, as always.
    assert_eq!(hub.publish(&app, Publication::new(name("other"), "ev", PublicationData::Str("p".into()))), 1);

    // The backend's read-back, positioned: delivered with that position, held with it.
    hub.deliver(&app, &positioned("h-x", "e1", 7));
    assert_eq!(serials(&conn), [7]);
    let held = hub.history(&app, "h-x", None, 10).unwrap();
    assert_eq!((&*held.epoch, held.serial), ("e1", 7));
}

#[test]
fn what_a_subscriber_got_from_the_backend_is_not_delivered_to_it_again() {
    let (hub, app) = hub(Arc::new(Sequencing::default()));
    let other = hub.connect(Wire::Pusher);
    hub.subscribe(&app, &other, &name("h-x"), None, |_| {}).unwrap();
    hub.deliver(&app, &positioned("h-x", "e1", 1));

    // Replayed 2..=4 from the backend while this node has delivered only 1.
    let conn = hub.connect(Wire::Pusher);
    let replayed = Position { epoch: "e1".into(), serial: 4 };
    hub.subscribe_replayed(&app, &conn, &name("h-x"), None, None, Some(replayed), |_| {}).unwrap();
    for serial in 2..=6 {
        hub.deliver(&app, &positioned("h-x", "e1", serial));
    }
    assert_eq!(serials(&conn), [5, 6]);
    assert_eq!(serials(&other), [1, 2, 3, 4, 5, 6]);
    // Another epoch's serials are not the replayed ones.
    hub.deliver(&app, &positioned("h-x", "e2", 1));
    assert_eq!(serials(&conn), [1]);
}
