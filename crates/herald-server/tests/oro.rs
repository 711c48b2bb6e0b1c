//! The Oro profile over real sockets with anonymous (backend) tickets: handshake, origin check,
//! tickets, routes, publishing and the ping topic (wamp-espocrm-oro.md O2–O7, O9, O10, W10).
//! User tickets and the database are in `oro_db.rs`; connection churn in `oro_churn.rs`; the
//! command line in `oro_cli.rs`.

#![allow(clippy::unwrap_used)]

use futures_util::{SinkExt, StreamExt};
use herald_test_support::WAIT;
use herald_test_support::oro::client::{Client, Frame, Upgrade, php_welcome, refused, upgrade_one_read};
use herald_test_support::oro::{OroServer, SECRET, backend_query, php_backend, php_ticket, ticket_query};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn backend(s: &OroServer) -> Client {
    Client::with_query(s.addr, &backend_query()).await
}

#[tokio::test]
async fn o2_wamp_is_echoed_when_offered_and_not_required_on_any_path() {
    let s = OroServer::start("", &[]).await;
    let q = backend_query();
    for path in [format!("/{q}"), format!("/ws{q}"), format!("/wss{q}&x=1")] {
        let c = Client::connect(s.addr, &Upgrade { path: &path, ..Upgrade::default() }).await;
        assert!(c.head.contains("\r\nSec-WebSocket-Protocol: wamp\r\n"), "{}", c.head);
    }
    let path = format!("/ws{q}");
    let c = Client::connect(s.addr, &Upgrade { path: &path, wamp: false, ..Upgrade::default() }).await;
    assert!(!c.head.to_ascii_lowercase().contains("sec-websocket-protocol"), "{}", c.head);
    s.shutdown().await;
}

#[tokio::test]
async fn o3_origin_check_allows_loopback_app_url_and_extras_only() {
    let s = OroServer::start(
        "application_url = \"https://oro.example.test/admin\"\nallowed_origins = [\"crm.example.com\"]",
        &[],
    )
    .await;
    let path = format!("/ws{}", backend_query());
    for ok in ["127.0.0.1", "localhost", "http://localhost:3000", "https://oro.example.test", "https://CRM.example.com"]
    {
        let (_, first) = upgrade_one_read(s.addr, &Upgrade { path: &path, origin: Some(ok), wamp: true }).await;
        assert!(first.starts_with(b"HTTP/1.1 101 "), "{ok}: {}", String::from_utf8_lossy(&first));
    }
    for bad in [Some("https://evil.test"), Some("https://oro.example.test.evil.test"), Some("null"), None] {
        let answer = refused(s.addr, &Upgrade { path: &path, origin: bad, wamp: true }).await;
        assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{bad:?}: {answer}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn o4_the_101_and_welcome_come_in_one_read_and_nothing_follows() {
    let s = OroServer::start("", &[]).await;
    let path = format!("/ws{}", backend_query());
    let (stream, first) = upgrade_one_read(s.addr, &Upgrade { path: &path, ..Upgrade::default() }).await;
    let welcome = php_welcome(&first).expect("the PHP client's parse finds WELCOME in the first read");
    assert_eq!(welcome[0], 0);
    assert_eq!((welcome[2].clone(), welcome[3].clone()), (json!(1), json!("Ratchet/0.4.4")));
    let sid = welcome[1].as_str().unwrap();
    assert!(sid.len() >= 16 && sid.bytes().all(|b| b.is_ascii_alphanumeric()), "W4: {sid}");
    // The read ends exactly with the WELCOME frame: no other byte came in that burst.
    let end = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let frame = &first[end..];
    assert_eq!(frame[0], 0x81);
    assert_eq!(usize::from(frame[1]), frame.len() - 2, "exactly one frame after the head");
    assert!(!String::from_utf8_lossy(&first[..end]).contains(['[', ']']));
    // ...and the next thing the server sends is the answer to the client's first message.
    let mut c = Client::with_query(s.addr, &backend_query()).await;
    c.sync().await;
    drop(stream);

    let (ok, out) = php_backend(s.addr, &path, "oro/data/update", "[]", 1).await;
    assert!(ok, "Oro's PHP client must judge the handshake connected: {out}");
    assert!(out.starts_with("connected "), "{out}");
    s.shutdown().await;
}

#[tokio::test]
async fn o5_anonymous_ticket_signed_with_oro_secret_is_accepted_within_its_window() {
    let s = OroServer::start("", &[]).await;
    for offset in ["--offset=0", "--offset=-290", "--offset=25"] {
        let mut c = Client::with_query(s.addr, &ticket_query(&php_ticket(SECRET, None, &[offset]))).await;
        c.subscribe("oro/data/update").await;
    }
    s.shutdown().await;
}

/// Bad ticket: WELCOME first, then the 403 text frame, then Ratchet's status-0 close and FIN.
async fn assert_refused_after_welcome(s: &OroServer, query: &str) {
    let mut c = Client::with_query(s.addr, query).await;
    let text = c.text().await;
    assert!(text.starts_with("HTTP/1.0 403 Forbidden\r\n"), "{query}: {text:?}");
    assert_eq!(c.rest().await, [0x88, 0x02, 0x00, 0x00], "{query}: status-0 close frame, then FIN");
}

#[tokio::test]
async fn o6_tampered_expired_future_foreign_and_missing_tickets_get_403_and_close() {
    let s = OroServer::start("", &[]).await;
    let good = php_ticket(SECRET, None, &[]);
    let mut raw = String::from_utf8(base64_decode(&good)).unwrap();
    let flipped = if raw.starts_with('A') { "B" } else { "A" };
    raw.replace_range(0..1, flipped);
    let tampered = base64_encode(raw.as_bytes());
    for query in [
        ticket_query(&tampered),
        ticket_query(&php_ticket(SECRET, None, &["--offset=-301"])),
        ticket_query(&php_ticket(SECRET, None, &["--offset=60"])),
        ticket_query(&php_ticket("another-secret", None, &[])),
        ticket_query(&php_ticket(SECRET, Some(("admin", "hash")), &[])),
        "?ticket=bm90IGEgdGlja2V0".to_owned(),
        String::new(),
    ] {
        assert_refused_after_welcome(&s, &query).await;
    }
    s.until("refused connections to be gone", |s| s.connections() == 0).await;
    s.shutdown().await;
}

#[tokio::test]
async fn o5_user_tickets_fail_closed_while_the_database_is_down_and_the_backend_keeps_working() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dsn = format!("postgres://oro@127.0.0.1:{port}/oro");
    let s = OroServer::start("", &[("ORO_DB_DSN", dsn.as_str())]).await;
    for _ in 0..3 {
        assert_refused_after_welcome(&s, &ticket_query(&php_ticket(SECRET, Some(("admin", "hash")), &[]))).await;
    }
    backend(&s).await.subscribe("oro/data/update").await;
    s.shutdown().await;
}

#[tokio::test]
async fn w10_application_close_can_be_1000_or_a_bare_fin() {
    let s = OroServer::start("application_close = \"normal\"", &[]).await;
    let mut c = Client::with_query(s.addr, "?ticket=x").await;
    assert!(c.text().await.starts_with("HTTP/1.0 403"));
    assert_eq!(c.rest().await, [0x88, 0x02, 0x03, 0xe8]);
    s.shutdown().await;
    let s = OroServer::start("application_close = \"fin\"", &[]).await;
    let mut c = Client::with_query(s.addr, "?ticket=x").await;
    assert!(c.text().await.starts_with("HTTP/1.0 403"));
    assert!(c.rest().await.is_empty());
    s.shutdown().await;
}

#[tokio::test]
async fn o7_messages_on_unknown_topics_close_with_1007() {
    let s = OroServer::start("[[oro.routes]]\nchannel = \"acme/news/{id}\"\nrequirements = { id = '\\d+' }", &[]).await;
    for msg in [
        r#"[5,"oro/unknown"]"#,
        r#"[6,"oro/unknown"]"#,
        r#"[7,"oro/unknown",{"a":1},[],[]]"#,
        r#"[2,"c1","oro/unknown"]"#,
        r#"[5,"acme/news/x"]"#,
        r#"[5,"oro/data/update/extra"]"#,
        // W5 as Ratchet: not JSON, not an array, unknown type.
        "not json",
        r#"{"a":1}"#,
        "[99]",
    ] {
        let mut c = backend(&s).await;
        c.send(msg).await;
        assert_eq!(c.frame().await, Some(Frame::Close(vec![0x03, 0xef])), "{msg}");
    }
    let mut c = backend(&s).await;
    c.subscribe("acme/news/12").await;
    assert_eq!(s.subscribers("acme/news/12"), 1, "config routes extend Oro's");
    s.shutdown().await;
}

#[tokio::test]
async fn o9_backend_publish_reaches_every_subscriber_with_exclude_and_eligible() {
    let s = OroServer::start("", &[]).await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut c = backend(&s).await;
        c.subscribe("oro/data/update").await;
        subs.push(c);
    }
    let payload = r#"[{"username":"admin","tagname":"Oro_Bundle_UserBundle_Entity_User"}]"#;
    let path = format!("/ws{}", backend_query());
    let (ok, out) = php_backend(s.addr, &path, "oro/data/update", payload, 1).await;
    assert!(ok, "{out}");
    let expected: Value = json!([8, "oro/data/update", serde_json::from_str::<Value>(payload).unwrap()]);
    for c in &mut subs {
        assert_eq!(c.json().await, expected);
    }
    let mut publisher = backend(&s).await;
    let (a, b, c) = (subs[0].session.clone(), subs[1].session.clone(), subs[2].session.clone());
    publisher.send(&format!(r#"[7,"oro/data/update","no-a",["{a}"],[]]"#)).await;
    publisher.send(&format!(r#"[7,"oro/data/update","only-c",[],["{c}"]]"#)).await;
    publisher.send(r#"[7,"oro/data/update","all"]"#).await;
    assert_eq!(subs[0].json().await[2], "all");
    assert_eq!(subs[1].json().await[2], "no-a");
    assert_eq!(subs[1].json().await[2], "all");
    assert_eq!(subs[2].json().await[2], "no-a");
    assert_eq!(subs[2].json().await[2], "only-c");
    assert_eq!(subs[2].json().await[2], "all");
    let _ = b;
    s.shutdown().await;
}

/// The Oro app declared as a WAMP v2 realm (apps are not realms unless they say so); it
/// follows the `[oro]` section's body in the test's config file.
/// A WAMP v2 session on the main listener, realm = the Oro app.
type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `[[apps]]` for the Oro app with WAMP v2 and client events on, appended to the `[oro]` body:
/// what an operator writes to reach Oro's topics from the main listener.
fn oro_app(oro_toml: &str) -> String {
    format!(
        "{oro_toml}\n[[apps]]\nid = \"oro\"\nkey = \"oro\"\nsecret = \"{SECRET}\"\nwamp = true\nenable_client_messages = true\n"
    )
}

async fn next_value(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next()).await.expect("a message in time");
        match msg.expect("socket open").expect("no error") {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// A WAMP v2 HELLO for realm `oro`; the server's first answer (WELCOME or ABORT).
async fn wamp2_hello(s: &OroServer) -> (Ws, Value) {
    let mut req = format!("ws://{}/ws", s.main).into_client_request().unwrap();
    req.headers_mut().insert("Sec-WebSocket-Protocol", "wamp.2.json".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text(r#"[1,"oro",{"roles":{"subscriber":{},"publisher":{}}}]"#)).await.unwrap();
    let answer = next_value(&mut ws).await;
    (ws, answer)
}

async fn wamp2_subscribe(s: &OroServer, topic: &str) -> (Ws, Value) {
    let (mut ws, welcome) = wamp2_hello(s).await;
    assert_eq!(welcome[0], 2, "WELCOME: {welcome}");
    ws.send(Message::text(json!([32, 1, {}, topic]).to_string())).await.unwrap();
    let answer = next_value(&mut ws).await;
    (ws, answer)
}

/// A Pusher connection to app key `oro` on the main listener: the socket and its first message.
async fn pusher_connect(s: &OroServer) -> (Ws, Value) {
    let url = format!("ws://{}/app/oro?protocol=7&client=js&version=8.4.0", s.main);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let first = tokio::time::timeout(WAIT, ws.next()).await.expect("an answer in time");
    let first = match first.expect("socket open").expect("no error") {
        Message::Text(t) => serde_json::from_str(&t).unwrap(),
        Message::Close(f) => json!({"close": f.map(|f| u16::from(f.code))}),
        other => panic!("unexpected {other:?}"),
    };
    (ws, first)
}

#[tokio::test]
async fn the_oro_app_is_closed_to_pusher_and_wamp_v2_unless_shared() {
    let s = OroServer::start(&oro_app(""), &[]).await;
    let (mut ws, first) = pusher_connect(&s).await;
    assert_eq!(
        (first["event"].clone(), first["data"]["code"].clone()),
        (json!("pusher:error"), json!(4001)),
        "{first}"
    );
    let close = tokio::time::timeout(WAIT, ws.next()).await.expect("the close in time");
    match close {
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 4001, "app not found, like an unknown key"),
        other => panic!("expected close 4001, got {other:?}"),
    }
    let (_, answer) = wamp2_hello(&s).await;
    assert_eq!((answer[0].clone(), answer[2].clone()), (json!(3), json!("wamp.error.no_such_realm")), "{answer}");
    s.shutdown().await;

    // Shared: found, and then Oro's rules judge every request.
    let s = OroServer::start(&oro_app("share_broadcasts = true"), &[]).await;
    let (_, first) = pusher_connect(&s).await;
    assert_eq!(first["event"], "pusher:connection_established", "{first}");
    let (_, answer) = wamp2_hello(&s).await;
    assert_eq!(answer[0], 2, "WELCOME: {answer}");
    s.shutdown().await;
}

#[tokio::test]
async fn o9_wamp_v2_sessions_read_oro_broadcasts_only_when_shared() {
    let s = OroServer::start(&oro_app("share_broadcasts = true"), &[]).await;
    let (_, answer) = wamp2_subscribe(&s, "oro/email_event/7/1").await;
    assert_eq!(answer[0], 8, "secured topics stay closed to ticket-less sessions: {answer}");
    let (mut ws, answer) = wamp2_subscribe(&s, "oro/maintenance").await;
    assert_eq!(answer[0], 33, "SUBSCRIBED: {answer}");
    let mut publisher = backend(&s).await;
    publisher.send(r#"[7,"oro/maintenance",{"isOn":true,"userId":null},[],[]]"#).await;
    let event = next_value(&mut ws).await;
    assert_eq!(event[0], 36);
    assert_eq!(event[4], json!([{"isOn": true, "userId": null}]));
    s.shutdown().await;
}

#[tokio::test]
async fn nothing_but_an_oro_ticket_publishes_into_oro_topics_even_when_shared() {
    let s = OroServer::start(&oro_app("share_broadcasts = true"), &[]).await;
    let mut browser = backend(&s).await;
    browser.subscribe("oro/data/update").await;

    // WAMP v2: refused, acknowledged as not authorized.
    let (mut v2, welcome) = wamp2_hello(&s).await;
    assert_eq!(welcome[0], 2, "{welcome}");
    v2.send(Message::text(json!([16, 7, {"acknowledge": true}, "oro/data/update", ["forged"]]).to_string()))
        .await
        .unwrap();
    let refused = next_value(&mut v2).await;
    let reason = refused.as_array().map(|a| a.iter().take(5).cloned().collect::<Vec<_>>());
    assert_eq!(
        reason,
        Some(vec![json!(8), json!(16), json!(7), json!({}), json!("wamp.error.not_authorized")]),
        "{refused}"
    );

    // Pusher: an Oro topic is no Pusher channel name, and client events need a subscription.
    let (mut pusher, first) = pusher_connect(&s).await;
    assert_eq!(first["event"], "pusher:connection_established", "{first}");
    pusher
        .send(Message::text(json!({"event":"pusher:subscribe","data":{"channel":"oro/data/update"}}).to_string()))
        .await
        .unwrap();
    let refused = next_value(&mut pusher).await;
    assert_eq!(refused["event"], "pusher:subscription_error", "{refused}");
    pusher
        .send(Message::text(json!({"event":"client-x","channel":"oro/data/update","data":{"forged":true}}).to_string()))
        .await
        .unwrap();
    loop {
        let answer = next_value(&mut pusher).await;
        if answer["event"] == "pusher:error"
            && answer["data"]["message"].as_str().is_some_and(|m| m.contains("Client event"))
        {
            break;
        }
    }

    // Neither reached Oro's subscriber: the backend's later publish is the first event it gets.
    let mut publisher = backend(&s).await;
    publisher.send(r#"[7,"oro/data/update","from the backend"]"#).await;
    assert_eq!(browser.json().await, json!([8, "oro/data/update", "from the backend"]));
    s.shutdown().await;
}

#[tokio::test]
async fn o10_ping_topic_gets_keepalive_events_and_ignores_publishes() {
    let s = OroServer::start("ping_interval = 0.2", &[]).await;
    let mut c = backend(&s).await;
    c.subscribe("oro/ping").await;
    c.send(r#"[7,"oro/ping","from a client"]"#).await;
    assert_eq!(c.json().await, json!([8, "oro/ping", "Connection keep alive"]));
    assert_eq!(c.json().await, json!([8, "oro/ping", "Connection keep alive"]));
    s.shutdown().await;
}

#[tokio::test]
async fn w3_pings_are_answered_and_abrupt_closes_free_everything() {
    let s = OroServer::start("", &[]).await;
    let mut c = backend(&s).await;
    c.send_frame(herald_protocol::ws::OpCode::Ping, b"hi").await;
    assert_eq!(c.frame().await, Some(Frame::Pong(b"hi".to_vec())));
    c.subscribe("oro/data/update").await;
    assert_eq!(s.subscribers("oro/data/update"), 1);
    drop(c);
    s.until("the subscription to go", |s| s.subscribers("oro/data/update") == 0 && s.connections() == 0).await;
    s.shutdown().await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
