//! Graceful drain: every client gets its protocol's goodbye, and every publication the HTTP
//! API accepted reaches every subscriber before that goodbye.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_server::config::{ListenerSettings, Profile};
use herald_test_support::http::publish_data;
use herald_test_support::{TestServer, WAIT, Ws, app, next_json, settings, subscribe};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const PUSHER_CLIENTS: usize = 40;
const WAMP_CLIENTS: usize = 5;

async fn ws_with_protocol(url: String, protocol: &str) -> Ws {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
    assert_eq!(resp.headers()["sec-websocket-protocol"], protocol);
    ws
}

/// Reads until the close frame: (text messages seen, close code).
async fn until_close(ws: &mut Ws) -> (Vec<Value>, Option<u16>) {
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("close in time") {
            Some(Ok(Message::Text(t))) => seen.push(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(f))) => return (seen, f.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("socket error before the close frame: {e}"),
            None => return (seen, None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_gives_every_client_its_goodbye_and_loses_no_accepted_publication() {
    // App 1 is a WAMP v2 realm too (off by default).
    let mut s = settings(vec![herald_core::AppConfig { wamp: true, ..app("1", "key") }]);
    s.listeners.push(ListenerSettings {
        host: "127.0.0.1".into(),
        port: 0,
        profile: Profile::Wamp1 { app: "1".into(), strict_subprotocol: false },
        tls: None,
    });
    s.shutdown_grace = Duration::from_secs(10);
    let server = TestServer::start(s).await;
    let (main, wamp1) = (server.listening[0].0, server.listening[1].0);

    let mut pushers = Vec::new();
    for _ in 0..PUSHER_CLIENTS {
        let mut ws = pusher_at(main).await;
        subscribe(&mut ws, "news").await;
        pushers.push(ws);
    }
    let mut v1 = Vec::new();
    for _ in 0..WAMP_CLIENTS {
        let mut ws = ws_with_protocol(format!("ws://{wamp1}/"), "wamp").await;
        assert_eq!(next_json(&mut ws).await[0], 0, "WELCOME");
        v1.push(ws);
    }
    let mut v2 = Vec::new();
    for _ in 0..WAMP_CLIENTS {
        let mut ws = ws_with_protocol(format!("ws://{main}/"), "wamp.2.json").await;
        let hello = json!([1, "1", {"roles": {"subscriber": {}}}]).to_string();
        ws.send(Message::text(hello)).await.unwrap();
        assert_eq!(next_json(&mut ws).await[0], 2, "WELCOME");
        v2.push(ws);
    }

    // Publish until the server stops answering; start the drain after the 20th acceptance, so
    // publications are in flight while it begins.
    let publisher = tokio::spawn({
        let stop = server.stop_handle();
        async move {
            let mut accepted = Vec::new();
            for i in 0..10_000 {
                let Ok(Ok(code)) = tokio::time::timeout(
                    WAIT,
                    tokio::spawn(async move {
                        publish_data(main, ("1", "key", "key-secret"), "news", &format!("m{i}")).await
                    }),
                )
                .await
                else {
                    break;
                };
                if code == 200 {
                    accepted.push(format!("m{i}"));
                }
                if accepted.len() == 20 {
                    stop.stop();
                }
            }
            accepted
        }
    });

    let mut results = Vec::new();
    for mut ws in pushers {
        results.push(tokio::spawn(async move { until_close(&mut ws).await }));
    }
    let accepted = publisher.await.unwrap();
    assert!(accepted.len() >= 20, "the drain started after 20 acceptances");
    for r in results {
        let (seen, code) = r.await.unwrap();
        assert_eq!(code, Some(4200), "Pusher clients are told to reconnect now");
        let got: Vec<String> =
            seen.iter().filter(|m| m["event"] == "ev").map(|m| m["data"].as_str().unwrap().to_owned()).collect();
        assert_eq!(got, accepted, "every accepted publication, in order, before the close");
    }
    for mut ws in v1 {
        let (_, code) = until_close(&mut ws).await;
        assert_eq!(code, Some(1001), "WAMP v1 clients get 1001 going away");
    }
    for mut ws in v2 {
        let (seen, code) = until_close(&mut ws).await;
        assert_eq!(seen.last().unwrap(), &json!([6, {}, "wamp.close.system_shutdown"]));
        assert_eq!(code, Some(u16::from(CloseCode::Away)));
    }
    server.shutdown().await;
}

/// A Pusher client of app `key` at `addr`, past `connection_established`.
async fn pusher_at(addr: std::net::SocketAddr) -> Ws {
    let url = format!("ws://{addr}/app/key?protocol=7&client=js&version=8.4.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
    assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established");
    ws
}
