use std::sync::Arc;
use std::time::Duration;

use herald_protocol::pusher::channel_name::ChannelName;
use tokio::time::Instant;

use super::*;
use crate::app::HistoryPolicy;
use crate::publication::PublicationData;

fn publication(n: u64) -> Arc<Publication> {
    let ch = ChannelName::parse("c", 200).unwrap();
    Arc::new(Publication::new(ch, "ev", PublicationData::Str(n.to_string().into())))
}

fn policy() -> HistoryPolicy {
    HistoryPolicy { max_messages: 3, max_age: Duration::from_secs(60) }
}

#[test]
fn serials_count_from_one_and_the_ring_keeps_the_newest() {
    let (budget, now) = (HistoryBudget::default(), Instant::now());
    let mut h = ChannelHistory::new(policy(), now);
    for n in 1..=5 {
        h.append(&publication(n), now, &budget);
    }
    assert_eq!(h.len(), 3);
    let (epoch, serial) = h.position();
    assert_eq!(serial, 5);
    assert_eq!(h.after(&epoch, 2, now, &budget).unwrap().len(), 3);
    assert_eq!(h.after(&epoch, 1, now, &budget).unwrap_err(), RecoverError::Gap);
    h.clear(&budget);
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_position_set_by_a_backend_is_kept_and_a_new_epoch_replaces_the_history() {
    let (budget, now) = (HistoryBudget::default(), Instant::now());
    let mut h = ChannelHistory::new(policy(), now);
    h.append(&publication(1), now, &budget);
    let p = publication(2);
    p.set_position(Position { epoch: "cluster".into(), serial: 41 }).unwrap();
    h.append(&p, now, &budget);
    assert_eq!(h.position(), ("cluster".into(), 41));
    assert_eq!(h.len(), 1);
    assert_eq!(h.after("cluster", 40, now, &budget).unwrap().len(), 1);
}

#[test]
fn age_trims_on_read() {
    let (budget, now) = (HistoryBudget::default(), Instant::now());
    let mut h = ChannelHistory::new(policy(), now);
    h.append(&publication(1), now, &budget);
    let later = now + Duration::from_secs(61);
    let (epoch, _) = h.position();
    assert_eq!(h.after(&epoch, 0, later, &budget).unwrap_err(), RecoverError::Gap);
    assert!(h.is_empty());
    assert_eq!(budget.used(), 0);
}

mod snapshots {
    use std::sync::Arc;

    use super::super::snapshot::{self, SnapshotError};
    use crate::app::{AppConfig, AppRegistry, HistoryConfig};
    use crate::backend::LocalBackend;
    use crate::outbox::OutboxLimits;
    use crate::publication::{Publication, PublicationData};
    use crate::{App, Hub};

    fn hub() -> (Hub, Arc<App>) {
        let history = vec![HistoryConfig { channels: "h-*".into(), max_messages: 10, max_age_secs: 60 }];
        let cfg = AppConfig { id: "a".into(), key: "k".into(), secret: "s".into(), history, ..AppConfig::default() };
        let hub = Hub::new(AppRegistry::new(vec![cfg]).unwrap(), Arc::new(LocalBackend), OutboxLimits::default());
        let app = hub.app_by_id("a").unwrap();
        (hub, app)
    }

    fn publish(hub: &Hub, app: &App, data: PublicationData) {
        let ch = herald_protocol::pusher::channel_name::ChannelName::parse("h-1", 200).unwrap();
        hub.publish(app, Publication::new(ch, "ev", data));
    }

    #[test]
    fn a_snapshot_carries_positions_and_payloads_to_the_next_hub_and_seals_the_old_one() {
        let (old, app) = hub();
        publish(&old, &app, PublicationData::Str("one".into()));
        let raw = serde_json::value::RawValue::from_string(r#"{"two":2}"#.into()).unwrap();
        publish(&old, &app, PublicationData::Json(raw));
        let before = old.history(&app, "h-1", None, 10).unwrap();
        let frames: Vec<_> = before.publications.iter().map(|p| p.pusher_json()).collect();
        let bytes = snapshot::take(&old, 1_000_000);
        assert!(old.history(&app, "h-1", None, 10).is_none(), "sealed: the old hub holds nothing");
        assert_eq!(old.history_budget().used(), 0);

        let (new, app2) = hub();
        let restored = snapshot::restore(&new, &bytes, 1_000_500).unwrap();
        assert_eq!((restored.channels, restored.publications), (1, 2));
        let after = new.history(&app2, "h-1", None, 10).unwrap();
        assert_eq!((after.epoch.clone(), after.serial), (before.epoch.clone(), 2));
        let again: Vec<_> = after.publications.iter().map(|p| p.pusher_json()).collect();
        assert_eq!(frames, again, "the same frames, positions included");
        publish(&new, &app2, PublicationData::Str("three".into()));
        assert_eq!(new.history_after(&app2, "h-1", &before.epoch, 1).unwrap().len(), 2);
    }

    #[test]
    fn expired_entries_and_bad_documents_are_not_loaded() {
        let (old, app) = hub();
        publish(&old, &app, PublicationData::Str("one".into()));
        let bytes = snapshot::take(&old, 1_000_000);
        let (new, _) = hub();
        assert_eq!(snapshot::restore(&new, &bytes, 1_000_000 + 61_000).unwrap().publications, 0);
        assert!(matches!(
            snapshot::restore(&new, b"{\"version\":2,\"written_at_ms\":0,\"apps\":[]}", 0),
            Err(SnapshotError::Version(2))
        ));
        assert!(matches!(snapshot::restore(&new, b"garbage", 0), Err(SnapshotError::Parse(_))));
    }
}
