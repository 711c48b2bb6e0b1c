use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use herald_protocol::pusher::channel_name::ChannelName;

use crate::app::{AppConfig, AppRegistry, HistoryConfig};
use crate::backend::LocalBackend;
use crate::conn::Conn;
use crate::history::RecoverError;
use crate::outbox::OutboxLimits;
use crate::publication::{Publication, PublicationData};
use crate::wire::Wire;
use crate::{App, Hub};

fn hub_keeping(max_messages: usize) -> (Hub, Arc<App>) {
    let history = vec![HistoryConfig { channels: "h-*".into(), max_messages, max_age_secs: 300 }];
    let cfg = AppConfig { id: "a".into(), key: "k".into(), secret: "s".into(), history, ..AppConfig::default() };
    let hub = Hub::new(
        AppRegistry::new(vec![cfg]).unwrap(),
        Arc::new(LocalBackend),
        OutboxLimits { max_frames: 1_000_000, max_bytes: 1 << 30 },
    );
    let app = hub.app_by_id("a").unwrap();
    (hub, app)
}

fn name(s: &str) -> ChannelName {
    ChannelName::parse(s, 200).unwrap()
}

fn publish(hub: &Hub, app: &App, ch: &str, n: usize) {
    hub.publish(app, Publication::new(name(ch), "ev", PublicationData::Str(n.to_string().into())));
}

fn texts(conn: &Conn) -> Vec<String> {
    let mut q = VecDeque::new();
    let mut cx = Context::from_waker(Waker::noop());
    let _: Poll<_> = conn.outbox.poll_drain(&mut cx, &mut q);
    q.into_iter().map(|f: Bytes| text(&f)).collect()
}

fn text(frame: &Bytes) -> String {
    let start = match frame[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    String::from_utf8(frame[start..].to_vec()).unwrap()
}

/// Subscribes, queueing the acknowledgement marker and the replay as the Pusher adapter does.
fn subscribe(hub: &Hub, app: &App, conn: &Arc<Conn>, ch: &str, recover: Option<(&str, u64)>) -> Option<RecoverError> {
    let mut failed = None;
    hub.subscribe_recovering(app, conn, &name(ch), None, recover, |j| {
        let h = j.history.expect("channel has history");
        let _ = conn.outbox.push(herald_protocol::ws::encode_text(format!("ack {} {}", h.epoch, h.serial).as_bytes()));
        match h.replay {
            Some(Ok(ps)) => ps.iter().for_each(|p| {
                let _ = conn.outbox.push(p.frame(Wire::Pusher, 0).clone());
            }),
            Some(Err(e)) => failed = Some(e),
            None => {}
        }
    })
    .unwrap();
    failed
}

fn serial_of(frame: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(frame).unwrap();
    v["serial"].as_u64().unwrap()
}

#[test]
fn frames_carry_epoch_and_serial_only_on_channels_with_history() {
    let (hub, app) = hub_keeping(10);
    let c = hub.connect(Wire::Pusher);
    subscribe(&hub, &app, &c, "h-1", None);
    hub.subscribe(&app, &c, &name("plain"), None, |j| assert!(j.history.is_none())).unwrap();
    publish(&hub, &app, "h-1", 1);
    publish(&hub, &app, "plain", 2);
    let got = texts(&c);
    let epoch = hub.history(&app, "h-1", None, 10).unwrap().epoch;
    assert_eq!(got[0], format!("ack {epoch} 0"));
    assert_eq!(got[1], format!(r#"{{"event":"ev","channel":"h-1","data":"1","epoch":"{epoch}","serial":1}}"#));
    assert_eq!(got[2], r#"{"event":"ev","channel":"plain","data":"2"}"#);
    assert_eq!(epoch.len(), 16);
}

#[test]
fn a_recovering_subscriber_gets_what_it_missed_then_live() {
    let (hub, app) = hub_keeping(10);
    for i in 1..=5 {
        publish(&hub, &app, "h-1", i);
    }
    let epoch = hub.history(&app, "h-1", None, 10).unwrap().epoch;
    let c = hub.connect(Wire::Pusher);
    assert_eq!(subscribe(&hub, &app, &c, "h-1", Some((&epoch, 2))), None);
    publish(&hub, &app, "h-1", 6);
    let got = texts(&c);
    assert_eq!(got[0], format!("ack {epoch} 5"));
    assert_eq!(got[1..].iter().map(|f| serial_of(f)).collect::<Vec<_>>(), [3, 4, 5, 6]);
}

#[test]
fn recovery_fails_on_gap_unknown_epoch_and_serial_ahead() {
    let (hub, app) = hub_keeping(3);
    for i in 1..=5 {
        publish(&hub, &app, "h-1", i);
    }
    let epoch = hub.history(&app, "h-1", None, 10).unwrap().epoch;
    let sub = |rec| subscribe(&hub, &app, &hub.connect(Wire::Pusher), "h-1", Some(rec));
    assert_eq!(sub((&epoch, 1)), Some(RecoverError::Gap), "serials 2 was trimmed");
    assert_eq!(sub((&epoch, 2)), None, "3, 4, 5 are held");
    assert_eq!(sub((&epoch, 5)), None);
    assert_eq!(sub((&epoch, 6)), Some(RecoverError::Ahead));
    assert_eq!(sub(("0000000000000000", 2)), Some(RecoverError::UnknownEpoch));
}

#[test]
fn history_outlives_its_subscribers_and_range_reads_work() {
    let (hub, app) = hub_keeping(100);
    let c = hub.connect(Wire::Pusher);
    subscribe(&hub, &app, &c, "h-x", None);
    assert!(hub.unsubscribe(&app, &c, &name("h-x")));
    for i in 1..=20 {
        publish(&hub, &app, "h-x", i);
    }
    let last3 = hub.history(&app, "h-x", None, 3).unwrap();
    assert_eq!(last3.publications.iter().map(|p| p.position().unwrap().serial).collect::<Vec<_>>(), [18, 19, 20]);
    let after = hub.history(&app, "h-x", Some(10), 2).unwrap();
    assert_eq!(after.publications.iter().map(|p| p.position().unwrap().serial).collect::<Vec<_>>(), [11, 12]);
    assert_eq!(hub.history_after(&app, "h-x", &after.epoch, 18).unwrap().len(), 2);
    assert_eq!(hub.history_after(&app, "plain", &after.epoch, 18).unwrap_err(), RecoverError::NoHistory);
    assert!(hub.history(&app, "plain", None, 3).is_none());
    assert_eq!(hub.history_totals().channels, 1);
}

#[tokio::test(start_paused = true)]
async fn entries_expire_by_age_and_the_history_is_then_dropped() {
    let (hub, app) = hub_keeping(100);
    publish(&hub, &app, "h-x", 1);
    assert!(hub.history_totals().bytes > 0);
    tokio::time::advance(std::time::Duration::from_secs(301)).await;
    let totals = hub.history_totals();
    assert_eq!((totals.channels, totals.bytes), (0, 0));
}

#[test]
fn the_memory_budget_evicts_oldest_entries() {
    let (hub, app) = hub_keeping(10_000);
    let hub = hub.with_history_budget(10_000);
    for i in 0..200 {
        publish(&hub, &app, "h-x", i);
    }
    let totals = hub.history_totals();
    assert!(totals.bytes <= 10_000, "{totals:?}");
    assert!(totals.evicted > 100, "{totals:?}");
    let held = hub.history(&app, "h-x", None, 10_000).unwrap();
    assert_eq!(held.publications.last().unwrap().position().unwrap().serial, 200);
}

/// Publishers on several threads and subscribers recovering meanwhile: each subscriber sees
/// every serial after the one it gave exactly once and in order, replay and live alike.
#[test]
fn concurrent_publishers_and_recovering_subscribers_see_each_serial_once_in_order() {
    let (hub, app) = hub_keeping(10_000);
    let hub = Arc::new(hub);
    publish(&hub, &app, "h-race", 0);
    let epoch = hub.history(&app, "h-race", None, 1).unwrap().epoch;
    let publishers: Vec<_> = (0..3)
        .map(|t| {
            let (hub, app) = (Arc::clone(&hub), Arc::clone(&app));
            std::thread::spawn(move || {
                for i in 0..2000 {
                    publish(&hub, &app, "h-race", t * 10_000 + i);
                }
            })
        })
        .collect();
    let mut subscribers = Vec::new();
    for k in 0..20u64 {
        let c = hub.connect(Wire::Pusher);
        let from = k * 5;
        // The serial may not be reached yet: then "ahead"; retry until it is.
        while subscribe(&hub, &app, &c, "h-race", Some((&epoch, from))).is_some() {
            hub.unsubscribe(&app, &c, &name("h-race"));
        }
        subscribers.push((c, from));
        std::thread::yield_now();
    }
    for p in publishers {
        p.join().unwrap();
    }
    for (c, from) in subscribers {
        let frames = texts(&c);
        let ack = frames.iter().rposition(|f| f.starts_with("ack ")).unwrap();
        let serials: Vec<u64> = frames[ack + 1..].iter().map(|f| serial_of(f)).collect();
        let expected: Vec<u64> = (from + 1..=6001).collect();
        assert_eq!(serials, expected, "subscriber from {from}");
    }
}
