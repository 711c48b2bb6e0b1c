//! Channel history across nodes, on a real Redis: three herald processes share a redis-server;
//! Redis gives each publication on a channel with history its serial, so every node delivers
//! the same serials in the same order, and a client recovers on any node: one that ran all
//! along (from memory), one started after the publications, one killed and restarted while
//! publications go on (from Redis).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use herald_test_support::cluster::{APP, Cluster, client};
use herald_test_support::http::publish;
use herald_test_support::redis::RedisServer;
use herald_test_support::{Ws, next_json, send_json};
use serde_json::{Value, json};

/// Every `history-*` channel keeps its last 1000 publications for five minutes.
const HISTORY: &str = "[[apps.history]]\nchannels = \"history-*\"\nmax_messages = 1000\nmax_age_secs = 300\n";

fn cluster(redis: &RedisServer) -> Cluster {
    Cluster::with_app_extra(redis, HISTORY)
}

/// One publication as a subscriber saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    epoch: String,
    serial: u64,
    data: String,
}

/// Subscribes a new client of the node at `addr` to `channel`, recovering from `recover`;
/// returns the socket and the acknowledgement.
async fn join(addr: SocketAddr, channel: &str, recover: Option<(&str, u64)>) -> (Ws, Value) {
    let (mut ws, _) = client(addr).await;
    let mut data = json!({ "channel": channel });
    if let Some((epoch, serial)) = recover {
        data["recover"] = json!({ "epoch": epoch, "serial": serial });
    }
    send_json(&mut ws, json!({ "event": "pusher:subscribe", "data": data })).await;
    let ack = next_json(&mut ws).await;
    assert_eq!(ack["event"], "pusher_internal:subscription_succeeded", "{ack}");
    (ws, ack)
}

/// The next publication on `ws`; a failed recovery fails the test.
async fn next_seen(ws: &mut Ws) -> Seen {
    loop {
        let v = next_json(ws).await;
        let event = v["event"].as_str().unwrap_or("");
        assert_ne!(event, "pusher:recovery_failed", "{v}");
        if event.starts_with("pusher") {
            continue;
        }
        return Seen {
            epoch: v["epoch"].as_str().unwrap_or_else(|| panic!("no epoch in {v}")).to_owned(),
            serial: v["serial"].as_u64().unwrap_or_else(|| panic!("no serial in {v}")),
            data: v["data"].as_str().unwrap().to_owned(),
        };
    }
}

/// Reads `ws` until serial `last`, and checks that the publications form one run of serials
/// `from..=last` in one epoch: nothing missing, nothing twice, in order.
async fn read_through(ws: &mut Ws, from: u64, last: u64) -> Vec<Seen> {
    let mut seen: Vec<Seen> = Vec::new();
    while seen.last().is_none_or(|s| s.serial < last) {
        seen.push(next_seen(ws).await);
    }
    let serials: Vec<u64> = seen.iter().map(|s| s.serial).collect();
    assert_eq!(serials, (from..=last).collect::<Vec<_>>(), "not exactly serials {from}..={last} in order");
    assert!(seen.iter().all(|s| s.epoch == seen[0].epoch), "more than one epoch: {seen:?}");
    seen
}

async fn publish_ok(addr: SocketAddr, channel: &str, data: &str) {
    let (status, body) = publish(addr, APP, json!({ "name": "ev", "channel": channel, "data": data })).await;
    assert_eq!(status, 200, "{data}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_delivers_one_order_and_a_client_recovers_on_another_node() {
    let redis = RedisServer::start();
    let cluster = cluster(&redis);
    let nodes = cluster.nodes(3);
    let (a, b, c) = (nodes[0].addr(), nodes[1].addr(), nodes[2].addr());
    let ch = "history-news";
    let mut subscribers = Vec::new();
    for addr in [a, b, c] {
        subscribers.push(join(addr, ch, None).await.0);
    }
    // The client that will move: it reads up to serial 12 on A, then its connection is cut.
    let (mut mover, ack) = join(a, ch, None).await;
    assert_eq!(ack["serial"], 0, "{ack}");

    // Through A's and B's HTTP APIs at once: 15 each, interleaved as they come.
    let from_a = tokio::spawn(async move {
        for n in 0..15 {
            publish_ok(a, ch, &format!("a:{n}")).await;
        }
    });
    let from_b = tokio::spawn(async move {
        for n in 0..15 {
            publish_ok(b, ch, &format!("b:{n}")).await;
        }
    });
    let seen_by_mover = read_through(&mut mover, 1, 12).await;
    drop(mover);
    from_a.await.unwrap();
    from_b.await.unwrap();

    let mut runs = Vec::new();
    for ws in &mut subscribers {
        runs.push(read_through(ws, 1, 30).await);
    }
    assert_eq!(runs[0], runs[1], "A and B disagree");
    assert_eq!(runs[0], runs[2], "A and C disagree");
    assert_eq!(seen_by_mover[..], runs[0][..12]);
    // Each publisher's events in its own order.
    for p in ["a", "b"] {
        let mine: Vec<&str> = runs[0].iter().map(|s| s.data.as_str()).filter(|d| d.starts_with(p)).collect();
        let want: Vec<String> = (0..15).map(|n| format!("{p}:{n}")).collect();
        assert_eq!(mine, want);
    }

    // The mover comes back on C, which ran all along: exactly 13..=30, then live ones once.
    let epoch = runs[0][0].epoch.clone();
    let (mut mover, ack) = join(c, ch, Some((&epoch, 12))).await;
    assert_eq!((ack["epoch"].as_str(), ack["serial"].as_u64()), (Some(epoch.as_str()), Some(30)), "{ack}");
    let recovered = read_through(&mut mover, 13, 30).await;
    assert_eq!(recovered[..], runs[0][12..]);
    publish_ok(b, ch, "after").await;
    let live = next_seen(&mut mover).await;
    assert_eq!((live.serial, live.data.as_str()), (31, "after"));

    // A node started after all this holds none of it in memory: it recovers from Redis.
    let late = cluster.node();
    let (mut latecomer, ack) = join(late.addr(), ch, Some((&epoch, 5))).await;
    assert_eq!((ack["epoch"].as_str(), ack["serial"].as_u64()), (Some(epoch.as_str()), Some(31)), "{ack}");
    let recovered = read_through(&mut latecomer, 6, 31).await;
    assert_eq!(recovered[..25], runs[0][5..]);
    publish_ok(a, ch, "later").await;
    let live = next_seen(&mut latecomer).await;
    assert_eq!((live.serial, live.data.as_str()), (32, "later"));
    // And the node's own history now holds what it delivered since: a second client recovers
    // from it as well.
    let (mut second, _) = join(late.addr(), ch, Some((&epoch, 31))).await;
    assert_eq!(next_seen(&mut second).await.serial, 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_and_restarted_mid_traffic_loses_nothing_for_a_recovering_client() {
    let redis = RedisServer::start();
    let cluster = cluster(&redis);
    let mut nodes = cluster.nodes(2);
    let (a, b) = (nodes[0].addr(), nodes[1].addr());
    let ch = "history-deploy";
    let (mut watcher, _) = join(a, ch, None).await;
    let (mut client_on_b, _) = join(b, ch, None).await;

    const TOTAL: u64 = 300;
    let publisher = tokio::spawn(async move {
        for n in 1..=TOTAL {
            publish_ok(a, ch, &format!("p:{n}")).await;
        }
    });
    // The client on B reads a little, then B dies under it (SIGKILL: no goodbye).
    let before = read_through(&mut client_on_b, 1, 40).await;
    let last = before.last().unwrap().clone();
    nodes[1].kill();
    drop(client_on_b);
    // A new node takes B's place while publications go on; the client reconnects there.
    let replacement = cluster.node();
    let (mut back, ack) = join(replacement.addr(), ch, Some((&last.epoch, last.serial))).await;
    assert_eq!(ack["epoch"].as_str(), Some(last.epoch.as_str()), "{ack}");
    let rest = read_through(&mut back, last.serial + 1, TOTAL).await;
    publisher.await.unwrap();
    let all = read_through(&mut watcher, 1, TOTAL).await;
    assert_eq!(rest[..], all[last.serial as usize..]);
    for (i, s) in all.iter().enumerate() {
        assert_eq!(s.data, format!("p:{}", i + 1), "publish order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recovery_redis_cannot_serve_fails_as_on_one_node() {
    let redis = RedisServer::start();
    let cluster = cluster(&redis);
    let first = cluster.node();
    let ch = "history-gone";
    publish_ok(first.addr(), ch, "one").await;
    let late = cluster.node();
    // An epoch Redis never gave: the subscription stands, with recovery_failed right after.
    let (mut ws, ack) = join(late.addr(), ch, Some(("0000000000000000", 1))).await;
    assert_ne!(ack["epoch"], "0000000000000000", "{ack}");
    let failed = next_json(&mut ws).await;
    assert_eq!(failed["event"], "pusher:recovery_failed", "{failed}");
    let data: Value = serde_json::from_str(failed["data"].as_str().unwrap()).unwrap();
    assert_eq!(data["reason"], "unknown_epoch", "{data}");
    publish_ok(first.addr(), ch, "two").await;
    assert_eq!(next_seen(&mut ws).await.serial, 2);
}
