//! Scale-out on a real Redis: two herald nodes share a redis-server (unix socket, no port) and
//! every publication accepted on one reaches the other's subscribers exactly once; envelopes
//! written in another format version reach nobody.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_core::AppConfig;
use herald_protocol::cluster::VERSION;
use herald_test_support::http::publish;
use herald_test_support::redis::{RedisServer, await_health, health, node_settings, redis_xadd, third_node_envelope};
use herald_test_support::{TestServer, WAIT, Ws, next_json, send_json, subscribe};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const APP: (&str, &str, &str) = ("1", "key", "key-secret");

fn app() -> AppConfig {
    AppConfig { enable_client_messages: true, wamp: true, ..herald_test_support::app(APP.0, APP.1) }
}

/// Node A and node B on one Redis.
async fn two_nodes(redis: &RedisServer) -> (TestServer, TestServer) {
    let a = TestServer::start(node_settings(herald_test_support::settings(vec![app()]), redis)).await;
    let b = TestServer::start(node_settings(herald_test_support::settings(vec![app()]), redis)).await;
    (a, b)
}

fn event(channel: &str, data: &str) -> Value {
    json!({"name": "ev", "channel": channel, "data": data})
}

/// The next Pusher event that is not an internal one.
async fn next_event(ws: &mut Ws) -> Value {
    loop {
        let v = next_json(ws).await;
        if !v["event"].as_str().unwrap_or("").starts_with("pusher") {
            return v;
        }
    }
}

/// The next text message within `wait`, if any.
async fn try_next_json(ws: &mut Ws, wait: Duration) -> Option<Value> {
    match tokio::time::timeout(wait, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => Some(serde_json::from_str(&t).unwrap()),
        _ => None,
    }
}

#[tokio::test]
async fn http_publish_on_a_reaches_subscriber_on_b_exactly_once() {
    let redis = RedisServer::start();
    let (a, b) = two_nodes(&redis).await;
    let (status, body) = health(a.metrics()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["backend"], "redis");

    let (mut on_b, _) = b.pusher(APP.1).await;
    subscribe(&mut on_b, "news").await;
    let (mut on_a, _) = a.pusher(APP.1).await;
    subscribe(&mut on_a, "news").await;

    assert_eq!(publish(a.addr, APP, event("news", "first")).await.0, 200);
    assert_eq!(publish(a.addr, APP, event("news", "second")).await.0, 200);
    for ws in [&mut on_b, &mut on_a] {
        // In order, and "first" only once: the next event after it is "second".
        let got = next_event(ws).await;
        assert_eq!((got["channel"].as_str(), got["data"].as_str()), (Some("news"), Some("first")), "{got}");
        assert_eq!(next_event(ws).await["data"], "second");
    }
    // And the other way round, from B to A.
    assert_eq!(publish(b.addr, APP, event("news", "third")).await.0, 200);
    assert_eq!(next_event(&mut on_a).await["data"], "third");
    assert_eq!(next_event(&mut on_b).await["data"], "third");
}

#[tokio::test]
async fn socket_id_exclusion_holds_across_nodes() {
    let redis = RedisServer::start();
    let (a, b) = two_nodes(&redis).await;
    let (mut excluded, excluded_id) = b.pusher(APP.1).await;
    subscribe(&mut excluded, "news").await;
    let (mut other, _) = b.pusher(APP.1).await;
    subscribe(&mut other, "news").await;

    let ev = json!({"name": "ev", "channel": "news", "data": "not-for-you", "socket_id": excluded_id});
    assert_eq!(publish(a.addr, APP, ev).await.0, 200);
    assert_eq!(next_event(&mut other).await["data"], "not-for-you");
    assert_eq!(publish(a.addr, APP, event("news", "for-all")).await.0, 200);
    assert_eq!(next_event(&mut excluded).await["data"], "for-all", "the excluded socket skipped the first event");
}

#[tokio::test]
async fn client_events_cross_nodes() {
    let redis = RedisServer::start();
    let (a, b) = two_nodes(&redis).await;
    let channel = "private-chat";
    let mut sockets = Vec::new();
    for node in [&a, &b] {
        let (mut ws, socket_id) = node.pusher(APP.1).await;
        let auth = herald_protocol::pusher::socket_auth::channel_auth(APP.1, APP.2, &socket_id, channel, None);
        send_json(&mut ws, json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}})).await;
        assert_eq!(next_json(&mut ws).await["event"], "pusher_internal:subscription_succeeded");
        sockets.push(ws);
    }
    let [mut sender, mut receiver] = <[Ws; 2]>::try_from(sockets).ok().unwrap();
    send_json(&mut sender, json!({"event": "client-typing", "channel": channel, "data": {"who": "a"}})).await;
    let got = next_event(&mut receiver).await;
    assert_eq!(got["event"], "client-typing", "{got}");
    assert_eq!(got["data"]["who"], "a", "{got}");
    // The sender does not get its own event back from the other node: the next thing it sees is
    // the marker published afterwards.
    assert_eq!(publish(b.addr, APP, event(channel, "marker")).await.0, 200);
    assert_eq!(next_event(&mut sender).await["data"], "marker");
}

#[tokio::test]
async fn wamp_v2_subscriber_on_b_gets_pusher_publish_from_a() {
    let redis = RedisServer::start();
    let (a, b) = two_nodes(&redis).await;
    let mut req = format!("ws://{}/", b.addr).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "wamp.2.json".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
    ws.send(Message::text(json!([1, APP.0, {"roles": {"subscriber": {}}}]).to_string())).await.unwrap();
    assert_eq!(next_json(&mut ws).await[0], 2, "WELCOME");
    ws.send(Message::text(json!([32, 1, {}, "news"]).to_string())).await.unwrap();
    let subscribed = next_json(&mut ws).await;
    assert_eq!(subscribed[0], 33, "SUBSCRIBED {subscribed}");

    assert_eq!(publish(a.addr, APP, event("news", r#"{"n":1}"#)).await.0, 200);
    let got = next_json(&mut ws).await;
    assert_eq!(got[0], 36, "EVENT {got}");
    assert_eq!(got[1], subscribed[2], "subscription id");
    assert_eq!(got[4], json!([{"n": 1}]), "{got}");
    assert_eq!(got[5]["event"], "ev", "{got}");
}

#[tokio::test]
async fn redis_loss_refuses_publishes_and_recovery_resumes_delivery() {
    let mut redis = RedisServer::start();
    let (a, b) = two_nodes(&redis).await;
    let (mut on_b, _) = b.pusher(APP.1).await;
    subscribe(&mut on_b, "news").await;

    redis.kill();
    let down = await_health(a.metrics(), 503).await;
    assert_eq!(down["backend_available"], false, "{down}");
    let (status, body) = publish(a.addr, APP, event("news", "while-down")).await;
    assert_eq!(status, 503, "{body}");
    // The client learns that nothing was published, not which backend failed or why.
    assert!(body.contains("unavailable") && body.contains("nothing was published"), "{body}");
    assert!(!body.to_lowercase().contains("redis"), "{body}");
    assert_eq!(health(a.addr).await.0, 404, "/health and its error text stay off the main port");
    await_health(b.metrics(), 503).await;

    redis.restart();
    await_health(a.metrics(), 200).await;
    await_health(b.metrics(), 200).await;
    // Both links are back; B's subscription may still trail A's, so publish until it arrives.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut n = 0;
    let got = loop {
        assert!(tokio::time::Instant::now() < deadline, "no cross-node delivery after Redis returned");
        n += 1;
        let (status, _) = publish(a.addr, APP, event("news", &format!("back-{n}"))).await;
        if status != 200 {
            continue;
        }
        if let Some(v) = try_next_json(&mut on_b, Duration::from_millis(200)).await {
            break v;
        }
    };
    assert!(got["data"].as_str().is_some_and(|d| d.starts_with("back-")), "{got}");
    assert_ne!(got["data"], "while-down", "a refused publication was delivered");
}

#[tokio::test]
async fn client_events_while_redis_is_down_are_still_delivered_on_the_node() {
    let mut redis = RedisServer::start();
    let (a, _b) = two_nodes(&redis).await;
    let channel = "private-room";
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let (mut ws, socket_id) = a.pusher(APP.1).await;
        let auth = herald_protocol::pusher::socket_auth::channel_auth(APP.1, APP.2, &socket_id, channel, None);
        send_json(&mut ws, json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}})).await;
        assert_eq!(next_json(&mut ws).await["event"], "pusher_internal:subscription_succeeded");
        sockets.push(ws);
    }
    redis.kill();
    await_health(a.metrics(), 503).await;
    send_json(&mut sockets[0], json!({"event": "client-note", "channel": channel, "data": {"n": 1}})).await;
    let got = next_event(&mut sockets[1]).await;
    assert_eq!((got["event"].as_str(), &got["data"]["n"]), (Some("client-note"), &json!(1)), "{got}");
}

#[tokio::test]
async fn a_node_started_while_redis_is_down_joins_once_it_is_up() {
    let mut redis = RedisServer::start();
    redis.kill();
    let (a, b) = two_nodes(&redis).await;
    let (status, body) = health(a.metrics()).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(publish(a.addr, APP, event("news", "early")).await.0, 503);

    redis.restart();
    await_health(a.metrics(), 200).await;
    await_health(b.metrics(), 200).await;
    let (mut on_b, _) = b.pusher(APP.1).await;
    subscribe(&mut on_b, "news").await;
    assert_eq!(publish(a.addr, APP, event("news", "joined")).await.0, 200);
    assert_eq!(next_event(&mut on_b).await["data"], "joined");
}

#[tokio::test]
async fn envelopes_of_another_format_version_are_refused_on_every_node() {
    let redis = RedisServer::start();
    let (a, b) = two_nodes(&redis).await;
    let (mut on_a, _) = a.pusher(APP.1).await;
    subscribe(&mut on_a, "news").await;
    let (mut on_b, _) = b.pusher(APP.1).await;
    subscribe(&mut on_b, "news").await;

    // What a third node would append to the app's Redis stream ("{prefix}:{app_id}").
    let from_third_node = |seq: u64, data: &str| third_node_envelope(seq, "news", data);
    // The same envelope written by an older and by a newer herald: only the version differs.
    for (seq, version) in [(1, VERSION - 1), (2, VERSION + 1)] {
        let mut foreign = from_third_node(seq, "from-another-version");
        foreign[0] = version;
        redis_xadd(&redis, "test:1", &foreign).await;
    }
    // The stream keeps the order of its entries: what arrives first was appended after them.
    redis_xadd(&redis, "test:1", &from_third_node(3, "same-version")).await;
    for ws in [&mut on_a, &mut on_b] {
        assert_eq!(next_event(ws).await["data"], "same-version", "an envelope of another version was delivered");
    }
    // The refusal leaves the link healthy and the nodes' own publications flowing.
    assert_eq!(health(b.metrics()).await.0, 200);
    assert_eq!(publish(a.addr, APP, event("news", "marker")).await.0, 200);
    assert_eq!(next_event(&mut on_b).await["data"], "marker");
}
