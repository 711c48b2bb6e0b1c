//! Adapters fed messages without a socket, and the size of what an idle session holds.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Waker};

use bytes::Bytes;
use herald_core::backend::LocalBackend;
use herald_core::{AppConfig, AppRegistry, Hub, OutboxLimits};
use herald_protocol::wamp::Serializer;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::close::CloseReason;
use super::driver::{Adapter, Data, Flow, Io, Session};
use super::pusher::Pusher;
use super::wamp1::{Anonymous, V1, Wamp1};
use super::wamp2::Wamp2;
use crate::ws::socket::Socket;

fn hub() -> Arc<Hub> {
    let cfg = AppConfig {
        id: "app".into(),
        key: "key".into(),
        secret: "secret-0123456789abcdef".into(),
        wamp: true,
        enable_client_messages: true,
        ..AppConfig::default()
    };
    let reg = AppRegistry::new(vec![cfg]).expect("one app");
    Arc::new(Hub::new(reg, Arc::new(LocalBackend), OutboxLimits::default()))
}

/// What a test sees of an adapter: its replies and the frames in its outbox, as text.
struct Harness<D> {
    replies: VecDeque<Bytes>,
    work: Option<Box<JoinSet<D>>>,
}

impl<D: Send + 'static> Harness<D> {
    fn new() -> Self {
        Self { replies: VecDeque::new(), work: None }
    }

    fn io(&mut self) -> Io<'_, D> {
        Io::new(Instant::now(), &mut self.replies, &mut self.work)
    }

    /// The payloads of the replies queued so far (small unmasked frames: 2-byte header).
    fn replies(&mut self) -> Vec<String> {
        self.replies.drain(..).map(|f| payload(&f)).collect()
    }
}

fn payload(frame: &Bytes) -> String {
    let start = match frame[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    String::from_utf8_lossy(&frame[start..]).into_owned()
}

fn outbox<A: Adapter>(adapter: &A) -> Vec<String> {
    let mut q = VecDeque::new();
    let mut cx = Context::from_waker(Waker::noop());
    let _ = adapter.outbox().poll_drain(&mut cx, &mut q);
    q.iter().map(payload).collect()
}

fn close_code(frame: &Option<Bytes>) -> Option<u16> {
    frame.as_ref().map(|f| u16::from_be_bytes([f[2], f[3]]))
}

fn text(s: &str) -> Data {
    Data::Text(Bytes::copy_from_slice(s.as_bytes()))
}

fn pusher(hub: &Arc<Hub>) -> Pusher {
    let app = hub.app_by_id("app").expect("app");
    let slot = app.try_connect().expect("a place");
    Pusher::new(Arc::clone(hub), slot)
}

fn wamp1(hub: &Arc<Hub>) -> Wamp1<Anonymous> {
    let app = hub.app_by_id("app").expect("app");
    let slot = app.try_connect().expect("a place");
    Wamp1::new(V1::new(Arc::clone(hub), slot), Anonymous::new())
}

/// A loopback socket for the driver, and the client end that keeps it open.
async fn loopback() -> (Socket<tokio::net::TcpStream>, tokio::net::TcpStream) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
    let (server, _) = listener.accept().await.expect("accept");
    (Socket::new(server, Bytes::new(), 1 << 16), client)
}

/// An idle connection's task holds its session and nothing else: one socket, one adapter, one
/// keep-alive record and one timer. Growing it grows every idle connection's memory, by a
/// whole 128-byte step of the task allocation once it crosses the bound.
#[tokio::test]
async fn an_idle_session_is_one_small_struct() {
    let hub = hub();
    // With tokio's task header and trailer (104 bytes) and the task tracker's token (8), a
    // session of at most 400 bytes makes a 512-byte task, the allocation class below 640.
    let bound = 400;
    let (socket, _client) = loopback().await;
    let pusher = Session::new(socket, pusher(&hub));
    assert!(std::mem::size_of_val(&pusher) <= bound, "pusher session: {} bytes", std::mem::size_of_val(&pusher));
    let (socket, _client) = loopback().await;
    let v1 = Session::new(socket, wamp1(&hub));
    assert!(std::mem::size_of_val(&v1) <= bound, "wamp1 session: {} bytes", std::mem::size_of_val(&v1));
    let (socket, _client) = loopback().await;
    let v2 = Session::new(socket, Wamp2::new(Arc::clone(&hub), Serializer::Json, None, Instant::now()));
    assert!(std::mem::size_of_val(&v2) <= bound, "wamp2 session: {} bytes", std::mem::size_of_val(&v2));
}

#[tokio::test]
async fn pusher_opens_with_connection_established_and_answers_in_order() {
    let hub = hub();
    let mut p = pusher(&hub);
    let mut h = Harness::<super::pusher::Fetched>::new();
    assert!(matches!(p.open(&mut h.io()), Flow::Continue));
    let first = h.replies();
    assert_eq!(first.len(), 1);
    assert!(first[0].contains("pusher:connection_established"), "{first:?}");
    assert!(matches!(p.on_data(text(r#"{"event":"pusher:ping","data":{}}"#), &mut h.io()), Flow::Continue));
    assert_eq!(h.replies(), vec![r#"{"event":"pusher:pong","data":"{}"}"#.to_owned()]);
    let sub = r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#;
    assert!(matches!(p.on_data(text(sub), &mut h.io()), Flow::Continue));
    let acks = outbox(&p);
    assert!(acks.len() == 1 && acks[0].contains("pusher_internal:subscription_succeeded"), "{acks:?}");
    assert!(matches!(p.on_data(Data::Binary(Bytes::from_static(b"\x00")), &mut h.io()), Flow::Continue));
    assert!(h.replies()[0].contains("Binary frames are not supported"));
    let private = r#"{"event":"pusher:subscribe","data":{"channel":"private-x","auth":"key:forged"}}"#;
    assert!(matches!(p.on_data(text(private), &mut h.io()), Flow::Continue));
    let refused = h.replies();
    assert!(refused[0].contains("pusher:subscription_error") && refused[0].contains("401"), "{refused:?}");
    p.leave();
    assert_eq!(hub.channel(&hub.app_by_id("app").expect("app"), "news").map(|c| c.subscription_count), None);
}

#[tokio::test]
async fn pusher_says_goodbye_with_its_close_codes() {
    let hub = hub();
    let mut h = Harness::<super::pusher::Fetched>::new();
    let code = |reason| {
        let mut p = pusher(&hub);
        let mut h = Harness::<super::pusher::Fetched>::new();
        let g = p.goodbye(reason, &mut h.io());
        p.leave();
        (close_code(&g.frame), g.discard_backlog)
    };
    assert_eq!(code(CloseReason::Shutdown), (Some(4200), false));
    assert_eq!(code(CloseReason::SlowConsumer), (Some(4100), true));
    assert_eq!(code(CloseReason::Terminated), (Some(4009), false));
    assert_eq!(code(CloseReason::Unresponsive), (Some(4201), false));
    assert_eq!(code(CloseReason::ClientClosed(None)), (Some(1000), false));
    assert_eq!(code(CloseReason::Gone), (None, false));
    assert!(h.replies().is_empty());
}

#[tokio::test]
async fn wamp1_welcomes_then_closes_1007_on_what_ratchet_cannot_decode() {
    let hub = hub();
    let mut s = wamp1(&hub);
    let mut h = Harness::<Infallible>::new();
    assert!(matches!(s.open(&mut h.io()), Flow::Continue));
    assert!(h.replies()[0].starts_with("[0,\""), "WELCOME first");
    assert!(matches!(s.on_data(text(r#"[5,"news"]"#), &mut h.io()), Flow::Continue));
    assert!(h.replies().is_empty(), "SUBSCRIBE is never answered");
    assert!(matches!(s.on_data(text(r#"[2,"c1","urn:nothing"]"#), &mut h.io()), Flow::Continue));
    assert!(h.replies()[0].starts_with(r#"[4,"c1","http://herald.invalid/error#no_such_procedure""#));
    for bad in [text("not json"), Data::Binary(Bytes::from_static(b"[5,\"x\"]"))] {
        match s.on_data(bad, &mut h.io()) {
            Flow::Close(CloseReason::Protocol(frame)) => assert_eq!(close_code(&frame), Some(1007)),
            other => panic!("expected a 1007 close, got {other:?}"),
        }
    }
    let shutdown = s.goodbye(CloseReason::Shutdown, &mut h.io());
    assert_eq!(close_code(&shutdown.frame), Some(1001));
    let echo = s.goodbye(
        CloseReason::ClientClosed(Some(herald_protocol::ws::CloseFrame { code: 4000, reason: String::new() })),
        &mut h.io(),
    );
    assert_eq!(close_code(&echo.frame), Some(4000), "the client's own status is echoed");
    s.leave();
}

#[tokio::test]
async fn wamp2_waits_for_hello_then_opens_with_the_app_keepalive() {
    let hub = hub();
    let start = Instant::now();
    let mut s = Wamp2::new(Arc::clone(&hub), Serializer::Json, None, start);
    let mut h = Harness::new();
    assert!(matches!(s.open(&mut h.io()), Flow::Continue));
    assert_eq!(s.deadline(), Some(start + std::time::Duration::from_secs(10)), "HELLO is due");
    assert_eq!(s.keepalive(), super::keepalive::Plan::Off);
    let hello = r#"[1,"app",{"roles":{"subscriber":{}}}]"#;
    assert!(matches!(s.on_data(text(hello), &mut h.io()), Flow::Continue));
    let welcome = outbox(&s);
    assert!(welcome.len() == 1 && welcome[0].starts_with("[2,"), "{welcome:?}");
    assert_eq!(s.keepalive(), super::keepalive::Plan::silence(120, 30));
    assert_eq!(s.deadline(), None);
    match s.on_data(Data::Binary(Bytes::from_static(b"\x91\x01")), &mut h.io()) {
        Flow::Close(CloseReason::Protocol(frame)) => assert_eq!(close_code(&frame), Some(1000)),
        other => panic!("a binary frame on a JSON session must abort, got {other:?}"),
    }
    assert!(outbox(&s)[0].contains("wamp.error.protocol_violation"));
    let bye = s.goodbye(CloseReason::Shutdown, &mut h.io());
    assert_eq!(close_code(&bye.frame), Some(1001));
    assert!(h.replies()[0].contains("wamp.close.system_shutdown"));
    s.leave();
}

#[tokio::test]
async fn wamp2_without_hello_in_time_is_closed() {
    let hub = hub();
    let mut s = Wamp2::new(Arc::clone(&hub), Serializer::Json, None, Instant::now());
    let mut h = Harness::new();
    match s.on_deadline(&mut h.io()) {
        Flow::Close(CloseReason::Protocol(frame)) => assert_eq!(close_code(&frame), Some(1001)),
        other => panic!("expected a timeout close, got {other:?}"),
    }
    s.leave();
}

fn hub_with_history(max_messages: usize) -> Arc<Hub> {
    let history = vec![herald_core::app::HistoryConfig { channels: "h-*".into(), max_messages, max_age_secs: 60 }];
    let cfg = AppConfig {
        id: "app".into(),
        key: "key".into(),
        secret: "secret-0123456789abcdef".into(),
        history,
        ..AppConfig::default()
    };
    let reg = AppRegistry::new(vec![cfg]).expect("one app");
    Arc::new(Hub::new(reg, Arc::new(LocalBackend), OutboxLimits::default()))
}

fn publish(hub: &Hub, channel: &str, n: u32) {
    let app = hub.app_by_id("app").expect("app");
    let ch = herald_protocol::pusher::channel_name::ChannelName::parse(channel, 200).expect("name");
    hub.publish(&app, herald_core::Publication::new(ch, "ev", herald_core::PublicationData::Str(n.to_string().into())));
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("json")
}

fn subscribed(hub: &Arc<Hub>, data: &str) -> (Pusher, Vec<String>) {
    let mut p = pusher(hub);
    let mut h = Harness::<super::pusher::Fetched>::new();
    assert!(matches!(p.open(&mut h.io()), Flow::Continue));
    let sub = format!(r#"{{"event":"pusher:subscribe","data":{data}}}"#);
    assert!(matches!(p.on_data(text(&sub), &mut h.io()), Flow::Continue));
    assert!(h.replies().iter().all(|r| r.contains("connection_established")), "no error is answered");
    let frames = outbox(&p);
    (p, frames)
}

#[tokio::test]
async fn pusher_recover_replays_what_was_missed_after_the_acknowledgement() {
    let hub = hub_with_history(10);
    let (mut first, frames) = subscribed(&hub, r#"{"channel":"h-1"}"#);
    let ack = json(&frames[0]);
    assert_eq!(ack["event"], "pusher_internal:subscription_succeeded");
    assert_eq!((ack["data"].as_str(), ack["serial"].as_u64()), (Some("{}"), Some(0)));
    let epoch = ack["epoch"].as_str().expect("epoch").to_owned();
    publish(&hub, "h-1", 1);
    let live = json(&outbox(&first)[0]);
    assert_eq!((live["epoch"].as_str(), live["serial"].as_u64()), (Some(epoch.as_str()), Some(1)));
    first.leave();
    for n in 2..=4 {
        publish(&hub, "h-1", n);
    }
    let (_second, frames) =
        subscribed(&hub, &format!(r#"{{"channel":"h-1","recover":{{"epoch":"{epoch}","serial":1}}}}"#));
    let ack = json(&frames[0]);
    assert_eq!(
        (ack["event"].as_str(), ack["serial"].as_u64()),
        (Some("pusher_internal:subscription_succeeded"), Some(4))
    );
    let replayed: Vec<_> = frames[1..].iter().map(|f| json(f)["data"].as_str().map(str::to_owned)).collect();
    assert_eq!(replayed, [Some("2".into()), Some("3".into()), Some("4".into())]);
    assert_eq!(hub.history_totals().recovered, 1);
}

#[tokio::test]
async fn pusher_recover_failures_keep_the_subscription_and_say_why() {
    let hub = hub_with_history(2);
    for n in 1..=5 {
        publish(&hub, "h-1", n);
    }
    let epoch = hub.history(&hub.app_by_id("app").expect("app"), "h-1", None, 1).expect("held").epoch;
    let cases = [
        (format!(r#"{{"epoch":"{epoch}","serial":1}}"#), "gap"),
        (format!(r#"{{"epoch":"{epoch}","serial":99}}"#), "ahead"),
        (r#"{"epoch":"other","serial":1}"#.to_owned(), "unknown_epoch"),
        (r#"{"serial":"x"}"#.to_owned(), "invalid_request"),
    ];
    for (i, (recover, reason)) in cases.into_iter().enumerate() {
        let (mut p, frames) = subscribed(&hub, &format!(r#"{{"channel":"h-1","recover":{recover}}}"#));
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(json(&frames[0])["event"], "pusher_internal:subscription_succeeded");
        let failed = json(&frames[1]);
        assert_eq!(
            (failed["event"].as_str(), failed["channel"].as_str()),
            (Some("pusher:recovery_failed"), Some("h-1"))
        );
        let data = json(failed["data"].as_str().expect("string data"));
        assert_eq!((data["reason"].as_str(), data["serial"].as_u64()), (Some(reason), Some(5 + i as u64)), "{recover}");
        assert_eq!(data["epoch"].as_str(), Some(&*epoch));
        publish(&hub, "h-1", 6);
        assert_eq!(json(&outbox(&p)[0])["data"], "6", "still subscribed");
        p.leave();
    }
    assert_eq!(hub.history_totals().failed, 4);
}

#[tokio::test]
async fn pusher_channels_without_history_ignore_recover_and_are_unchanged() {
    let hub = hub_with_history(2);
    let (_p, frames) = subscribed(&hub, r#"{"channel":"plain","recover":{"epoch":"e","serial":1}}"#);
    assert_eq!(frames, [r#"{"event":"pusher_internal:subscription_succeeded","channel":"plain","data":"{}"}"#]);
}
