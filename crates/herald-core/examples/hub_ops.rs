//! What the hub's hot operations cost in process, without sockets: a publication fanned out to
//! `--subs` subscribers, an app found by key (every upgrade and API request does it), and a
//! connection's whole life (place, subscribe, unsubscribe, leave).
//!
//! `cargo run --release -p herald-core --example hub_ops -- [subs] [publishes] [lives]`
//! prints nanoseconds per operation. Compare builds with the same arguments, run in turn.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Waker};
use tokio::time::Instant;

use herald_core::Hub;
use herald_core::app::{AppConfig, AppRegistry};
use herald_core::backend::LocalBackend;
use herald_core::outbox::OutboxLimits;
use herald_core::publication::{Publication, PublicationData};
use herald_core::wire::Wire;
use herald_protocol::pusher::channel_name::ChannelName;

fn arg(n: usize, default: usize) -> usize {
    std::env::args().nth(n).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn main() {
    let (subs, publishes, lives) = (arg(1, 1000), arg(2, 5000), arg(3, 200_000));
    // A registry of 100 apps, as a multi-tenant node might hold.
    let configs = (0..100)
        .map(|i| AppConfig {
            id: format!("app-{i}"),
            key: format!("key-{i}"),
            secret: "a-secret-of-sixteen-bytes".into(),
            ..AppConfig::default()
        })
        .collect();
    let apps = AppRegistry::new(configs).expect("distinct apps");
    let hub = Hub::new(apps, Arc::new(LocalBackend), OutboxLimits::default());
    let app = Arc::clone(hub.apps().by_id("app-7").expect("app"));
    let channel = ChannelName::parse("bench", 200).expect("name");

    let conns: Vec<_> = (0..subs).map(|_| hub.connect(Wire::Pusher)).collect();
    for conn in &conns {
        hub.subscribe(&app, conn, &channel, None, |_| {}).expect("subscribed");
    }
    let data: Box<str> = "x".repeat(100).into();
    let mut sink = VecDeque::new();
    let mut cx = Context::from_waker(Waker::noop());
    let started = Instant::now();
    for i in 0..publishes {
        hub.publish(&app, Publication::new(channel.clone(), "ev", PublicationData::Str(data.clone())));
        // Drain as a socket would, so no outbox fills up.
        if i % 64 == 63 {
            for conn in &conns {
                let _ = conn.outbox.poll_drain(&mut cx, &mut sink);
                sink.clear();
            }
        }
    }
    let per_publish = started.elapsed().as_nanos() / publishes.max(1) as u128;

    let started = Instant::now();
    let mut found = 0usize;
    for i in 0..lives {
        found += usize::from(hub.apps().by_key(&format!("key-{}", i % 100)).is_some());
    }
    let per_lookup = started.elapsed().as_nanos() / lives.max(1) as u128;
    assert_eq!(found, lives);

    let other = ChannelName::parse("churn", 200).expect("name");
    let started = Instant::now();
    for _ in 0..lives {
        let slot = app.try_connect().expect("no limit");
        let conn = hub.connect(Wire::Pusher);
        slot.attach(&conn);
        hub.subscribe(&app, &conn, &other, None, |_| {}).expect("subscribed");
        hub.unsubscribe(&app, &conn, &other);
        slot.detach(&conn);
        hub.disconnect(&conn);
    }
    let per_life = started.elapsed().as_nanos() / lives.max(1) as u128;
    println!("publish to {subs}: {per_publish} ns; app by key: {per_lookup} ns; connection life: {per_life} ns");
}
