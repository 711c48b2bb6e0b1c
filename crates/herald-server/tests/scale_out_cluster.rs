//! Scale-out on a real Redis Cluster (three masters): every publication accepted on any of three
//! herald nodes reaches every subscriber on every node exactly once, in its publisher's order per
//! channel, with the app's shards spread over all three masters; a node whose cluster
//! connections are cut gets what was published meanwhile, none twice. Channel and user state
//! is the cluster's too: presence members, counts and the HTTP API's answers agree on every node.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use herald_server::config::ScaleOutSettings;
use herald_test_support::cluster::{join_presence_of, next_member_event};
use herald_test_support::http::publish;
use herald_test_support::redis::{await_health, third_node_envelope};
use herald_test_support::redis_cluster::RedisCluster;
use herald_test_support::{TestServer, WAIT, Ws, next_json, subscribe};
use redis::aio::MultiplexedConnection;
use serde_json::{Value, json};

const APP: (&str, &str, &str) = ("1", "key", "key-secret");
/// Shards per app (`herald-redis`'s constant).
const SHARDS: u32 = 16;
/// The publish script every node runs, to publish as a third node would.
const SCRIPT: &str = include_str!("../../herald-redis/src/sharded/script.lua");

async fn node(cluster: &RedisCluster) -> TestServer {
    node_of(cluster, herald_test_support::app(APP.0, APP.1)).await
}

async fn node_of(cluster: &RedisCluster, app: herald_core::AppConfig) -> TestServer {
    let base = herald_test_support::inproc::with_metrics(herald_test_support::settings(vec![app]));
    let scale_out = ScaleOutSettings {
        redis_url: String::new(),
        redis_cluster: cluster.urls(),
        prefix: "test".into(),
        replay_window: Duration::from_secs(60),
    };
    let server = TestServer::start(herald_server::config::Settings { scale_out: Some(scale_out), ..base }).await;
    let health = await_health(server.metrics(), 200).await;
    assert_eq!(health["backend"], "redis-cluster", "{health}");
    server
}

/// The shard of a channel, as herald computes it (FNV-1a).
fn shard_of(channel: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in channel.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % SHARDS
}

/// One channel per shard: `channels[k]` goes through shard `k`.
fn one_channel_per_shard() -> Vec<String> {
    let mut channels = vec![String::new(); SHARDS as usize];
    let mut left = SHARDS;
    for i in 0.. {
        let c = format!("ch-{i}");
        let k = shard_of(&c) as usize;
        if channels[k].is_empty() {
            channels[k] = c;
            left -= 1;
            if left == 0 {
                return channels;
            }
        }
    }
    unreachable!()
}

/// The next Pusher event that is not an internal one: (channel, data).
async fn next_event(ws: &mut Ws) -> (String, String) {
    loop {
        let v: Value = next_json(ws).await;
        if !v["event"].as_str().unwrap_or("").starts_with("pusher") {
            return (v["channel"].as_str().unwrap().to_owned(), v["data"].as_str().unwrap().to_owned());
        }
    }
}

async fn publish_until_accepted(addr: SocketAddr, channel: &str, data: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = publish(addr, APP, json!({"name": "ev", "channel": channel, "data": data})).await;
        match status {
            200 => return,
            503 => assert!(tokio::time::Instant::now() < deadline, "{data}: refused until the deadline: {body}"),
            other => panic!("{data}: {other} {body}"),
        }
        // Bounded retry pace while the link is down (the 503 says to retry later).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads `ws` until every marker has arrived and checks that what came before is exactly
/// `expected`: per (publisher, channel), in order, nothing twice. Data is "{publisher}:{n}".
/// A publisher's marker on a channel comes after everything it published there.
async fn assert_exactly_once_in_order(
    ws: &mut Ws,
    expected: &HashMap<(String, String), Vec<String>>,
    markers: &HashSet<(String, String)>,
) {
    let mut got: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut left = markers.clone();
    while !left.is_empty() {
        let (channel, data) = tokio::time::timeout(WAIT, next_event(ws)).await.unwrap_or_else(|_| {
            panic!("markers never arrived: {left:?}");
        });
        if left.remove(&(channel.clone(), data.clone())) || data.starts_with("marker") {
            continue;
        }
        let (publisher, _) = data.split_once(':').unwrap();
        got.entry((publisher.to_owned(), channel)).or_default().push(data);
    }
    for (key, want) in expected {
        let have = got.remove(key).unwrap_or_default();
        assert_eq!(&have, want, "{key:?}: not every publication once in publish order");
    }
    assert!(got.is_empty(), "delivered without being accepted: {got:?}");
}

/// A connection to each master.
async fn masters(cluster: &RedisCluster) -> Vec<MultiplexedConnection> {
    let mut out = Vec::new();
    for url in cluster.urls() {
        out.push(redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap());
    }
    out
}

/// Ids of the clients connected to `conn`'s server, without `conn` itself.
async fn client_ids(conn: &mut MultiplexedConnection) -> HashSet<String> {
    let me: i64 = redis::cmd("CLIENT").arg("ID").query_async(conn).await.unwrap();
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(conn).await.unwrap();
    list.lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")).map(str::to_owned))
        .filter(|id| *id != me.to_string())
        .collect()
}

#[tokio::test]
async fn three_nodes_share_every_publication_once_over_three_masters() {
    let cluster = RedisCluster::start(3);
    let nodes = [node(&cluster).await, node(&cluster).await, node(&cluster).await];
    let channels = one_channel_per_shard();
    let mut subscribers = Vec::new();
    for n in &nodes {
        let (mut ws, _) = n.pusher(APP.1).await;
        for c in &channels {
            subscribe(&mut ws, c).await;
        }
        subscribers.push(ws);
    }

    // Every node publishes on every channel, the three at once.
    let publishers = nodes.iter().enumerate().map(|(i, n)| {
        let (addr, channels) = (n.addr, channels.clone());
        tokio::spawn(async move {
            let mut accepted: HashMap<(String, String), Vec<String>> = HashMap::new();
            for round in 0..4 {
                for c in &channels {
                    let data = format!("n{i}:{round}");
                    publish_until_accepted(addr, c, &data).await;
                    accepted.entry((format!("n{i}"), c.clone())).or_default().push(data);
                }
            }
            accepted
        })
    });
    let mut expected = HashMap::new();
    for p in publishers {
        expected.extend(p.await.unwrap());
    }
    assert_eq!(expected.values().map(Vec::len).sum::<usize>(), 3 * 4 * SHARDS as usize);
    let mut markers = HashSet::new();
    for (i, n) in nodes.iter().enumerate() {
        for c in &channels {
            let marker = format!("marker-n{i}");
            publish_until_accepted(n.addr, c, &marker).await;
            markers.insert((c.clone(), marker));
        }
    }
    for ws in &mut subscribers {
        assert_exactly_once_in_order(ws, &expected, &markers).await;
    }

    // The app's shards live on every master: the load is spread.
    for mut m in masters(&cluster).await {
        let logs: Vec<String> = redis::cmd("KEYS").arg("test:{1:*}:log").query_async(&mut m).await.unwrap();
        let subscribed: Vec<String> =
            redis::cmd("PUBSUB").arg("SHARDCHANNELS").arg("test:*").query_async(&mut m).await.unwrap();
        assert!(!logs.is_empty() && !subscribed.is_empty(), "a master holds no shard: {logs:?} {subscribed:?}");
    }
}

/// The publish script's call for shard `k` of the app, as one command.
fn script_call(k: u32, envelope: &[u8]) -> redis::Cmd {
    let tag = format!("test:{{{}:{k}}}", APP.0);
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(SCRIPT).arg(3).arg(format!("{tag}:log")).arg(format!("{tag}:last")).arg(&tag).arg(100_000).arg(envelope);
    cmd
}

#[tokio::test]
async fn a_node_whose_cluster_connections_are_cut_gets_what_was_published_meanwhile() {
    let cluster = RedisCluster::start(3);
    let a = node(&cluster).await;
    let mut conns = masters(&cluster).await;
    // Everything connected before C is not C's.
    let mut others = Vec::new();
    for m in &mut conns {
        others.push(client_ids(m).await);
    }
    let c = node(&cluster).await;
    let channels = one_channel_per_shard();
    let (mut on_c, _) = c.pusher(APP.1).await;
    for ch in &channels {
        subscribe(&mut on_c, ch).await;
    }
    // A shard owned by each master (a plain connection is refused the others' keys).
    let mut owned = Vec::new();
    for m in &mut conns {
        let mut mine = None;
        for k in 0..SHARDS {
            let key = format!("test:{{{}:{k}}}:log", APP.0);
            if redis::cmd("TYPE").arg(&key).query_async::<String>(m).await.is_ok() {
                mine = Some(k);
                break;
            }
        }
        owned.push(mine.expect("the master owns one of the app's shards"));
    }

    // A keeps publishing through its HTTP API...
    let (a_addr, a_channels) = (a.addr, channels.clone());
    let publisher = tokio::spawn(async move {
        let mut accepted: HashMap<(String, String), Vec<String>> = HashMap::new();
        for n in 0..160 {
            let ch = &a_channels[n % a_channels.len()];
            let data = format!("a:{n}");
            publish_until_accepted(a_addr, ch, &data).await;
            accepted.entry(("a".to_owned(), ch.clone())).or_default().push(data);
        }
        accepted
    });
    // ...while every connection of C to each master is cut, again and again; in the same step
    // a third node publishes on that master, so C can only get it from the shard's stream.
    let mut expected: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut seq = 0;
    for round in 0..4 {
        for (i, m) in conns.iter_mut().enumerate() {
            let deadline = tokio::time::Instant::now() + WAIT;
            let ids = loop {
                let ids: Vec<String> = client_ids(m).await.difference(&others[i]).cloned().collect();
                if !ids.is_empty() {
                    break ids;
                }
                assert!(tokio::time::Instant::now() < deadline, "C did not reconnect to master {i}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            seq += 1;
            let k = owned[i];
            let ch = &channels[k as usize];
            let data = format!("third:{round}-{i}");
            let mut tx = redis::pipe();
            tx.atomic();
            for id in &ids {
                tx.cmd("CLIENT").arg("KILL").arg("ID").arg(id);
            }
            tx.add_command(script_call(k, &third_node_envelope(seq, ch, &data)));
            let answers: Vec<redis::Value> = tx.query_async(m).await.unwrap();
            // Some of those may have closed by themselves since (the client's seed connections).
            let killed = answers[..ids.len()].iter().filter(|a| **a == redis::Value::Int(1)).count();
            assert!(killed >= 1, "C was connected: {answers:?}");
            expected.entry(("third".to_owned(), ch.clone())).or_default().push(data);
        }
    }
    let accepted = tokio::time::timeout(WAIT * 2, publisher).await.expect("publisher loop ends").unwrap();
    expected.extend(accepted);

    // Markers: A's on every channel, and the third node's on each shard it used.
    let mut markers = HashSet::new();
    for ch in &channels {
        publish_until_accepted(a.addr, ch, "marker-a").await;
        markers.insert((ch.clone(), "marker-a".to_owned()));
    }
    for (i, m) in conns.iter_mut().enumerate() {
        seq += 1;
        let ch = &channels[owned[i] as usize];
        let _: redis::Value =
            script_call(owned[i], &third_node_envelope(seq, ch, "marker-third")).query_async(m).await.unwrap();
        markers.insert((ch.clone(), "marker-third".to_owned()));
    }
    assert_exactly_once_in_order(&mut on_c, &expected, &markers).await;
    // The link is up again.
    await_health(c.metrics(), 200).await;
}

/// A signed HTTP API request of [`APP`] on `addr` (`path` under `/apps/{id}`): status and JSON.
async fn api(addr: SocketAddr, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let path = format!("/apps/{}{path}", APP.0);
    let q = herald_test_support::sign::signed_query("GET", &path, params, "", APP.1, APP.2);
    let (status, body) = herald_test_support::http::http(addr, "GET", &format!("{path}?{q}")).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Polls `GET` `path` with `params` on every node until each answers `want` (the shared state
/// is written after a subscription is acknowledged).
async fn await_api(nodes: &[SocketAddr], path: &str, params: &[(&str, &str)], want: &Value) {
    let deadline = tokio::time::Instant::now() + WAIT;
    for &addr in nodes {
        loop {
            let (status, got) = api(addr, path, params).await;
            if status == 200 && got == *want {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{addr} {path}: {status} {got}, wanted {want}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_members_and_counts_are_the_clusters_on_every_node() {
    let cluster = RedisCluster::start(3);
    let app = || herald_core::AppConfig { enable_subscription_count: true, ..herald_test_support::app(APP.0, APP.1) };
    let nodes = [node_of(&cluster, app()).await, node_of(&cluster, app()).await, node_of(&cluster, app()).await];
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();

    let (mut ann, sid) = nodes[0].pusher(APP.1).await;
    let presence = join_presence_of(&mut ann, (APP.1, APP.2), &sid, "presence-room", "ann").await;
    assert_eq!(presence["ids"], json!(["ann"]));
    await_api(&addrs, "/channels/presence-room/users", &[], &json!({"users": [{"id": "ann"}]})).await;

    // Cid, on another node, gets Ann with her user_info; Ann hears of Cid with his.
    let (mut cid, sid) = nodes[2].pusher(APP.1).await;
    let presence = join_presence_of(&mut cid, (APP.1, APP.2), &sid, "presence-room", "cid").await;
    let mut ids: Vec<&str> = presence["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["ann", "cid"], "{presence}");
    assert_eq!(presence["hash"]["ann"], json!({"name": "ann"}), "{presence}");
    let added = next_member_event(&mut ann, WAIT).await;
    assert_eq!(added["event"], "pusher_internal:member_added", "{added}");
    let data: Value = serde_json::from_str(added["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, json!({"user_id": "cid", "user_info": {"name": "cid"}}));

    await_api(&addrs, "/channels/presence-room/users", &[], &json!({"users": [{"id": "ann"}, {"id": "cid"}]})).await;
    let both = json!({"occupied": true, "user_count": 2, "subscription_count": 2});
    await_api(&addrs, "/channels/presence-room", &[("info", "user_count,subscription_count")], &both).await;

    // A channel occupied on one node only is listed on every node, then vacated everywhere.
    let (mut on_b, _) = nodes[1].pusher(APP.1).await;
    subscribe(&mut on_b, "only-b").await;
    let listed = json!({"channels": {"only-b": {"subscription_count": 1}, "presence-room": {"subscription_count": 2}}});
    await_api(&addrs, "/channels", &[("info", "subscription_count")], &listed).await;
    drop(on_b);
    await_api(&addrs, "/channels/only-b", &[], &json!({"occupied": false})).await;

    // Cid leaves: Ann hears it, and every node lists Ann alone.
    drop(cid);
    let removed = next_member_event(&mut ann, WAIT).await;
    assert_eq!(removed["event"], "pusher_internal:member_removed", "{removed}");
    await_api(&addrs, "/channels/presence-room/users", &[], &json!({"users": [{"id": "ann"}]})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_is_occupied_and_vacated_once_by_webhook_on_a_redis_cluster() {
    let cluster = RedisCluster::start(3);
    let mut hooks = herald_test_support::webhooks::Receiver::start().await;
    let hook_addr = hooks.addr;
    let hooked = || {
        let hook = herald_core::app::WebhookConfig {
            url: format!("http://{hook_addr}/hooks"),
            event_types: vec!["channel_occupied".into(), "channel_vacated".into()],
            ..Default::default()
        };
        herald_core::AppConfig { webhooks: vec![hook], ..herald_test_support::app(APP.0, APP.1) }
    };
    let a = node_of(&cluster, hooked()).await;
    let b = node_of(&cluster, hooked()).await;

    let (mut on_a, _) = a.pusher(APP.1).await;
    subscribe(&mut on_a, "room").await;
    let (mut marker, _) = a.pusher(APP.1).await;
    subscribe(&mut marker, "marker-0").await;
    assert_eq!(hooks.until("marker-0").await, [("channel_occupied".to_owned(), "room".to_owned())]);

    // B joins: the channel was occupied already; B's marker comes after anything B reported.
    let (mut on_b, _) = b.pusher(APP.1).await;
    subscribe(&mut on_b, "room").await;
    subscribe(&mut on_b, "marker-b").await;
    assert_eq!(hooks.until("marker-b").await, [], "B reported nothing about room");

    // A leaves while B stays: nothing; then B leaves: one channel_vacated.
    drop(on_a);
    let one = json!({"occupied": true, "subscription_count": 1});
    await_api(&[a.addr, b.addr], "/channels/room", &[("info", "subscription_count")], &one).await;
    subscribe(&mut marker, "marker-a").await;
    assert_eq!(hooks.until("marker-a").await, [], "A's leave vacated nothing");
    drop(on_b);
    let vacated = hooks.next().await;
    assert_eq!(vacated, ("channel_vacated".to_owned(), "room".to_owned()));
    // They went through the app's webhook stream in the cluster, whose leader moved its cursor.
    assert_eq!(cluster.cli(&["EXISTS", "test:hooks:{1}:cursor"]).trim(), "1");
}

/// The sorted member ids of `GET /channels/{channel}/users` on the child node at `addr`.
async fn child_users(addr: SocketAddr, channel: &str) -> Vec<String> {
    let (status, body) =
        herald_test_support::cluster::api(addr, "GET", &format!("/channels/{channel}/users"), &[]).await;
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<String> =
        body["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

fn member_event(v: &Value) -> (String, String) {
    let data: Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
    (v["event"].as_str().unwrap().to_owned(), data["user_id"].as_str().unwrap().to_owned())
}

/// `kill -9` of a herald process on a Redis Cluster: another node reaps its member, who leaves
/// every node once, within the lease and a reaping tick.
#[tokio::test]
async fn a_killed_nodes_member_leaves_every_node_once_on_a_redis_cluster() {
    use herald_test_support::cluster::{Cluster, client};
    let redis = RedisCluster::start(3);
    let cluster = Cluster::on_redis_cluster(&redis);
    let mut nodes = cluster.nodes(3);
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr()).collect();

    let (mut watcher, sid) = client(addrs[0]).await;
    let presence = herald_test_support::cluster::join_presence(&mut watcher, &sid, "presence-kill", "watcher").await;
    assert_eq!(presence["ids"], json!(["watcher"]));
    let (mut bea, sid) = client(addrs[1]).await;
    herald_test_support::cluster::join_presence(&mut bea, &sid, "presence-kill", "bea").await;
    let added = member_event(&next_member_event(&mut watcher, WAIT).await);
    assert_eq!(added, ("pusher_internal:member_added".to_owned(), "bea".to_owned()));
    let deadline = tokio::time::Instant::now() + WAIT;
    for addr in [addrs[0], addrs[2]] {
        while child_users(addr, "presence-kill").await != ["bea", "watcher"] {
            assert!(tokio::time::Instant::now() < deadline, "{addr} never listed bea");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    nodes[1].child.kill().unwrap();
    let killed = tokio::time::Instant::now();
    let removed = member_event(&next_member_event(&mut watcher, WAIT).await);
    assert_eq!(removed, ("pusher_internal:member_removed".to_owned(), "bea".to_owned()));
    assert!(killed.elapsed() < Duration::from_secs(10), "reaped after {:?}", killed.elapsed());
    for addr in [addrs[0], addrs[2]] {
        assert_eq!(child_users(addr, "presence-kill").await, ["watcher"], "{addr}");
    }
    // Nothing more about bea: the next member event is a newcomer's.
    let (mut cy, sid) = client(addrs[2]).await;
    herald_test_support::cluster::join_presence(&mut cy, &sid, "presence-kill", "cy").await;
    let added = member_event(&next_member_event(&mut watcher, WAIT).await);
    assert_eq!(added, ("pusher_internal:member_added".to_owned(), "cy".to_owned()));
}

/// Cached events spread over the masters (one per channel): a node started later finds each
/// one, whichever master holds it.
#[tokio::test]
async fn a_node_started_after_cache_publications_serves_them_on_a_redis_cluster() {
    use herald_test_support::cluster::{APP as CHILD_APP, Cluster, client};
    let redis = RedisCluster::start(3);
    let cluster = Cluster::on_redis_cluster(&redis);
    let first = cluster.node();
    let channels: Vec<String> = (0..8).map(|i| format!("cache-news-{i}")).collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    for c in &channels {
        // 503 until the node's cluster link is up (it subscribes after it binds).
        loop {
            let (status, body) = publish(first.addr(), CHILD_APP, json!({"name": "ev", "channel": c, "data": c})).await;
            if status == 200 {
                break;
            }
            assert!(status == 503 && tokio::time::Instant::now() < deadline, "{status} {body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // The events reach Redis after the publishes are answered, and a node loads them after it
    // binds: the late node is asked until it serves them all (bounded).
    let deadline = tokio::time::Instant::now() + WAIT;
    let late = cluster.node();
    'late: loop {
        assert!(tokio::time::Instant::now() < deadline, "the late node never served every cached event");
        tokio::time::sleep(Duration::from_millis(20)).await;
        for c in &channels {
            // One socket per channel: another channel's subscription_count cannot come first.
            let (mut ws, _) = client(late.addr()).await;
            subscribe(&mut ws, c).await;
            let next = loop {
                let v = next_json(&mut ws).await;
                if v["event"] != "pusher_internal:subscription_count" {
                    break v;
                }
            };
            if next["event"] == "pusher:cache_miss" {
                continue 'late;
            }
            assert_eq!((&next["event"], &next["data"]), (&json!("ev"), &json!(c)), "{next}");
        }
        break;
    }
    let mut held = 0;
    for m in masters(&redis).await.iter_mut() {
        let keys: Vec<String> = redis::cmd("KEYS").arg("test:{1:cache-news-*}:cache").query_async(m).await.unwrap();
        held += usize::from(!keys.is_empty());
    }
    assert!(held > 1, "the cached events sat on one master only");
}
