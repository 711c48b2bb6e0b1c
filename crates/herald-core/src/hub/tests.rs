use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use herald_protocol::pusher::socket_auth::{PresenceMember, UserData};

use super::*;
use crate::app::AppConfig;
use crate::backend::LocalBackend;
use crate::outbox::Drained;
use crate::publication::PublicationData;

fn hub_with(config: AppConfig, limits: OutboxLimits) -> (Hub, Arc<App>) {
    let reg = AppRegistry::new(vec![config]).unwrap();
    let hub = Hub::new(reg, Arc::new(LocalBackend), limits);
    let app = hub.app_by_id("a").unwrap();
    (hub, app)
}

fn hub() -> (Hub, Arc<App>) {
    let cfg = AppConfig { id: "a".into(), key: "k".into(), secret: "s".into(), ..AppConfig::default() };
    hub_with(cfg, OutboxLimits::default())
}

fn name(s: &str) -> ChannelName {
    ChannelName::parse(s, 200).unwrap()
}

/// Drains a connection's outbox into the texts of its frames (payload after the 2-byte header
/// of small unmasked text frames; the tests only produce frames under 126 bytes... or longer).
fn drain(conn: &Conn) -> Vec<Bytes> {
    let mut q = VecDeque::new();
    let mut cx = Context::from_waker(Waker::noop());
    let _ = conn.outbox.poll_drain(&mut cx, &mut q);
    q.into_iter().collect()
}

fn text(frame: &Bytes) -> String {
    let len = frame[1] & 0x7f;
    let start = match len {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    String::from_utf8(frame[start..].to_vec()).unwrap()
}

fn subscribe(hub: &Hub, app: &App, conn: &Arc<Conn>, ch: &str, member: Option<(&str, &str)>) {
    let member = member.map(|(id, info)| PresenceMember {
        user_id: id.into(),
        user_info: Some(serde_json::value::RawValue::from_string(info.into()).unwrap()),
    });
    hub.subscribe(app, conn, &name(ch), member, |_| {}).unwrap();
}

fn publish(hub: &Hub, app: &App, ch: &str, exclude: Option<&str>) -> usize {
    let p = Publication::new(name(ch), "ev", PublicationData::Str("{}".into())).excluding(exclude);
    hub.publish(app, p)
}

#[test]
fn fan_out_shares_one_encoded_frame() {
    let (hub, app) = hub();
    let (a, b) = (hub.connect(Wire::Pusher), hub.connect(Wire::Pusher));
    subscribe(&hub, &app, &a, "news", None);
    subscribe(&hub, &app, &b, "news", None);
    assert_eq!(publish(&hub, &app, "news", None), 2);
    let (fa, fb) = (drain(&a), drain(&b));
    assert_eq!(fa.len(), 1);
    assert_eq!(fa[0].as_ptr(), fb[0].as_ptr(), "both subscribers got the same bytes, not a copy");
    assert_eq!(text(&fa[0]), r#"{"event":"ev","channel":"news","data":"{}"}"#);
}

#[test]
fn the_publishing_socket_is_excluded() {
    let (hub, app) = hub();
    let (a, b) = (hub.connect(Wire::Pusher), hub.connect(Wire::Pusher));
    subscribe(&hub, &app, &a, "news", None);
    subscribe(&hub, &app, &b, "news", None);
    assert_eq!(publish(&hub, &app, "news", Some(a.socket_id.as_str())), 1);
    assert!(drain(&a).is_empty());
    assert_eq!(drain(&b).len(), 1);
}

#[test]
fn presence_counts_users_not_sockets() {
    let (hub, app) = hub();
    let watcher = hub.connect(Wire::Pusher);
    subscribe(&hub, &app, &watcher, "presence-room", Some(("0", "{}")));
    let (a1, a2) = (hub.connect(Wire::Pusher), hub.connect(Wire::Pusher));
    subscribe(&hub, &app, &a1, "presence-room", Some(("7", r#"{"name":"ann"}"#)));
    subscribe(&hub, &app, &a2, "presence-room", Some(("7", r#"{"name":"ann"}"#)));
    let added: Vec<String> = drain(&watcher).iter().map(text).collect();
    assert_eq!(added.len(), 1, "one member_added for two sockets of user 7: {added:?}");
    assert!(added[0].contains("pusher_internal:member_added"));
    assert!(added[0].contains(r#"\"user_id\":\"7\""#), "{}", added[0]);
    assert_eq!(hub.channel(&app, "presence-room").unwrap().user_count, Some(2));

    assert!(hub.unsubscribe(&app, &a1, &name("presence-room")));
    assert!(drain(&watcher).is_empty(), "user 7 still has a socket");
    assert!(hub.unsubscribe(&app, &a2, &name("presence-room")));
    let removed: Vec<String> = drain(&watcher).iter().map(text).collect();
    assert_eq!(removed.len(), 1);
    assert!(removed[0].contains("pusher_internal:member_removed"));
    assert_eq!(hub.presence_users(&app, "presence-room"), vec!["0".to_owned()]);
}

#[test]
fn presence_channel_refuses_the_member_over_the_limit() {
    let cfg = AppConfig {
        id: "a".into(),
        key: "k".into(),
        secret: "s".into(),
        max_presence_members: 1,
        ..AppConfig::default()
    };
    let (hub, app) = hub_with(cfg, OutboxLimits::default());
    let (a, b, c) = (hub.connect(Wire::Pusher), hub.connect(Wire::Pusher), hub.connect(Wire::Pusher));
    subscribe(&hub, &app, &a, "presence-x", Some(("1", "{}")));
    subscribe(&hub, &app, &c, "presence-x", Some(("1", "{}")));
    let m = PresenceMember { user_id: "2".into(), user_info: None };
    let err = hub.subscribe(&app, &b, &name("presence-x"), Some(m), |_| {}).unwrap_err();
    assert_eq!(err, SubscribeError::PresenceFull(name("presence-x")));
}

#[test]
fn subscribing_twice_is_refused() {
    let (hub, app) = hub();
    let a = hub.connect(Wire::Pusher);
    subscribe(&hub, &app, &a, "news", None);
    let err = hub.subscribe(&app, &a, &name("news"), None, |_| {}).unwrap_err();
    assert_eq!(err, SubscribeError::AlreadySubscribed(name("news")));
}

#[test]
fn cache_channel_replays_the_last_event_to_late_subscribers() {
    let (hub, app) = hub();
    assert_eq!(publish(&hub, &app, "cache-prices", None), 0);
    let late = hub.connect(Wire::Pusher);
    let mut replayed = None;
    hub.subscribe(&app, &late, &name("cache-prices"), None, |j| replayed = j.cached).unwrap();
    let p = replayed.expect("the event published before anyone subscribed is cached");
    assert_eq!(&*p.event, "ev");
}

#[test]
fn a_subscriber_that_does_not_read_is_closed_not_buffered() {
    let cfg = AppConfig { id: "a".into(), key: "k".into(), secret: "s".into(), ..AppConfig::default() };
    let (hub, app) = hub_with(cfg, OutboxLimits { max_frames: 8, max_bytes: 1 << 20 });
    let (slow, fast) = (hub.connect(Wire::Pusher), hub.connect(Wire::Pusher));
    subscribe(&hub, &app, &slow, "news", None);
    subscribe(&hub, &app, &fast, "news", None);
    for _ in 0..20 {
        publish(&hub, &app, "news", None);
        drain(&fast);
    }
    assert!(slow.outbox.len() <= 8, "the slow outbox stays bounded");
    let mut q = VecDeque::new();
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(slow.outbox.poll_drain(&mut cx, &mut q), Poll::Ready(Drained::Close(CloseRequest::SlowConsumer)));
}

#[test]
fn terminate_closes_every_signed_in_connection_of_the_user() {
    let (hub, app) = hub();
    let (a, b, other) = (hub.connect(Wire::Pusher), hub.connect(Wire::Pusher), hub.connect(Wire::Pusher));
    let user = |id: &str| UserData { id: id.into(), watchlist: vec![] };
    hub.sign_in(&app, &a, &user("u1")).unwrap();
    hub.sign_in(&app, &b, &user("u1")).unwrap();
    hub.sign_in(&app, &other, &user("u2")).unwrap();
    assert_eq!(hub.terminate_user(&app, "u1"), 2);
    let mut q = VecDeque::new();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(a.outbox.poll_drain(&mut cx, &mut q), Poll::Ready(Drained::Close(_))));
    assert!(matches!(other.outbox.poll_drain(&mut cx, &mut q), Poll::Pending));
}

#[test]
fn watchers_learn_when_a_user_comes_online_and_goes_offline() {
    let (hub, app) = hub();
    let watcher = hub.connect(Wire::Pusher);
    let w = UserData { id: "w".into(), watchlist: vec!["u1".into()] };
    let (online, offline) = hub.sign_in(&app, &watcher, &w).unwrap();
    assert_eq!((online, offline), (vec![], vec!["u1".to_owned()]));
    let u1 = hub.connect(Wire::Pusher);
    hub.sign_in(&app, &u1, &UserData { id: "u1".into(), watchlist: vec![] }).unwrap();
    let got: Vec<String> = drain(&watcher).iter().map(text).collect();
    assert!(got[0].contains("online") && got[0].contains("u1"), "{got:?}");
    hub.sign_out(&app, &u1, "u1", &[]);
    let got: Vec<String> = drain(&watcher).iter().map(text).collect();
    assert!(got[0].contains("offline"), "{got:?}");
}

#[test]
fn a_connection_cannot_sign_in_as_two_users() {
    let (hub, app) = hub();
    let a = hub.connect(Wire::Pusher);
    hub.sign_in(&app, &a, &UserData { id: "u1".into(), watchlist: vec![] }).unwrap();
    let err = hub.sign_in(&app, &a, &UserData { id: "u2".into(), watchlist: vec![] }).unwrap_err();
    assert_eq!(err, SignInError::OtherUser);
}

#[test]
fn close_all_reaches_every_live_connection_until_it_disconnects() {
    let (hub, _app) = hub();
    let a = hub.connect(Wire::Pusher);
    let b = hub.connect(Wire::Pusher);
    hub.disconnect(&b);
    assert_eq!(hub.close_all(), 1);
    let mut q = VecDeque::new();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(a.outbox.poll_drain(&mut cx, &mut q), Poll::Ready(Drained::Close(_))));
}

#[test]
fn a_connection_made_after_close_all_is_asked_to_close_at_once() {
    let (hub, _app) = hub();
    let before = hub.connect(Wire::Pusher);
    assert_eq!(hub.close_all(), 1);
    let after = hub.connect(Wire::Pusher);
    for conn in [&before, &after] {
        let mut q = VecDeque::new();
        let got = conn.outbox.poll_drain(&mut Context::from_waker(Waker::noop()), &mut q);
        assert_eq!(got, Poll::Ready(Drained::Close(CloseRequest::Shutdown)));
    }
}

#[test]
fn counters_follow_connections_and_fan_out() {
    use crate::stats::Protocol;
    let (hub, app) = hub();
    let a = hub.connect(Wire::Pusher);
    let b = hub.connect(Wire::WampV1);
    assert_eq!(hub.stats().open(Protocol::Pusher), 1);
    subscribe(&hub, &app, &a, "c", None);
    assert_eq!(hub.subscription_totals(&app), (1, 1));
    assert_eq!(publish(&hub, &app, "c", None), 1);
    assert_eq!(app.stats.messages_out.get(Protocol::Pusher), 1);
    assert_eq!(app.stats.publications.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(app.stats.publish_latency.snapshot().count, 1);
    hub.unsubscribe(&app, &a, &name("c"));
    hub.disconnect(&a);
    hub.disconnect(&b);
    hub.disconnect(&b);
    assert_eq!(hub.stats().open(Protocol::Pusher), 0);
    assert_eq!(hub.stats().closed.get(Protocol::WampV1), 1, "a second disconnect is not counted");
}

#[test]
fn apps_keep_their_channels_and_users_apart() {
    let cfg = |id: &str| AppConfig { id: id.into(), key: format!("k{id}"), secret: "s".into(), ..AppConfig::default() };
    let reg = AppRegistry::new(vec![cfg("a"), cfg("b")]).unwrap();
    let hub = Hub::new(reg, Arc::new(LocalBackend), OutboxLimits::default());
    let a = hub.app_by_id("a").unwrap();
    let b = hub.app_by_id("b").unwrap();
    assert_eq!(hub.apps().iter().map(|app| app.config.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let (in_a, in_b) = (hub.connect(Wire::Pusher), hub.connect(Wire::Pusher));
    subscribe(&hub, &a, &in_a, "news", None);
    subscribe(&hub, &b, &in_b, "news", None);
    assert_eq!(publish(&hub, &b, "news", None), 1, "only app b's subscriber");
    assert!(drain(&in_a).is_empty());
    assert_eq!(drain(&in_b).len(), 1);
    hub.sign_in(&a, &in_a, &UserData { id: "u".into(), watchlist: vec![] }).unwrap();
    assert_eq!(hub.terminate_user(&b, "u"), 0, "user u signed in to app a only");
    assert_eq!(hub.subscription_totals(&a), (1, 1));
}

/// State goes with the app, not with its id: an app made elsewhere under the same id shares
/// nothing with the hub's, so two apps can never be mixed up through their names.
#[test]
fn an_app_made_elsewhere_shares_no_state_with_a_namesake() {
    let (hub, app) = hub();
    let stray = App::new(app.config.clone());
    let conn = hub.connect(Wire::Pusher);
    let news = ChannelName::parse("news", 200).unwrap();
    hub.subscribe(&stray, &conn, &news, None, |_| {}).unwrap();
    assert_eq!(hub.subscription_totals(&stray), (1, 1));
    assert_eq!(hub.subscription_totals(&app), (0, 0));
    assert!(!stray.same_app(&app));
}

#[test]
fn a_call_reaches_the_callee_of_its_app_and_the_yield_comes_back() {
    use herald_protocol::wamp::Serializer;
    use herald_protocol::wamp::v2::{Dict, Payload};
    let (hub, app) = hub();
    let wire = Wire::WampV2(Serializer::Json);
    let (callee, caller) = (hub.connect(wire), hub.connect(wire));
    hub.register(&app, &callee, "com.add").unwrap();
    assert_eq!(hub.register(&app, &caller, "com.add"), Err(dealer::RpcError::ProcedureExists));
    let invocation = hub.call(&app, &caller, 7, "com.add", Payload::default(), Dict::new()).unwrap();
    assert!(text(&drain(&callee)[0]).starts_with("[68,"), "INVOCATION to the callee");
    assert!(hub.yield_result(&app, &callee, invocation, Payload::default()));
    assert_eq!(text(&drain(&caller)[0]), "[50,7,{}]", "RESULT to the caller's request");
    hub.leave_wamp(&app, &callee);
    let err = hub.call(&app, &caller, 8, "com.add", Payload::default(), Dict::new());
    assert_eq!(err, Err(dealer::RpcError::NoSuchProcedure), "leaving drops the registration");
}

/// Records what reaches it, for every kind.
#[derive(Default)]
struct Recorder(parking_lot::Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn wants(&self, _app: &App, _kind: EventKind) -> bool {
        true
    }

    fn emit(&self, _app: &App, event: Event) {
        self.0.lock().push(event);
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock()).into_iter().map(|e| describe(&e)).collect()
    }
}

fn describe(e: &Event) -> String {
    let ch = e.channel().map_or("", |c| c.as_str());
    match e {
        Event::MemberAdded { user_id, .. } | Event::MemberRemoved { user_id, .. } => {
            format!("{} {ch} {user_id}", e.kind().name())
        }
        Event::UserOnline { user_id } | Event::UserOffline { user_id } => format!("{} {user_id}", e.kind().name()),
        Event::SubscriptionCount { count, .. } => format!("{} {ch} {count}", e.kind().name()),
        _ => format!("{} {ch}", e.kind().name()),
    }
}

fn recording_hub(backend: Arc<dyn Backend>) -> (Hub, Arc<App>, Arc<Recorder>) {
    let cfg = AppConfig {
        id: "a".into(),
        key: "k".into(),
        secret: "s".into(),
        enable_subscription_count: true,
        ..AppConfig::default()
    };
    let reg = AppRegistry::new(vec![cfg]).unwrap();
    let recorder = Arc::new(Recorder::default());
    let hub = Hub::new(reg, backend, OutboxLimits::default()).with_events(Arc::clone(&recorder) as Arc<dyn EventSink>);
    let app = hub.app_by_id("a").unwrap();
    (hub, app, recorder)
}

#[test]
fn one_node_reports_each_change_in_order() {
    let (hub, app, events) = recording_hub(Arc::new(LocalBackend));
    let (a, b) = (hub.connect(Wire::Pusher), hub.connect(Wire::Pusher));
    subscribe(&hub, &app, &a, "news", None);
    subscribe(&hub, &app, &b, "news", None);
    hub.unsubscribe(&app, &a, &name("news"));
    hub.unsubscribe(&app, &b, &name("news"));
    assert_eq!(
        events.take(),
        [
            "channel_occupied news",
            "subscription_count news 1",
            "subscription_count news 2",
            "subscription_count news 1",
            "subscription_count news 0",
            "channel_vacated news",
        ]
    );
    // Presence: one member for two sockets, and no subscription_count (Pusher counts members).
    subscribe(&hub, &app, &a, "presence-room", Some(("7", "{}")));
    subscribe(&hub, &app, &b, "presence-room", Some(("7", "{}")));
    hub.unsubscribe(&app, &a, &name("presence-room"));
    hub.unsubscribe(&app, &b, &name("presence-room"));
    assert_eq!(
        events.take(),
        [
            "channel_occupied presence-room",
            "member_added presence-room 7",
            "member_removed presence-room 7",
            "channel_vacated presence-room",
        ]
    );
    let c = hub.connect(Wire::Pusher);
    subscribe(&hub, &app, &c, "cache-prices", None);
    assert!(events.take().contains(&"cache_miss cache-prices".to_owned()));
}

/// A backend that shares state: it records the node's changes instead of emitting them.
#[derive(Default)]
struct Shared(parking_lot::Mutex<Vec<Event>>);

impl Backend for Shared {
    fn broadcast(&self, _app: &App, _publication: &Arc<Publication>) {}

    fn shares_state(&self) -> bool {
        true
    }

    fn changed(&self, _app: &App, change: Event, _events: &dyn EventSink) {
        self.0.lock().push(change);
    }
}

#[test]
fn with_shared_state_the_cluster_decides_who_is_a_member() {
    let backend = Arc::new(Shared::default());
    let (hub, app, events) = recording_hub(Arc::clone(&backend) as Arc<dyn Backend>);
    let room = name("presence-room");
    // Ann is present on another node only: a subscriber here lists her.
    hub.cluster_member_added(&app, &room, "ann", None);
    let bob = hub.connect(Wire::Pusher);
    let mut listed = Vec::new();
    let member = PresenceMember { user_id: "bob".into(), user_info: None };
    hub.subscribe(&app, &bob, &room, Some(member), |j| {
        listed = j.presence.unwrap().iter().map(|(id, _)| id.to_owned()).collect();
    })
    .unwrap();
    assert_eq!(listed, ["ann", "bob"]);
    // Bob's join is the node's change, for the cluster to judge; nothing reached the sink.
    let changes: Vec<String> = std::mem::take(&mut *backend.0.lock()).iter().map(describe).collect();
    assert_eq!(
        changes,
        ["channel_occupied presence-room", "member_added presence-room bob", "subscription_count presence-room 1"]
    );
    assert!(events.take().is_empty());

    // Carl joins here: no member_added until the cluster says he is new.
    let carl = hub.connect(Wire::Pusher);
    subscribe(&hub, &app, &carl, "presence-room", Some(("carl", "{}")));
    assert!(drain(&bob).is_empty());
    hub.cluster_member_added(&app, &room, "carl", None);
    let got: Vec<String> = drain(&bob).iter().map(text).collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("member_added") && got[0].contains("carl"));
    assert!(drain(&carl).iter().map(text).all(|t| !t.contains("member_added")), "not told of itself");
    hub.cluster_member_added(&app, &room, "carl", None);
    assert!(drain(&bob).is_empty(), "an announcement crossing a reload is told once");

    // Ann leaves the cluster: everyone here is told.
    hub.cluster_member_removed(&app, &room, "ann");
    assert!(text(&drain(&bob)[0]).contains("member_removed"));
    // Carl's socket here leaves; the cluster still counts him until it says otherwise.
    hub.unsubscribe(&app, &carl, &room);
    assert!(drain(&bob).is_empty());
    assert_eq!(hub.presence_users(&app, "presence-room"), ["bob", "carl"]);
    hub.cluster_member_removed(&app, &room, "carl");
    assert!(text(&drain(&bob)[0]).contains("member_removed"));

    // Counts come from the cluster too.
    hub.cluster_subscription_count(&app, &name("news"), 5);
    let news = hub.connect(Wire::Pusher);
    subscribe(&hub, &app, &news, "news", None);
    assert!(drain(&news).is_empty(), "no local count with shared state");
    hub.cluster_subscription_count(&app, &name("news"), 5);
    assert!(text(&drain(&news)[0]).contains(r#"\"subscription_count\":5"#));

    let snap = hub.local_snapshot(&app);
    let mut channels: Vec<(String, usize, Vec<cluster::LocalMember>)> =
        snap.channels.into_iter().map(|(n, c, m)| (n.as_str().to_owned(), c, m)).collect();
    channels.sort();
    assert_eq!(channels, [("news".into(), 1, vec![]), ("presence-room".into(), 1, vec![(Box::from("bob"), None)])]);
}

#[test]
fn a_channel_known_only_through_other_nodes_is_not_listed_as_occupied_here() {
    let (hub, app, _) = recording_hub(Arc::new(Shared::default()));
    hub.cluster_member_added(&app, &name("presence-x"), "ann", None);
    assert!(hub.channel(&app, "presence-x").is_none());
    assert!(hub.channels(&app, "").is_empty());
    assert_eq!(hub.subscription_totals(&app), (0, 0));
    hub.cluster_member_removed(&app, &name("presence-x"), "ann");
    assert!(hub.presence_users(&app, "presence-x").is_empty());
}
