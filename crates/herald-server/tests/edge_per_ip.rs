//! Per-address connection limits: `429` before the upgrade over `max_connections_per_ip` or
//! `max_new_connections_per_ip_per_second`, places given back when sockets close, the address
//! taken from `X-Forwarded-For` only behind a trusted proxy, and refusals counted.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_server::config::{PerIpLimits, Settings};
use herald_test_support::http::{http, parse_metrics};
use herald_test_support::ws::{pusher_path, upgrade};
use herald_test_support::{TestServer, WAIT, app, settings, with_metrics};

fn limited(max_connections: u32, max_new_per_second: u32) -> Settings {
    let mut s = with_metrics(settings(vec![app("1", "key")]));
    s.ops.per_ip = PerIpLimits { max_connections, max_new_per_second };
    s
}

async fn refused_total(server: &TestServer, reason: &str) -> f64 {
    let text = http(server.metrics(), "GET", "/metrics").await.1;
    parse_metrics(&text)[&format!("herald_connections_refused_total{{reason=\"{reason}\"}}")]
}

#[tokio::test]
async fn concurrent_connections_over_the_limit_get_429_until_one_closes() {
    let server = TestServer::start(limited(2, 0)).await;
    let path = pusher_path("key");
    let a = upgrade(server.addr, &path, &[]).await;
    let b = upgrade(server.addr, &path, &[]).await;
    assert_eq!((a.status, b.status), (101, 101));
    let third = upgrade(server.addr, &path, &[]).await;
    assert_eq!(third.status, 429, "{}", third.head);
    assert_eq!(third.body, "Too many connections from your address");
    assert!(third.header("sec-websocket-accept").is_none());
    // Plain HTTP is not counted.
    assert_eq!(http(server.addr, "GET", "/up").await.0, 200);

    drop(a);
    // The place comes back when the server has seen the socket close; poll for it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let again = loop {
        let answer = upgrade(server.addr, &path, &[]).await;
        if answer.status == 101 {
            break answer;
        }
        assert_eq!(answer.status, 429);
        assert!(tokio::time::Instant::now() < deadline, "the closed socket's place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(refused_total(&server, "per_ip").await >= 1.0);
    drop((b, again));
    server.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_new_connections_gets_429_with_retry_after() {
    let server = TestServer::start(limited(0, 3)).await;
    let path = pusher_path("key");
    let mut opened = Vec::new();
    let refusal = loop {
        let answer = upgrade(server.addr, &path, &[]).await;
        if answer.status != 101 {
            break answer;
        }
        opened.push(answer);
        assert!(opened.len() < 60, "no refusal in a burst of 60 upgrades at 3 per second");
    };
    assert!(opened.len() >= 3, "the first three of a window are admitted");
    assert_eq!(refusal.status, 429, "{}", refusal.head);
    assert_eq!(refusal.header("retry-after").as_deref(), Some("1"));
    assert_eq!(refused_total(&server, "per_ip_rate").await, 1.0);
    server.shutdown().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_count() {
    let mut s = limited(1, 0);
    s.ops.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    let server = TestServer::start(s).await;
    let path = pusher_path("key");
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    let one = upgrade(server.addr, &path, &from("192.0.2.1")).await;
    assert_eq!(one.status, 101);
    assert_eq!(upgrade(server.addr, &path, &from("192.0.2.1")).await.status, 429);
    let two = upgrade(server.addr, &path, &from("192.0.2.2")).await;
    assert_eq!(two.status, 101, "another client behind the same proxy");
    // A forged left-hand entry does not move a client to another count.
    assert_eq!(upgrade(server.addr, &path, &from("198.51.100.1, 192.0.2.1")).await.status, 429);
    drop((one, two));
    server.shutdown().await;
}

#[tokio::test]
async fn without_limits_nothing_is_refused() {
    let server = TestServer::start(with_metrics(settings(vec![app("1", "key")]))).await;
    let mut open = Vec::new();
    for _ in 0..20 {
        let answer = upgrade(server.addr, &pusher_path("key"), &[]).await;
        assert_eq!(answer.status, 101);
        open.push(answer);
    }
    assert_eq!(refused_total(&server, "per_ip").await, 0.0);
    drop(open);
    server.shutdown().await;
}
