//! Which events an endpoint hears about: its event types and its channel name filters.
//!
//! Applied before an event is queued for the endpoint, so a flood of events the endpoint does
//! not want never takes its queue. The partner of a wanted debounced kind (the
//! `channel_occupied` that cancels a held `channel_vacated`, say) is let through too: the
//! debouncer needs it to cancel, and the endpoint's types are applied again after it.

use herald_core::app::WebhookConfig;
use herald_core::{Event, EventKind};

/// An endpoint's filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Bit `k as usize` set for each kind sent.
    kinds: u16,
    starts_with: Option<Box<str>>,
    ends_with: Option<Box<str>>,
}

fn bit(kind: EventKind) -> u16 {
    1 << EventKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// The kind whose arrival cancels a held `kind`, and the other way round.
fn partner(kind: EventKind) -> Option<EventKind> {
    match kind {
        EventKind::ChannelOccupied => Some(EventKind::ChannelVacated),
        EventKind::ChannelVacated => Some(EventKind::ChannelOccupied),
        EventKind::MemberAdded => Some(EventKind::MemberRemoved),
        EventKind::MemberRemoved => Some(EventKind::MemberAdded),
        EventKind::UserOnline => Some(EventKind::UserOffline),
        EventKind::UserOffline => Some(EventKind::UserOnline),
        _ => None,
    }
}

impl Filter {
    /// The filter a validated endpoint config describes.
    pub(crate) fn new(config: &WebhookConfig) -> Self {
        let kinds = config.kinds().into_iter().fold(0, |acc, k| acc | bit(k));
        let opt = |s: &Option<String>| s.as_deref().filter(|s| !s.is_empty()).map(Box::from);
        Self {
            kinds,
            starts_with: opt(&config.filter.channel_name_starts_with),
            ends_with: opt(&config.filter.channel_name_ends_with),
        }
    }

    /// Whether events of `kind` are sent.
    pub(crate) fn sends(&self, kind: EventKind) -> bool {
        self.kinds & bit(kind) != 0
    }

    /// Whether events of `kind` go into the endpoint's queue: sent, or needed to cancel one sent.
    pub(crate) fn queues(&self, kind: EventKind) -> bool {
        self.sends(kind) || partner(kind).is_some_and(|p| self.sends(p))
    }

    /// Whether an event on `channel` (`None`: a user event) passes the channel filters.
    pub(crate) fn channel_passes(&self, channel: Option<&str>) -> bool {
        match channel {
            None => self.starts_with.is_none() && self.ends_with.is_none(),
            Some(c) => {
                self.starts_with.as_deref().is_none_or(|p| c.starts_with(p))
                    && self.ends_with.as_deref().is_none_or(|s| c.ends_with(s))
            }
        }
    }

    /// Whether `event` goes into the endpoint's queue.
    pub(crate) fn admits(&self, event: &Event) -> bool {
        self.queues(event.kind()) && self.channel_passes(event.channel().map(|c| c.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use herald_core::app::WebhookFilter;

    use super::*;

    fn filter(types: &[&str], starts: Option<&str>, ends: Option<&str>) -> Filter {
        Filter::new(&WebhookConfig {
            url: "http://x/".into(),
            event_types: types.iter().map(|s| (*s).to_owned()).collect(),
            filter: WebhookFilter {
                channel_name_starts_with: starts.map(str::to_owned),
                channel_name_ends_with: ends.map(str::to_owned),
            },
            headers: Default::default(),
        })
    }

    #[test]
    fn no_types_means_pushers_seven() {
        let f = filter(&[], None, None);
        assert!(EventKind::ALL[..7].iter().all(|k| f.sends(*k)));
        assert!(!f.sends(EventKind::UserOnline) && !f.sends(EventKind::UserOffline));
        let f = filter(&["user_online"], None, None);
        assert!(f.sends(EventKind::UserOnline) && !f.sends(EventKind::ChannelOccupied));
        assert!(f.queues(EventKind::UserOffline), "user_offline cancels a held user_online's partner");
    }

    #[test]
    fn partners_of_wanted_kinds_are_queued_not_sent() {
        let f = filter(&["channel_vacated"], None, None);
        assert!(f.queues(EventKind::ChannelOccupied) && !f.sends(EventKind::ChannelOccupied));
        assert!(!f.queues(EventKind::ClientEvent));
    }

    #[test]
    fn channel_filters() {
        let f = filter(&[], Some("private-"), Some("-log"));
        assert!(f.channel_passes(Some("private-a-log")));
        assert!(!f.channel_passes(Some("private-a")));
        assert!(!f.channel_passes(Some("public-log")));
        assert!(!f.channel_passes(None), "user events have no channel to match");
        assert!(filter(&[], None, None).channel_passes(None));
    }
}
