//! Origin allow-lists at the upgrade: a page from a foreign origin gets `403` and no socket,
//! on Pusher `/app/{key}`, on a `wamp1` listener and for WAMP v2 on the Pusher listener;
//! refusals are counted in `herald_origin_refused_total`.

#![allow(clippy::unwrap_used)]

use herald_core::AppConfig;
use herald_server::config::{ListenerSettings, Profile};
use herald_test_support::http::{http, parse_metrics};
use herald_test_support::ws::{pusher_path, upgrade};
use herald_test_support::{TestServer, app, settings, with_metrics};

const GOOD: &str = "https://app.example.com";
const FOREIGN: &str = "https://evil.example.net";

fn listed(id: &str, key: &str) -> AppConfig {
    AppConfig { allowed_origins: vec![GOOD.into(), "*.example.org".into()], ..app(id, key) }
}

async fn metrics(server: &TestServer) -> std::collections::HashMap<String, f64> {
    let (status, text) = http(server.metrics(), "GET", "/metrics").await;
    assert_eq!(status, 200);
    parse_metrics(&text)
}

#[tokio::test]
async fn pusher_upgrades_from_a_foreign_origin_get_403_before_the_upgrade() {
    let server = TestServer::start(with_metrics(settings(vec![listed("1", "key"), app("2", "open")]))).await;
    let path = pusher_path("key");

    let refused = upgrade(server.addr, &path, &[("Origin", FOREIGN)]).await;
    assert_eq!(refused.status, 403, "{}", refused.head);
    assert!(refused.header("sec-websocket-accept").is_none(), "no upgrade at all");
    assert_eq!(refused.body, "Origin not allowed");
    for bad in ["null", "https://app.example.com.evil.net", "http://app.example.com", "https://app.example.com/x"] {
        assert_eq!(upgrade(server.addr, &path, &[("Origin", bad)]).await.status, 403, "{bad}");
    }

    for ok in [GOOD, "https://app.example.com:443", "http://crm.example.org:8080"] {
        assert_eq!(upgrade(server.addr, &path, &[("Origin", ok)]).await.status, 101, "{ok}");
    }
    // No Origin: not a browser page, so nothing a foreign page could abuse.
    assert_eq!(upgrade(server.addr, &path, &[]).await.status, 101);
    // An app without a list admits every origin, as Pusher does.
    assert_eq!(upgrade(server.addr, &pusher_path("open"), &[("Origin", FOREIGN)]).await.status, 101);
    // Unknown keys are still closed with 4001 after the upgrade, as pusher-js expects.
    assert_eq!(upgrade(server.addr, &pusher_path("nope"), &[("Origin", FOREIGN)]).await.status, 101);

    let m = metrics(&server).await;
    assert_eq!(m["herald_origin_refused_total{app=\"1\"}"], 5.0);
    assert_eq!(m["herald_origin_refused_total{app=\"2\"}"], 0.0);
    server.shutdown().await;
}

#[tokio::test]
async fn wamp1_listener_upgrades_follow_their_apps_list() {
    let mut s = with_metrics(settings(vec![listed("1", "key")]));
    s.listeners.push(ListenerSettings {
        host: "127.0.0.1".into(),
        port: 0,
        profile: Profile::Wamp1 { app: "1".into(), strict_subprotocol: false },
        tls: None,
    });
    let server = TestServer::start(s).await;
    let wamp1 = server.listening[1].0;
    let metrics_addr = server.metrics();

    let proto = ("Sec-WebSocket-Protocol", "wamp");
    let refused = upgrade(wamp1, "/", &[proto, ("Origin", FOREIGN)]).await;
    assert_eq!(refused.status, 403, "{}", refused.head);
    assert_eq!(refused.body, "Origin not allowed");
    assert_eq!(upgrade(wamp1, "/", &[proto, ("Origin", GOOD)]).await.status, 101);
    assert_eq!(upgrade(wamp1, "/", &[proto]).await.status, 101);

    let text = http(metrics_addr, "GET", "/metrics").await.1;
    assert_eq!(parse_metrics(&text)["herald_origin_refused_total{app=\"1\"}"], 1.0);
    server.shutdown().await;
}

#[tokio::test]
async fn wamp2_upgrades_are_refused_when_no_realm_admits_the_origin() {
    let realm = |id: &str, key: &str, origin: &str| AppConfig {
        wamp: true,
        allowed_origins: vec![origin.into()],
        ..app(id, key)
    };
    let apps = vec![
        realm("1", "k1", GOOD),
        realm("2", "k2", "https://other.example.com"),
        // Not a WAMP realm: its empty list must not open WAMP v2 to every origin.
        app("3", "k3"),
    ];
    let server = TestServer::start(with_metrics(settings(apps))).await;
    let proto = ("Sec-WebSocket-Protocol", "wamp.2.json");

    let refused = upgrade(server.addr, "/", &[proto, ("Origin", FOREIGN)]).await;
    assert_eq!(refused.status, 403, "{}", refused.head);
    assert_eq!(refused.body, "Origin not allowed");
    assert_eq!(upgrade(server.addr, "/", &[proto, ("Origin", GOOD)]).await.status, 101);
    assert_eq!(upgrade(server.addr, "/", &[proto, ("Origin", "https://other.example.com")]).await.status, 101);
    assert_eq!(upgrade(server.addr, "/", &[proto]).await.status, 101);

    let m = metrics(&server).await;
    assert_eq!(m["herald_origin_refused_total{app=\"\"}"], 1.0, "counted before any realm is known");
    server.shutdown().await;

    // With no WAMP realm at all, a browser page is refused before the upgrade; a client without
    // an Origin is upgraded and learns at HELLO that the realm does not exist.
    let server = TestServer::start(settings(vec![app("1", "key")])).await;
    let refused = upgrade(server.addr, "/", &[proto, ("Origin", GOOD)]).await;
    assert_eq!(refused.status, 403, "{}", refused.head);
    assert_eq!(refused.body, "WAMP v2 is not enabled on this server");
    assert_eq!(upgrade(server.addr, "/", &[proto]).await.status, 101);
    server.shutdown().await;
}
