//! `/up` and `/ready` on the main port; Prometheus `/metrics` and `/health`, scraped and
//! parsed, on the separate metrics port only.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_test_support::http::{http, parse_metrics, publish_data};
use herald_test_support::{TestServer, app, next_json, settings, subscribe, with_metrics};

#[tokio::test]
async fn up_and_ready_answer_on_the_main_port() {
    let server = TestServer::start(settings(vec![app("1", "key")])).await;
    assert_eq!(http(server.addr, "GET", "/up").await, (200, r#"{"health":"OK"}"#.to_owned()));
    assert_eq!(http(server.addr, "GET", "/ready").await, (200, r#"{"ready":true}"#.to_owned()));
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_metrics_port_metrics_and_health_are_served_nowhere() {
    let server = TestServer::start(settings(vec![app("1", "key")])).await;
    assert!(server.metrics.is_none(), "no metrics listener unless metrics_port is set");
    for path in ["/metrics", "/health", "/metrics?x=1", "/health/"] {
        let (status, body) = http(server.addr, "GET", path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!body.contains("herald_") && !body.contains("backend"), "{path}: {body}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn metrics_count_connections_messages_publications_and_api_codes() {
    let server = TestServer::start(with_metrics(settings(vec![app("1", "key"), app("2", "other")]))).await;
    let (mut ws, _) = server.pusher("key").await;
    subscribe(&mut ws, "news").await;
    let secret = "key-secret";
    assert_eq!(publish_data(server.addr, ("1", "key", secret), "news", "hello").await, 200);
    let ev = next_json(&mut ws).await;
    assert_eq!(ev["event"], "ev");
    assert_eq!(publish_data(server.addr, ("1", "key", "wrong-secret"), "news", "x").await, 401);

    assert_eq!(http(server.addr, "GET", "/metrics").await.0, 404, "never on the main port");
    let (status, text) = http(server.metrics(), "GET", "/metrics").await;
    assert_eq!(status, 200);
    let m = parse_metrics(&text);
    assert_eq!(m["herald_connections{app=\"1\"}"], 1.0);
    assert_eq!(m["herald_connections{app=\"2\"}"], 0.0);
    assert_eq!(m["herald_protocol_connections{protocol=\"pusher\"}"], 1.0);
    assert_eq!(m["herald_subscriptions{app=\"1\"}"], 1.0);
    assert_eq!(m["herald_channels{app=\"1\"}"], 1.0);
    assert_eq!(m["herald_messages_in_total{app=\"1\",protocol=\"pusher\"}"], 1.0, "the subscribe message");
    assert_eq!(m["herald_messages_out_total{app=\"1\",protocol=\"pusher\"}"], 1.0);
    assert_eq!(m["herald_publications_total{app=\"1\"}"], 1.0);
    assert_eq!(m["herald_publish_latency_seconds_count{app=\"1\"}"], 1.0);
    assert_eq!(m["herald_publish_latency_seconds_bucket{app=\"1\",le=\"+Inf\"}"], 1.0);
    assert_eq!(m["herald_http_api_responses_total{code=\"200\"}"], 1.0);
    assert_eq!(m["herald_http_api_responses_total{code=\"401\"}"], 1.0);
    assert_eq!(m["herald_draining"], 0.0);
    assert_eq!(m["herald_origin_refused_total{app=\"1\"}"], 0.0);
    assert_eq!(m["herald_connections_refused_total{reason=\"per_ip\"}"], 0.0);
    assert!(m["process_open_fds"] > 0.0);
    assert!(m.keys().all(|k| !k.contains("news")), "channel names are never labels");
    // Buckets are cumulative.
    let buckets: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("herald_publish_latency_seconds_bucket{app=\"1\""))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    drop(ws);
    server.shutdown().await;
}

#[tokio::test]
async fn a_separate_metrics_port_serves_ready_while_draining() {
    let mut s = with_metrics(settings(vec![app("1", "key")]));
    s.shutdown_grace = Duration::from_secs(10);
    let server = TestServer::start(s).await;
    let main = server.listening[0].0;
    let metrics = server.metrics();
    assert_eq!(http(metrics, "GET", "/ready").await.0, 200);
    assert_eq!(http(main, "GET", "/metrics").await.0, 404, "metrics live on their own port");
    assert!(http(metrics, "GET", "/metrics").await.1.contains("herald_connections{app=\"1\"} 0"));
    assert_eq!(http(metrics, "GET", "/health").await.0, 200, "the detailed health is here");
    assert_eq!(http(main, "GET", "/health").await.0, 404);

    // A client that upgrades and then never reads nor closes keeps the drain busy (the server
    // waits for it to acknowledge the close).
    let stuck = raw_upgrade(main).await;
    server.stop_handle().stop();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (code, body) = http(metrics, "GET", "/ready").await;
        if code == 503 {
            assert!(body.contains("draining"));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "/ready never failed");
        tokio::task::yield_now().await;
    }
    let m = parse_metrics(&http(metrics, "GET", "/metrics").await.1);
    assert_eq!(m["herald_draining"], 1.0);
    drop(stuck);
    server.shutdown().await;
}

/// Completes a Pusher WebSocket upgrade over a raw socket and returns it unread.
async fn raw_upgrade(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = "GET /app/key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
               Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 101");
    s
}

/// Opens a raw HTTP request that stays open (a streaming receive, an SSE stream) and reads until
/// `needle` shows in what came back; the stream is returned, still open.
async fn open_stream(addr: std::net::SocketAddr, method: &str, target: &str, needle: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.expect("data in time").unwrap();
        assert!(n > 0, "{target} ended early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    s
}

/// Scrapes `/metrics` until `check` holds (bounded: `within`), and returns that scrape.
async fn metrics_until(
    metrics: std::net::SocketAddr,
    within: Duration,
    what: &str,
    check: impl Fn(&std::collections::HashMap<String, f64>) -> bool,
) -> std::collections::HashMap<String, f64> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let m = parse_metrics(&http(metrics, "GET", "/metrics").await.1);
        if check(&m) {
            return m;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_count_http_sessions_recoveries_and_history() {
    use herald_core::app::HistoryConfig;
    use herald_test_support::send_json;
    use serde_json::json;

    // The HTTP transports' session counts are process-wide: this is the only test of this
    // binary that opens HTTP sessions, so they start at 0.
    let mut a = app("1", "key");
    a.history = vec![HistoryConfig { channels: "history-*".into(), ..HistoryConfig::default() }];
    let server = TestServer::start(with_metrics(settings(vec![a]))).await;
    let metrics = server.metrics();
    let m = parse_metrics(&http(metrics, "GET", "/metrics").await.1);
    for (name, want) in [
        ("herald_sessions{transport=\"xhr_streaming\"}", 0.0),
        ("herald_sessions{transport=\"sse\"}", 0.0),
        ("herald_recoveries_total{result=\"replayed\"}", 0.0),
        ("herald_recoveries_total{result=\"failed\"}", 0.0),
        ("herald_history_channels", 0.0),
        ("herald_history_bytes", 0.0),
    ] {
        assert_eq!(m[name], want, "{name} before anything happened");
    }

    // A live xhr_streaming session and a live SSE stream.
    let query = "protocol=7&client=js&version=8.6.0";
    let streaming = open_stream(
        server.addr,
        "POST",
        &format!("/pusher/app/key/1/metrics1/xhr_streaming?{query}"),
        "connection_established",
    )
    .await;
    let sse = open_stream(server.addr, "GET", "/apps/key/events?channels=history-a", ": herald").await;
    let live = metrics_until(metrics, Duration::from_secs(5), "one streaming and one SSE session", |m| {
        m["herald_sessions{transport=\"xhr_streaming\"}"] == 1.0 && m["herald_sessions{transport=\"sse\"}"] == 1.0
    })
    .await;
    assert_eq!(live["herald_sessions{transport=\"xhr_polling\"}"], 0.0);
    assert_eq!(live["herald_sessions{transport=\"ws\"}"], 0.0, "HTTP sessions are not counted as ws");

    // History held: two publications on a history channel.
    let (mut ws, _) = server.pusher("key").await;
    send_json(&mut ws, json!({"event":"pusher:subscribe","data":{"channel":"history-a"}})).await;
    let ack = next_json(&mut ws).await;
    assert_eq!(ack["event"], "pusher_internal:subscription_succeeded", "{ack}");
    let epoch = ack["epoch"].as_str().unwrap().to_owned();
    for data in ["one", "two"] {
        assert_eq!(publish_data(server.addr, ("1", "key", "key-secret"), "history-a", data).await, 200);
        assert_eq!(next_json(&mut ws).await["event"], "ev");
    }
    let held = parse_metrics(&http(metrics, "GET", "/metrics").await.1);
    assert_eq!(held["herald_history_channels"], 1.0);
    assert!(held["herald_history_bytes"] > 0.0, "bytes held: {}", held["herald_history_bytes"]);

    // One recovery that replays (one publication after serial 1), one that cannot (unknown epoch).
    let (mut again, _) = server.pusher("key").await;
    let recover = |channel: &str, epoch: &str| json!({"event":"pusher:subscribe","data":{"channel":channel,"recover":{"epoch":epoch,"serial":1}}});
    send_json(&mut again, recover("history-a", &epoch)).await;
    assert_eq!(next_json(&mut again).await["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(next_json(&mut again).await["data"], "two", "the replayed publication");
    let (mut other, _) = server.pusher("key").await;
    send_json(&mut other, recover("history-a", "not-the-epoch")).await;
    assert_eq!(next_json(&mut other).await["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(next_json(&mut other).await["event"], "pusher:recovery_failed");
    let m = parse_metrics(&http(metrics, "GET", "/metrics").await.1);
    assert_eq!(m["herald_recoveries_total{result=\"replayed\"}"], 1.0);
    assert_eq!(m["herald_recoveries_total{result=\"failed\"}"], 1.0);
    assert_eq!(m["herald_recovered_publications_total"], 1.0);

    // The stream ends with its request; a streaming session once its idle expiry (15 s) passed
    // without a receive request.
    drop(sse);
    metrics_until(metrics, Duration::from_secs(5), "the SSE session to end", |m| {
        m["herald_sessions{transport=\"sse\"}"] == 0.0
    })
    .await;
    drop(streaming);
    metrics_until(metrics, Duration::from_secs(30), "the streaming session to expire", |m| {
        m["herald_sessions{transport=\"xhr_streaming\"}"] == 0.0
    })
    .await;
    drop((ws, again, other));
    server.shutdown().await;
}
