//! Scale-out through a Redis that goes away: every publication a node accepted (HTTP 200) reaches
//! every subscriber on every node exactly once and in its publisher's order, across a Redis
//! restart and across the loss of one node's reader connection; a node away longer than the
//! replay window says so and carries on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use herald_test_support::http::publish;
use herald_test_support::redis::{RedisCli, RedisServer, Reply, await_health, node_settings, third_node_envelope};
use herald_test_support::{TestServer, WAIT, Ws, next_json, subscribe};
use serde_json::{Value, json};
use tokio::sync::oneshot;

const APP: (&str, &str, &str) = ("1", "key", "key-secret");
/// The app's stream: `{prefix}:{app_id}` with the prefix of `node_settings`.
const STREAM: &str = "test:1";

async fn node(redis: &RedisServer) -> TestServer {
    let app = herald_test_support::app(APP.0, APP.1);
    TestServer::start(node_settings(herald_test_support::settings(vec![app]), redis)).await
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

/// Publishes `data` on "news" through `addr`'s HTTP API until it is accepted (200); 503s while
/// the link is down are refusals, not publications.
async fn publish_until_accepted(addr: SocketAddr, data: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = publish(addr, APP, json!({"name": "ev", "channel": "news", "data": data})).await;
        match status {
            200 => return,
            503 => assert!(tokio::time::Instant::now() < deadline, "{data}: refused until the deadline: {body}"),
            other => panic!("{data}: {other} {body}"),
        }
        // Bounded retry pace while the link is down (the 503 says to retry later).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads `ws` until every publisher's marker has arrived, and checks that what came before is
/// exactly `expected` for each publisher (data "{publisher}:{n}"), in order, nothing twice.
async fn assert_exactly_once_in_order(ws: &mut Ws, expected: &HashMap<String, Vec<String>>, markers: &[String]) {
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    let mut markers_left: Vec<&String> = markers.iter().collect();
    while !markers_left.is_empty() {
        let data = next_event(ws).await["data"].as_str().unwrap().to_owned();
        if let Some(i) = markers_left.iter().position(|m| **m == data) {
            markers_left.remove(i);
            continue;
        }
        let (publisher, _) = data.split_once(':').unwrap();
        got.entry(publisher.to_owned()).or_default().push(data);
    }
    for (publisher, want) in expected {
        let have = got.remove(publisher).unwrap_or_default();
        let missing: Vec<&String> = want.iter().filter(|w| !have.contains(w)).collect();
        assert_eq!(
            have.len(),
            want.len(),
            "{publisher}: {} delivered, {} accepted; missing {missing:?}",
            have.len(),
            want.len()
        );
        assert_eq!(&have, want, "{publisher}: not in publish order, or one twice and another missing");
    }
    assert!(got.is_empty(), "delivered without being accepted: {got:?}");
}

#[tokio::test]
async fn every_accepted_publication_reaches_every_node_once_across_a_redis_restart() {
    let mut redis = RedisServer::start();
    let nodes = [node(&redis).await, node(&redis).await, node(&redis).await];
    let mut subscribers = Vec::new();
    for n in &nodes {
        let (mut ws, _) = n.pusher(APP.1).await;
        subscribe(&mut ws, "news").await;
        subscribers.push(ws);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    const TOTAL: usize = 300;
    const KILL_AT: usize = 100;
    let (mid_tx, mid_rx) = oneshot::channel();
    // Each node's HTTP API in turn; a publication counts once it is answered 200.
    let publisher = tokio::spawn(async move {
        let mut mid = Some(mid_tx);
        let mut accepted: HashMap<String, Vec<String>> = HashMap::new();
        for i in 0..TOTAL {
            if i == KILL_AT {
                let _ = mid.take().unwrap().send(());
            }
            let publisher = format!("node{}", i % addrs.len());
            let list = accepted.entry(publisher.clone()).or_default();
            let data = format!("{publisher}:{}", list.len());
            publish_until_accepted(addrs[i % addrs.len()], &data).await;
            list.push(data);
        }
        accepted
    });
    mid_rx.await.unwrap();
    redis.kill();
    for n in &nodes {
        await_health(n.metrics(), 503).await;
    }
    redis.restart();
    let accepted = tokio::time::timeout(WAIT * 2, publisher).await.expect("publisher loop ends").unwrap();
    assert_eq!(accepted.values().map(Vec::len).sum::<usize>(), TOTAL);

    let markers: Vec<String> = (0..nodes.len()).map(|i| format!("marker-{i}")).collect();
    for (n, marker) in nodes.iter().zip(&markers) {
        publish_until_accepted(n.addr, marker).await;
    }
    for ws in &mut subscribers {
        assert_exactly_once_in_order(ws, &accepted, &markers).await;
    }
}

/// Starts node A, then node B, and returns them with the client name of B's reader connection
/// (`herald-reader:{node id}`).
async fn a_then_b(redis: &RedisServer) -> (TestServer, TestServer, String) {
    let mut cli = RedisCli::connect(redis).await;
    let a = node(redis).await;
    let before = cli.client_names("herald-reader:").await;
    assert_eq!(before.len(), 1, "{before:?}");
    let b = node(redis).await;
    let readers = cli.client_names("herald-reader:").await;
    let b_reader = readers.into_iter().find(|n| !before.contains(n)).expect("B's reader is connected");
    (a, b, b_reader)
}

/// The id of the connection named `name`, once it is connected (the node reconnects on its own).
async fn connected(cli: &mut RedisCli, name: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(id) = cli.client_ids(name).await.pop() {
            return id;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} did not reconnect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs `commands` as one transaction on `cli` and returns EXEC's answers.
async fn transaction(cli: &mut RedisCli, commands: &[Vec<&[u8]>]) -> Vec<Reply> {
    cli.send(&[b"MULTI"]).await;
    for c in commands {
        cli.send(c).await;
    }
    cli.send(&[b"EXEC"]).await;
    assert_eq!(cli.read().await, Reply::Status("OK".into()));
    for _ in commands {
        assert_eq!(cli.read().await, Reply::Status("QUEUED".into()));
    }
    match cli.read().await {
        Reply::Array(Some(answers)) => answers,
        other => panic!("EXEC answered {other:?}"),
    }
}

#[tokio::test]
async fn a_node_whose_reader_connection_is_cut_delivers_what_was_published_meanwhile() {
    let redis = RedisServer::start();
    let (a, b, b_reader) = a_then_b(&redis).await;
    let (mut on_b, _) = b.pusher(APP.1).await;
    subscribe(&mut on_b, "news").await;

    // Node A keeps publishing through its HTTP API...
    let a_addr = a.addr;
    let publisher = tokio::spawn(async move {
        let mut accepted = Vec::new();
        for n in 0..200 {
            let data = format!("a:{n}");
            publish_until_accepted(a_addr, &data).await;
            accepted.push(data);
        }
        accepted
    });
    // ...while B's reader connection is cut again and again; each time, in the same step, a
    // third node appends an entry, so B can only get it by resuming after its last entry.
    let mut cli = RedisCli::connect(&redis).await;
    let mut third = Vec::new();
    for seq in 1..=10 {
        let id = connected(&mut cli, &b_reader).await;
        let data = format!("third:{}", seq - 1);
        let envelope = third_node_envelope(seq, "news", &data);
        let answers = transaction(
            &mut cli,
            &[vec![b"XADD", STREAM.as_bytes(), b"*", b"e", &envelope], vec![b"CLIENT", b"KILL", b"ID", id.as_bytes()]],
        )
        .await;
        assert_eq!(answers[1], Reply::Int(1), "B's reader was connected: {answers:?}");
        third.push(data);
    }
    let accepted = tokio::time::timeout(WAIT * 2, publisher).await.expect("publisher loop ends").unwrap();

    let markers = vec!["marker".to_owned()];
    publish_until_accepted(a.addr, &markers[0]).await;
    let expected = HashMap::from([("a".to_owned(), accepted), ("third".to_owned(), third)]);
    assert_exactly_once_in_order(&mut on_b, &expected, &markers).await;
}

/// Everything herald logs in this test binary (the gap warning is checked by its text).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    Arc::clone(LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let writer = move || LogWriter(Arc::clone(&sink));
        let _ = tracing_subscriber::fmt().with_writer(writer).with_ansi(false).try_init();
        logs
    }))
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_node_away_longer_than_the_window_reports_the_gap_and_carries_on() {
    let logs = captured_logs();
    let redis = RedisServer::start();
    let (a, b, b_reader) = a_then_b(&redis).await;
    let (mut on_b, _) = b.pusher(APP.1).await;
    subscribe(&mut on_b, "news").await;
    publish_until_accepted(a.addr, "before").await;
    assert_eq!(next_event(&mut on_b).await["data"], "before");

    // While B's reader is away, an entry is appended and trimmed before it could read it: what
    // the window does to a node away too long, in one step.
    let mut cli = RedisCli::connect(&redis).await;
    let id = connected(&mut cli, &b_reader).await;
    let envelope = third_node_envelope(1, "news", "trimmed-unread");
    let answers = transaction(
        &mut cli,
        &[
            vec![b"XADD", STREAM.as_bytes(), b"*", b"e", &envelope],
            vec![b"XTRIM", STREAM.as_bytes(), b"MAXLEN", b"0"],
            vec![b"CLIENT", b"KILL", b"ID", id.as_bytes()],
        ],
    )
    .await;
    assert_eq!(answers[2], Reply::Int(1), "{answers:?}");

    // B is back, says what it missed, and delivers what comes next.
    connected(&mut cli, &b_reader).await;
    publish_until_accepted(a.addr, "after").await;
    assert_eq!(next_event(&mut on_b).await["data"], "after");
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let gaps: Vec<&str> = text.lines().filter(|l| l.contains("longer than the replay window")).collect();
    assert_eq!(gaps.len(), 1, "{text}");
    assert!(gaps[0].contains("WARN") && gaps[0].contains("missed=1") && gaps[0].contains(STREAM), "{}", gaps[0]);
    // And the operator sees it without reading logs.
    let (_, metrics) = herald_test_support::http::http(b.metrics(), "GET", "/metrics").await;
    assert!(metrics.contains("herald_scale_out_total{kind=\"missed\"} 1\n"), "{metrics}");
    assert!(metrics.contains("herald_scale_out_total{kind=\"gaps\"} 1\n"), "{metrics}");
    let (_, health) = herald_test_support::redis::health(b.metrics()).await;
    assert_eq!(health["backend_counters"]["missed"], 1, "{health}");
}
