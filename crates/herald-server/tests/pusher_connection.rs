//! Connection-level Pusher behaviour over real sockets: URL validation close codes, keep-alive,
//! slow consumers and the shutdown drain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use herald_core::{AppConfig, OutboxLimits, Publication, PublicationData};
use herald_protocol::pusher::channel_name::ChannelName;
use herald_test_support::*;
use serde_json::json;

async fn close_code_for(server: &TestServer, path: &str) -> u16 {
    let mut ws = server.ws(path).await;
    let f = close_frame(&mut ws).await.expect("a close frame");
    u16::from(f.code)
}

#[tokio::test]
async fn url_problems_close_with_the_documented_pusher_codes() {
    let disabled = AppConfig { enabled: false, ..app("2", "off") };
    let server = TestServer::start(settings(vec![app("1", "key"), disabled])).await;
    assert_eq!(close_code_for(&server, "/app/nope?protocol=7").await, 4001);
    assert_eq!(close_code_for(&server, "/app/off?protocol=7").await, 4003);
    assert_eq!(close_code_for(&server, "/elsewhere?protocol=7").await, 4005);
    assert_eq!(close_code_for(&server, "/app/key?protocol=7&version=%00bad").await, 4006);
    assert_eq!(close_code_for(&server, "/app/key?protocol=7&version=%ff").await, 4006);
    assert_eq!(close_code_for(&server, "/app/key?protocol=6").await, 4007);
    assert_eq!(close_code_for(&server, "/app/key?protocol=seven").await, 4007);
    assert_eq!(close_code_for(&server, "/app/key").await, 4008);
    server.shutdown().await;
}

#[tokio::test]
async fn url_encoded_protocol_and_version_are_decoded_before_they_are_checked() {
    let server = TestServer::start(settings(vec![app("1", "key")])).await;
    for path in ["/app/key?protocol=%37&version=8.4.0%2Bbuild", "/app/key?protocol=7&version=8%2E4%2E0"] {
        let mut ws = server.ws(path).await;
        assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established", "{path}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn max_connections_refuses_the_next_socket_with_4004() {
    let server = TestServer::start(settings(vec![AppConfig { max_connections: 1, ..app("1", "key") }])).await;
    let (_first, _) = server.pusher("key").await;
    assert_eq!(close_code_for(&server, "/app/key?protocol=7").await, 4004);
    server.shutdown().await;
}

#[tokio::test]
async fn handshake_carries_socket_id_and_activity_timeout() {
    let server = TestServer::start(settings(vec![app("1", "key")])).await;
    let mut ws = server.ws("/app/key?protocol=7&client=js&version=8.4.0").await;
    let hello = next_json(&mut ws).await;
    let data: serde_json::Value = serde_json::from_str(hello["data"].as_str().unwrap()).unwrap();
    let id = data["socket_id"].as_str().unwrap();
    let (a, b) = id.split_once('.').unwrap();
    assert!(a.bytes().chain(b.bytes()).all(|c| c.is_ascii_digit()), "{id}");
    assert_eq!(data["activity_timeout"], 120);
    send_json(&mut ws, json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(next_json(&mut ws).await["event"], "pusher:pong");
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_pinged_then_closed_with_4201() {
    let cfg = AppConfig { activity_timeout: 1, pong_timeout: 1, ..app("1", "key") };
    let server = TestServer::start(settings(vec![cfg])).await;
    let (mut ws, _) = server.pusher("key").await;
    assert_eq!(next_json(&mut ws).await["event"], "pusher:ping");
    let f = close_frame(&mut ws).await.unwrap();
    assert_eq!(u16::from(f.code), 4201);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let cfg = AppConfig { activity_timeout: 1, pong_timeout: 1, ..app("1", "key") };
    let server = TestServer::start(settings(vec![cfg])).await;
    let (mut ws, _) = server.pusher("key").await;
    for _ in 0..2 {
        assert_eq!(next_json(&mut ws).await["event"], "pusher:ping");
        send_json(&mut ws, json!({"event":"pusher:pong","data":{}})).await;
    }
    send_json(&mut ws, json!({"event":"pusher:ping","data":{}})).await;
    assert_eq!(next_json(&mut ws).await["event"], "pusher:pong");
    server.shutdown().await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_closed_with_4100_and_others_get_everything() {
    let mut s = settings(vec![app("1", "key")]);
    s.outbox = OutboxLimits { max_frames: 64, max_bytes: 256 * 1024 };
    let server = TestServer::start(s).await;
    let (mut slow, _) = server.pusher("key").await;
    let (mut healthy, _) = server.pusher("key").await;
    subscribe(&mut slow, "news").await;
    subscribe(&mut healthy, "news").await;

    let app = server.hub.app_by_id("1").unwrap();
    let big = "x".repeat(8 * 1024);
    let channel = ChannelName::parse("news", 200).unwrap();
    // 24 MB in total: more than loopback socket buffers plus the slow outbox can hold.
    let total = 3_000;
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        for i in 0..total {
            let ev = next_json(&mut healthy).await;
            assert_eq!(ev["event"], format!("e{i}"), "in order, none lost");
            let _ = progress_tx.send(i + 1);
        }
    });
    for i in 0..total {
        // Stay a few frames ahead of the healthy reader, so only the stalled one falls behind.
        while i >= *progress.borrow() + 16 {
            progress.changed().await.expect("reader alive");
        }
        let p = Publication::new(channel.clone(), format!("e{i}"), PublicationData::Str(big.as_str().into()));
        server.hub.publish(&app, p);
    }
    tokio::time::timeout(WAIT, reader).await.expect("healthy subscriber got all events").unwrap();
    let f = close_frame(&mut slow).await.expect("slow consumer gets a close frame");
    assert_eq!(u16::from(f.code), 4100, "a 4100-range code so pusher-js reconnects");
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_every_session_with_4200() {
    let server = TestServer::start(settings(vec![app("1", "key")])).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(server.pusher("key").await.0);
    }
    let stop = tokio::spawn(server.shutdown());
    for ws in &mut clients {
        let f = close_frame(ws).await.expect("close frame");
        assert_eq!(u16::from(f.code), 4200);
    }
    stop.await.unwrap();
}

#[tokio::test]
async fn malformed_frames_get_an_error_and_the_socket_keeps_working() {
    let server = TestServer::start(settings(vec![app("1", "key")])).await;
    let (mut ws, _) = server.pusher("key").await;
    for bad in ["not json", "[1,2]", r#"{"data":{}}"#, r#"{"event":"pusher:subscribe","data":{"channel":"bad name!"}}"#]
    {
        ws.send(tokio_tungstenite::tungstenite::Message::text(bad)).await.unwrap();
        let mut got = next_json(&mut ws).await;
        if got["event"] == "pusher:subscription_error" {
            got = next_json(&mut ws).await;
        }
        assert_eq!(got["event"], "pusher:error", "{bad} -> {got}");
        assert!(!got["data"]["message"].as_str().unwrap().is_empty());
    }
    subscribe(&mut ws, "still-works").await;
    server.shutdown().await;
}

use futures_util::SinkExt;
