//! Channel and user state across nodes, on a real Redis: three herald processes share a
//! redis-server; presence members, counts, the HTTP API's answers, user termination and cached
//! events are the cluster's wherever they are asked, and a node killed with SIGKILL leaves
//! every presence channel within seconds, once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use herald_test_support::cluster::{Cluster, api, client, join_presence, next_member_event, sign_in};
use herald_test_support::redis::RedisServer;
use herald_test_support::{Ws, close_frame, next_json, subscribe};
use serde_json::{Value, json};

/// The member-removal bound after `kill -9`.
const REAP_BOUND: Duration = Duration::from_secs(10);

/// The next change of the members a client knows, `listed` (updated). A member is announced
/// once: a `member_added` of a user listed already fails the test.
async fn next_change(ws: &mut Ws, listed: &mut Vec<String>, wait: Duration) -> (String, String) {
    let (event, user) = member(&next_member_event(ws, wait).await);
    if event == "pusher_internal:member_added" {
        assert!(!listed.contains(&user), "{user} announced twice");
        listed.push(user.clone());
    } else {
        listed.retain(|u| *u != user);
    }
    (event, user)
}

/// The member ids of a presence acknowledgement.
fn ids(presence: &Value) -> Vec<String> {
    presence["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

fn member(v: &Value) -> (String, String) {
    let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    (v["event"].as_str().unwrap().to_owned(), data["user_id"].as_str().unwrap().to_owned())
}

fn added(user: &str) -> (String, String) {
    ("pusher_internal:member_added".into(), user.into())
}

fn removed(user: &str) -> (String, String) {
    ("pusher_internal:member_removed".into(), user.into())
}

/// The sorted user ids of `GET /channels/{channel}/users` on `addr`.
async fn users(addr: std::net::SocketAddr, channel: &str) -> Vec<String> {
    let (status, body) = api(addr, "GET", &format!("/channels/{channel}/users"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<String> =
        body["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

/// Polls `GET /channels/{channel}/users` on every node until each lists `want` (the shared
/// state is written asynchronously after a subscription is acknowledged).
async fn await_users(nodes: &[std::net::SocketAddr], channel: &str, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + REAP_BOUND;
    for &addr in nodes {
        loop {
            let got = users(addr, channel).await;
            if got == want {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{addr}: {got:?}, wanted {want:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn a_member_on_one_node_is_seen_on_every_node_and_the_api_agrees() {
    let redis = RedisServer::start();
    let cluster = Cluster::new(&redis);
    let nodes = cluster.nodes(3);
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr()).collect();
    let (a, b, c) = (addrs[0], addrs[1], addrs[2]);

    let (mut ann, sid) = client(a).await;
    let presence = join_presence(&mut ann, &sid, "presence-room", "ann").await;
    assert_eq!(presence["ids"], json!(["ann"]));
    let mut ann_knows = ids(&presence);
    await_users(&addrs, "presence-room", &["ann"]).await;

    let (mut cid, sid) = client(c).await;
    let presence = join_presence(&mut cid, &sid, "presence-room", "cid").await;
    let mut ids: Vec<&str> = presence["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["ann", "cid"], "{presence}");
    assert_eq!(presence["hash"]["ann"], json!({"name": "ann"}), "a member on another node comes with its user_info");
    // Ann, on another node, hears of Cid.
    assert_eq!(next_change(&mut ann, &mut ann_knows, REAP_BOUND).await, added("cid"));
    await_users(&addrs, "presence-room", &["ann", "cid"]).await;
    for addr in addrs.iter().copied() {
        let (status, info) =
            api(addr, "GET", "/channels/presence-room", &[("info", "user_count,subscription_count")]).await;
        assert_eq!(status, 200);
        assert_eq!(info, json!({"occupied": true, "user_count": 2, "subscription_count": 2}), "{addr}");
    }

    // A publish asking for the channel's counts gets the cluster's, on any node.
    let event = json!({"name": "ev", "channel": "presence-room", "data": "x", "info": "user_count,subscription_count"});
    let (status, body) = api_publish(b, &event).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, json!({"channels": {"presence-room": {"user_count": 2, "subscription_count": 2}}}));

    // A channel occupied only on B is listed on A.
    let (mut on_b, _) = client(b).await;
    subscribe(&mut on_b, "only-b").await;
    let deadline = tokio::time::Instant::now() + REAP_BOUND;
    loop {
        let (status, list) = api(a, "GET", "/channels", &[("info", "subscription_count")]).await;
        assert_eq!(status, 200);
        if list["channels"]["only-b"] == json!({"subscription_count": 1}) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_same_user_on_two_nodes_is_one_member() {
    let redis = RedisServer::start();
    let cluster = Cluster::new(&redis);
    let nodes = cluster.nodes(3);
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr()).collect();

    let (mut watcher, sid) = client(addrs[2]).await;
    let mut knows = ids(&join_presence(&mut watcher, &sid, "presence-dup", "watcher").await);
    let (mut ann_a, sid) = client(addrs[0]).await;
    join_presence(&mut ann_a, &sid, "presence-dup", "ann").await;
    assert_eq!(next_change(&mut watcher, &mut knows, REAP_BOUND).await, added("ann"));
    let (mut ann_b, sid) = client(addrs[1]).await;
    join_presence(&mut ann_b, &sid, "presence-dup", "ann").await;
    await_users(&addrs, "presence-dup", &["ann", "watcher"]).await;

    // Ann leaves B, then Bob joins on B: B's changes reach the cluster in order, so the next
    // member event the watcher sees is Bob's, not a removal of Ann.
    drop(ann_b);
    let (mut bob, sid) = client(addrs[1]).await;
    join_presence(&mut bob, &sid, "presence-dup", "bob").await;
    assert_eq!(next_change(&mut watcher, &mut knows, REAP_BOUND).await, added("bob"));
    await_users(&addrs, "presence-dup", &["ann", "bob", "watcher"]).await;

    // Her last socket leaving is one removal.
    drop(ann_a);
    assert_eq!(next_change(&mut watcher, &mut knows, REAP_BOUND).await, removed("ann"));
    await_users(&addrs, "presence-dup", &["bob", "watcher"]).await;
}

#[tokio::test]
async fn a_killed_nodes_members_leave_every_node_once_within_ten_seconds() {
    let redis = RedisServer::start();
    let cluster = Cluster::new(&redis);
    let mut nodes = cluster.nodes(3);
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr()).collect();

    let mut watchers = Vec::new();
    // What each watcher knows of the members: its acknowledgement's list, then member events.
    let mut known: Vec<Vec<String>> = Vec::new();
    for (i, addr) in [(0, addrs[0]), (2, addrs[2])] {
        let (mut ws, sid) = client(addr).await;
        let presence = join_presence(&mut ws, &sid, "presence-kill", &format!("watcher{i}")).await;
        known.push(ids(&presence));
        watchers.push(ws);
    }
    let (mut bea, sid) = client(addrs[1]).await;
    join_presence(&mut bea, &sid, "presence-kill", "bea").await;
    let (mut bo, sid) = client(addrs[1]).await;
    join_presence(&mut bo, &sid, "presence-kill", "bo").await;
    await_users(&addrs, "presence-kill", &["bea", "bo", "watcher0", "watcher2"]).await;
    // Each watcher learns of the others.
    let everyone = ["bea", "bo", "watcher0", "watcher2"];
    for (ws, knows) in watchers.iter_mut().zip(&mut known) {
        while !everyone.iter().all(|u| knows.iter().any(|s| s == u)) {
            let (event, user) = next_change(ws, knows, REAP_BOUND).await;
            assert_eq!(event, "pusher_internal:member_added", "{user}");
        }
    }

    nodes[1].child.kill().unwrap();
    let killed = tokio::time::Instant::now();
    for (ws, knows) in watchers.iter_mut().zip(&mut known) {
        let mut gone = Vec::new();
        while gone.len() < 2 {
            let (event, user) = next_change(ws, knows, REAP_BOUND.saturating_sub(killed.elapsed())).await;
            assert_eq!(event, "pusher_internal:member_removed", "{user}");
            assert!(!gone.contains(&user), "{user} removed twice");
            gone.push(user);
        }
        gone.sort();
        assert_eq!(gone, ["bea", "bo"]);
    }
    for addr in [addrs[0], addrs[2]] {
        assert_eq!(users(addr, "presence-kill").await, ["watcher0", "watcher2"]);
    }
    // Nothing more about them: the next member event is a newcomer's.
    let (mut cy, sid) = client(addrs[0]).await;
    join_presence(&mut cy, &sid, "presence-kill", "cy").await;
    for (ws, knows) in watchers.iter_mut().zip(&mut known) {
        assert_eq!(next_change(ws, knows, REAP_BOUND).await, added("cy"));
    }
}

#[tokio::test]
async fn terminate_connections_on_one_node_closes_the_users_sockets_on_another() {
    let redis = RedisServer::start();
    let cluster = Cluster::new(&redis);
    let nodes = cluster.nodes(3);
    let (mut tom, sid) = client(nodes[2].addr()).await;
    sign_in(&mut tom, &sid, "tom").await;
    let (status, body) = api(nodes[0].addr(), "POST", "/users/tom/terminate_connections", &[]).await;
    assert_eq!(status, 200, "{body}");
    let frame = close_frame(&mut tom).await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 4009, "{frame:?}");
}

#[tokio::test]
async fn a_node_started_after_a_cache_publication_serves_it() {
    let redis = RedisServer::start();
    let cluster = Cluster::new(&redis);
    let first = cluster.node();
    let event = json!({"name": "ev", "channel": "cache-news", "data": "kept"});
    let (status, body) = api_publish(first.addr(), &event).await;
    assert_eq!(status, 200, "{body}");
    // The event reaches Redis after the publish is answered: the first node's own subscriber
    // seeing it is no proof, so the late node is asked until it serves it (bounded).
    let deadline = tokio::time::Instant::now() + REAP_BOUND;
    loop {
        let late = cluster.node();
        let (mut ws, _) = client(late.addr()).await;
        subscribe(&mut ws, "cache-news").await;
        let next = next_json(&mut ws).await;
        if next["event"] == "ev" {
            assert_eq!(next["data"], "kept", "{next}");
            return;
        }
        assert_eq!(next["event"], "pusher:cache_miss", "{next}");
        assert!(tokio::time::Instant::now() < deadline, "the late node never served the cached event");
    }
}

async fn api_publish(addr: std::net::SocketAddr, event: &Value) -> (u16, String) {
    herald_test_support::http::publish(addr, herald_test_support::cluster::APP, event.clone()).await
}

#[tokio::test]
async fn subscription_counts_are_the_clusters() {
    let redis = RedisServer::start();
    let cluster = Cluster::new(&redis);
    let nodes = cluster.nodes(2);
    let (mut on_a, _) = client(nodes[0].addr()).await;
    subscribe(&mut on_a, "counted").await;
    let (mut on_b, _) = client(nodes[1].addr()).await;
    subscribe(&mut on_b, "counted").await;
    for ws in [&mut on_a, &mut on_b] {
        tokio::time::timeout(REAP_BOUND, async {
            loop {
                let v = next_json(ws).await;
                if v["event"] == "pusher_internal:subscription_count" {
                    let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
                    if data["subscription_count"] == 2 {
                        return;
                    }
                }
            }
        })
        .await
        .expect("subscription_count 2 on both nodes");
    }
}

#[tokio::test]
async fn after_redis_restarts_empty_the_nodes_register_their_members_again() {
    let mut redis = RedisServer::start();
    let cluster = Cluster::new(&redis);
    let nodes = cluster.nodes(2);
    let addrs: Vec<_> = nodes.iter().map(|n| n.addr()).collect();
    let (mut ann, sid) = client(addrs[0]).await;
    join_presence(&mut ann, &sid, "presence-restart", "ann").await;
    await_users(&addrs, "presence-restart", &["ann"]).await;

    redis.kill();
    redis.restart();
    // Until the nodes reconnect the API may answer 503; then both list Ann again.
    let deadline = tokio::time::Instant::now() + herald_test_support::WAIT;
    for addr in addrs {
        loop {
            let (status, body) = api(addr, "GET", "/channels/presence-restart/users", &[]).await;
            if status == 200 && body["users"] == json!([{"id": "ann"}]) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{addr}: {status} {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_is_occupied_and_vacated_once_in_the_cluster() {
    use herald_test_support::redis::node_settings;
    use herald_test_support::{TestServer, app, settings};
    let redis = RedisServer::start();
    let mut hooks = herald_test_support::webhooks::Receiver::start().await;
    let hook_addr = hooks.addr;
    let hooked = || {
        let hook = herald_core::app::WebhookConfig {
            url: format!("http://{hook_addr}/hooks"),
            event_types: vec!["channel_occupied".into(), "channel_vacated".into()],
            ..Default::default()
        };
        settings(vec![herald_core::AppConfig { webhooks: vec![hook], ..app("1", "key") }])
    };
    let a = TestServer::start(node_settings(hooked(), &redis)).await;
    let b = TestServer::start(node_settings(hooked(), &redis)).await;

    let (mut on_a, _) = a.pusher("key").await;
    subscribe(&mut on_a, "room").await;
    assert_eq!(hooks.next_for("room").await, "channel_occupied");
    // B's changes are emitted in order: were B to report `room` occupied again, it would come
    // before its `marker-b`.
    let (mut on_b, _) = b.pusher("key").await;
    subscribe(&mut on_b, "room").await;
    subscribe(&mut on_b, "marker-b").await;
    let mut seen = Vec::new();
    loop {
        let (name, ch) = hooks.next().await;
        if ch == "marker-b" {
            break;
        }
        seen.push((name, ch));
    }
    assert_eq!(seen, [], "B reported nothing about room");

    // A leaves (B is still there), then B: one channel_vacated, from B; A's leave reported
    // nothing, which A's own marker after it shows.
    drop(on_a);
    // A's leave is in Redis once the cluster counts one subscription.
    let deadline = tokio::time::Instant::now() + herald_test_support::WAIT;
    loop {
        let path = "/apps/1/channels/room";
        let q = herald_test_support::sign::signed_query(
            "GET",
            path,
            &[("info", "subscription_count")],
            "",
            "key",
            "key-secret",
        );
        let (status, body) = herald_test_support::http::http(b.addr, "GET", &format!("{path}?{q}")).await;
        assert_eq!(status, 200, "{body}");
        if serde_json::from_str::<Value>(&body).unwrap()["subscription_count"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut on_a2, _) = a.pusher("key").await;
    subscribe(&mut on_a2, "marker-a").await;
    let mut seen = Vec::new();
    loop {
        let (name, ch) = hooks.next().await;
        if ch == "marker-a" {
            break;
        }
        seen.push((name, ch));
    }
    assert_eq!(seen, [], "A's leave vacated nothing");
    drop(on_b);
    assert_eq!(hooks.next_for("room").await, "channel_vacated");
}

/// `kill -9` of the node that both holds a presence channel's only member and delivers the
/// app's webhooks: another node reaps the member and takes the webhook lease over; the
/// `member_removed` and `channel_vacated` webhooks arrive once each, after the debounce.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_channel_is_vacated_once_by_webhook_after_the_debounce() {
    let redis = RedisServer::start();
    let mut hooks = herald_test_support::webhooks::Receiver::start().await;
    let hook_addr = hooks.addr;
    let extra = format!(
        "[[apps.webhooks]]\nurl = \"http://{hook_addr}/hooks\"\n\
         event_types = [\"channel_occupied\", \"channel_vacated\", \"member_added\", \"member_removed\"]\n"
    );
    let cluster = Cluster::with_app_extra(&redis, &extra);
    // Started first, B takes the webhook lease first.
    let mut b = cluster.node();
    let (mut bea, sid) = client(b.addr()).await;
    join_presence(&mut bea, &sid, "presence-doomed", "bea").await;
    assert_eq!(hooks.next_for("presence-doomed").await, "channel_occupied");
    assert_eq!(hooks.next_for("presence-doomed").await, "member_added");
    let others = cluster.nodes(2);

    b.child.kill().unwrap();
    let killed = tokio::time::Instant::now();
    // Reaped within the lease, taken over within the lease, held for the debounce.
    let bound = REAP_BOUND + Duration::from_secs(10);
    let mut departures = Vec::new();
    while departures.len() < 2 {
        let (name, ch) =
            hooks.next_within(bound.saturating_sub(killed.elapsed())).await.expect("the departures within the bound");
        // What B delivered just before dying may come again (at least once); departures once.
        if ch == "presence-doomed" && !["channel_occupied", "member_added"].contains(&name.as_str()) {
            departures.push(name);
        }
    }
    departures.sort();
    assert_eq!(departures, ["channel_vacated", "member_removed"]);
    assert!(killed.elapsed() >= Duration::from_secs(3), "held for the debounce");
    // Nothing more about the channel: the app's webhooks keep their order, so a second
    // departure would come before a marker occupied after it.
    let (mut on_a, _) = client(others[0].addr()).await;
    subscribe(&mut on_a, "marker").await;
    loop {
        let (name, ch) = hooks.next().await;
        if ch == "marker" {
            assert_eq!(name, "channel_occupied");
            break;
        }
        assert_ne!(ch, "presence-doomed", "{name} sent twice");
    }
}
