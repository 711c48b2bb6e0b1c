//! Webhooks at the edges of their life, against a receiver in the test: the departures of the
//! sessions a shutdown closes are sent during the drain (not lost in the 3 s debounce), and a
//! 4xx answer is not retried.
//! The events themselves, batching, filters, retries and floods: tests/js/webhooks.test.mjs.

#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use herald_core::app::WebhookConfig;
use herald_test_support::http::{http, parse_metrics};
use herald_test_support::{TestServer, WAIT, app, settings, subscribe, with_metrics};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// One request the receiver got.
#[derive(Debug)]
struct Hook {
    key: String,
    signature: String,
    content_type: String,
    body: String,
}

/// An HTTP receiver on 127.0.0.1:0 answering every request `status`.
async fn receiver(status: StatusCode) -> (SocketAddr, mpsc::UnboundedReceiver<Hook>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let header =
                        |n: &str| req.headers().get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                    let (key, signature, content_type) =
                        (header("x-pusher-key"), header("x-pusher-signature"), header("content-type"));
                    let body = String::from_utf8(req.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
                    let _ = tx.send(Hook { key, signature, content_type, body });
                    let mut resp = Response::new(Full::new(Bytes::from_static(b"done")));
                    *resp.status_mut() = status;
                    Ok::<_, Infallible>(resp)
                }
            });
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service));
        }
    });
    (addr, rx)
}

fn hooked(url: String, types: &[&str]) -> herald_core::AppConfig {
    let hook =
        WebhookConfig { url, event_types: types.iter().map(|t| (*t).to_owned()).collect(), ..Default::default() };
    herald_core::AppConfig { webhooks: vec![hook], ..app("1", "key") }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departures_of_a_shutdown_are_sent_during_the_drain() {
    let (addr, mut hooks) = receiver(StatusCode::OK).await;
    let server = TestServer::start(settings(vec![hooked(format!("http://{addr}/hooks"), &["channel_vacated"])])).await;
    let (mut ws, _) = server.pusher("key").await;
    subscribe(&mut ws, "news").await;
    let started = Instant::now();
    server.shutdown().await;
    let hook = tokio::time::timeout(WAIT, hooks.recv()).await.unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "sent at the drain, not after the debounce");
    assert_eq!(hook.key, "key");
    assert_eq!(hook.content_type, "application/json");
    assert_eq!(hook.signature, herald_protocol::pusher::socket_auth::sign("key-secret", &hook.body));
    let body: Value = serde_json::from_str(&hook.body).unwrap();
    assert_eq!(body["events"], serde_json::json!([{"name": "channel_vacated", "channel": "news"}]));
    assert!(body["time_ms"].as_u64().unwrap() > 1_700_000_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_not_retried() {
    let (addr, mut hooks) = receiver(StatusCode::GONE).await;
    let s = with_metrics(settings(vec![hooked(format!("http://{addr}/"), &["channel_occupied"])]));
    let server = TestServer::start(s).await;
    let (mut ws, _) = server.pusher("key").await;
    subscribe(&mut ws, "news").await;
    tokio::time::timeout(WAIT, hooks.recv()).await.unwrap().unwrap();
    // A retry would come after 1 s; the counters say the refusal was final before then.
    let deadline = Instant::now() + WAIT;
    let series = loop {
        let (_, text) = http(server.metrics(), "GET", "/metrics").await;
        let m = parse_metrics(&text);
        if m.get("herald_webhooks_dropped_total{app=\"1\",reason=\"rejected\"}") == Some(&1.0) {
            break m;
        }
        assert!(Instant::now() < deadline, "no rejected drop counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(series["herald_webhooks_failed_total{app=\"1\"}"], 1.0);
    assert_eq!(series["herald_webhooks_sent_total{app=\"1\"}"], 0.0);
    assert_eq!(series["herald_webhook_queue_depth{app=\"1\"}"], 0.0);
    assert!(tokio::time::timeout(Duration::from_millis(1500), hooks.recv()).await.is_err(), "no second try");
}
