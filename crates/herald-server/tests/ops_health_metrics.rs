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
