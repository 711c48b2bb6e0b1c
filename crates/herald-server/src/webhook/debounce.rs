//! Pusher's debounce of departures, sans IO: `channel_vacated`, `member_removed` and
//! `user_offline` are held for [`DELAY`]; when the channel is occupied again, the member added
//! again or the user back online before then, both the held departure and the arrival are
//! dropped, so a quick reconnect produces no pair at all.
//!
//! Everything else passes at once. What is released keeps its order among the events that
//! concern the same thing (a channel's occupancy, a member of a channel, a user): a departure
//! can only be followed there by the arrival that cancels it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use herald_core::Event;
use tokio::time::Instant;

use super::item::Item;

/// How long a departure is held (Pusher's 3 s).
pub(crate) const DELAY: Duration = Duration::from_secs(3);

/// Most departures held at once; beyond it the oldest goes out early, so memory stays bounded
/// when thousands of channels empty within the delay.
const MAX_HELD: usize = 10_000;

/// What a departure and its cancelling arrival concern.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    Channel(Box<str>),
    Member(Box<str>, Box<str>),
    User(Box<str>),
}

/// Whether an event departs (is held) or arrives (cancels a held departure) for a subject.
fn role(event: &Event) -> Option<(bool, Subject)> {
    Some(match event {
        Event::ChannelVacated { channel } => (true, Subject::Channel(channel.as_str().into())),
        Event::ChannelOccupied { channel } => (false, Subject::Channel(channel.as_str().into())),
        Event::MemberRemoved { channel, user_id } => (true, Subject::Member(channel.as_str().into(), user_id.clone())),
        Event::MemberAdded { channel, user_id, .. } => {
            (false, Subject::Member(channel.as_str().into(), user_id.clone()))
        }
        Event::UserOffline { user_id } => (true, Subject::User(user_id.clone())),
        Event::UserOnline { user_id } => (false, Subject::User(user_id.clone())),
        _ => return None,
    })
}

/// The held departures, oldest first.
#[derive(Debug)]
pub(crate) struct Debouncer<T = Event> {
    delay: Duration,
    next: u64,
    /// By arrival number: the release time and the departure.
    held: BTreeMap<u64, (Instant, T, Subject)>,
    /// The arrival number of the departure held for each subject.
    by_subject: HashMap<Subject, u64>,
}

impl<T: Item> Default for Debouncer<T> {
    fn default() -> Self {
        Self::new(DELAY)
    }
}

impl<T: Item> Debouncer<T> {
    /// A debouncer holding departures for `delay`.
    pub(crate) fn new(delay: Duration) -> Self {
        Self { delay, next: 0, held: BTreeMap::new(), by_subject: HashMap::new() }
    }

    /// Takes `event`, which happened at `now`; what may go out right away is passed to `out`, in
    /// order. A departure due by then goes first: an arrival after the delay cancels nothing.
    pub(crate) fn push(&mut self, event: T, now: Instant, out: &mut impl FnMut(T)) {
        self.release(now, out);
        match role(event.event()) {
            Some((true, subject)) => {
                if self.held.len() >= MAX_HELD
                    && let Some((n, (_, early, s))) = self.held.pop_first()
                {
                    self.forget(n, &s);
                    out(early);
                }
                let n = self.next;
                self.next += 1;
                self.by_subject.insert(subject.clone(), n);
                self.held.insert(n, (now + self.delay, event, subject));
            }
            Some((false, subject)) => match self.by_subject.remove(&subject) {
                // Back within the delay: neither the departure nor this arrival is told.
                Some(n) => {
                    if let Some((_, departure, _)) = self.held.remove(&n) {
                        departure.settle();
                    }
                    event.settle();
                }
                None => out(event),
            },
            None => out(event),
        }
    }

    /// Releases the departures due at `now`, oldest first.
    pub(crate) fn release(&mut self, now: Instant, out: &mut impl FnMut(T)) {
        while let Some(entry) = self.held.first_entry() {
            if entry.get().0 > now {
                break;
            }
            let n = *entry.key();
            let (_, event, subject) = entry.remove();
            self.forget(n, &subject);
            out(event);
        }
    }

    /// Releases every held departure now (shutdown).
    pub(crate) fn flush(&mut self, out: &mut impl FnMut(T)) {
        self.by_subject.clear();
        while let Some((_, (_, event, _))) = self.held.pop_first() {
            out(event);
        }
    }

    /// When the next held departure is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.held.first_key_value().map(|(_, (at, _, _))| *at)
    }

    /// Departures held now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Drops the subject's entry if it still points at departure `n` (not a later one).
    fn forget(&mut self, n: u64, subject: &Subject) {
        if self.by_subject.get(subject) == Some(&n) {
            self.by_subject.remove(subject);
        }
    }
}

#[cfg(test)]
mod tests {
    use herald_protocol::pusher::channel_name::ChannelName;

    use super::*;

    fn ch(name: &str) -> ChannelName {
        ChannelName::parse(name, 200).unwrap()
    }

    fn run(d: &mut Debouncer<Event>, events: Vec<Event>, now: Instant) -> Vec<Event> {
        let mut out = Vec::new();
        for e in events {
            d.push(e, now, &mut |e| out.push(e));
        }
        out
    }

    #[test]
    fn quick_reoccupation_drops_both() {
        let t0 = Instant::now();
        let mut d = Debouncer::<Event>::default();
        let a = ch("a");
        let out = run(&mut d, vec![Event::ChannelOccupied { channel: a.clone() }], t0);
        assert_eq!(out, vec![Event::ChannelOccupied { channel: a.clone() }]);
        assert!(run(&mut d, vec![Event::ChannelVacated { channel: a.clone() }], t0).is_empty());
        assert_eq!(d.deadline(), Some(t0 + DELAY));
        let t1 = t0 + Duration::from_secs(2);
        assert!(run(&mut d, vec![Event::ChannelOccupied { channel: a.clone() }], t1).is_empty());
        assert_eq!(d.len(), 0);
        let mut out = Vec::new();
        d.release(t1 + DELAY * 10, &mut |e| out.push(e));
        assert!(out.is_empty());
    }

    #[test]
    fn departure_goes_out_after_the_delay_in_order() {
        let t0 = Instant::now();
        let mut d = Debouncer::<Event>::default();
        let (a, b) = (ch("presence-a"), ch("b"));
        let removed = Event::MemberRemoved { channel: a.clone(), user_id: "u".into() };
        let vacated_a = Event::ChannelVacated { channel: a.clone() };
        let vacated_b = Event::ChannelVacated { channel: b.clone() };
        assert!(run(&mut d, vec![removed.clone(), vacated_a.clone()], t0).is_empty());
        let t1 = t0 + Duration::from_millis(10);
        assert!(run(&mut d, vec![vacated_b.clone()], t1).is_empty());
        let mut out = Vec::new();
        d.release(t0 + DELAY - Duration::from_millis(1), &mut |e| out.push(e));
        assert!(out.is_empty());
        d.release(t0 + DELAY, &mut |e| out.push(e));
        assert_eq!(out, vec![removed, vacated_a]);
        assert_eq!(d.deadline(), Some(t1 + DELAY));
        d.release(t1 + DELAY, &mut |e| out.push(e));
        assert_eq!(out.len(), 3);
        assert_eq!(out[2], vacated_b);
    }

    #[test]
    fn members_and_users_are_debounced_per_subject() {
        let t0 = Instant::now();
        let mut d = Debouncer::<Event>::default();
        let a = ch("presence-a");
        let gone = |u: &str| Event::MemberRemoved { channel: a.clone(), user_id: u.into() };
        let back = |u: &str| Event::MemberAdded { channel: a.clone(), user_id: u.into(), info: None };
        let out = run(&mut d, vec![gone("u"), back("v"), back("u")], t0);
        assert_eq!(out, vec![back("v")], "v's arrival goes out; u's pair is dropped");
        let out = run(
            &mut d,
            vec![Event::UserOffline { user_id: "u".into() }, Event::UserOnline { user_id: "u".into() }],
            t0,
        );
        assert!(out.is_empty());
        // A client event is never held.
        let ev = Event::ClientEvent {
            channel: a.clone(),
            event: "client-x".into(),
            data: "{}".into(),
            socket_id: "1.2".into(),
            user_id: None,
        };
        assert_eq!(run(&mut d, vec![ev.clone()], t0), vec![ev]);
    }

    #[test]
    fn an_arrival_after_the_delay_cancels_nothing() {
        // Both read late from a backed-up queue: what counts is when they happened.
        let t0 = Instant::now();
        let mut d = Debouncer::<Event>::default();
        let a = ch("a");
        let late = t0 + DELAY + Duration::from_millis(1);
        let out = run(&mut d, vec![Event::ChannelVacated { channel: a.clone() }], t0);
        assert!(out.is_empty());
        let out = run(&mut d, vec![Event::ChannelOccupied { channel: a.clone() }], late);
        assert_eq!(out, vec![Event::ChannelVacated { channel: a.clone() }, Event::ChannelOccupied { channel: a }]);
    }

    #[test]
    fn a_cancelled_pair_settles_both_receipts() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        use herald_core::Receipt;

        use crate::webhook::item::Hook;

        let settled = Arc::new(AtomicUsize::new(0));
        let hook = |event| {
            let s = Arc::clone(&settled);
            Hook {
                event,
                receipt: Receipt::new(move |done| {
                    if done {
                        s.fetch_add(1, Ordering::SeqCst);
                    }
                }),
            }
        };
        let t0 = Instant::now();
        let mut d = Debouncer::<Hook>::default();
        let mut out = Vec::new();
        d.push(hook(Event::ChannelVacated { channel: ch("a") }), t0, &mut |h| out.push(h));
        d.push(hook(Event::ChannelOccupied { channel: ch("a") }), t0, &mut |h| out.push(h));
        assert!(out.is_empty());
        assert_eq!(settled.load(Ordering::SeqCst), 2, "a durable queue may move past both");
    }

    #[test]
    fn held_departures_are_bounded() {
        let t0 = Instant::now();
        let mut d = Debouncer::<Event>::default();
        let mut early = 0;
        for i in 0..MAX_HELD + 5 {
            d.push(Event::ChannelVacated { channel: ch(&format!("c{i}")) }, t0, &mut |_| early += 1);
        }
        assert_eq!(d.len(), MAX_HELD);
        assert_eq!(early, 5);
        let mut flushed = 0;
        d.flush(&mut |_| flushed += 1);
        assert_eq!(flushed, MAX_HELD);
    }
}
