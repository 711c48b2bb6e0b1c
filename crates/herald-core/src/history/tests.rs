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
