//! What happens to an app's channels and users, as events for the world outside the hub: the
//! seven kinds Pusher sends as webhooks, and a signed-in user's first and last connection.
//!
//! The hub reports each change as it makes it, under the lock of the channel concerned, so the
//! changes of one channel come out in the order they happened. On one node a change of this
//! node is a change of the cluster, and the hub's [`Backend`](crate::Backend) passes it straight
//! to the app's [`EventSink`]. A backend that shares state between nodes takes the node's change
//! instead and emits the cluster's (a channel is vacated when its last subscriber on any node
//! leaves), once.

use herald_protocol::pusher::channel_name::ChannelName;

use crate::app::App;

/// The kinds of [`Event`], for sinks to say which they want before the hub builds one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `channel_occupied`.
    ChannelOccupied,
    /// `channel_vacated`.
    ChannelVacated,
    /// `member_added`.
    MemberAdded,
    /// `member_removed`.
    MemberRemoved,
    /// `client_event`.
    ClientEvent,
    /// `cache_miss`.
    CacheMiss,
    /// `subscription_count`.
    SubscriptionCount,
    /// `user_online`: a signed-in user's first connection.
    UserOnline,
    /// `user_offline`: a signed-in user's last connection closed.
    UserOffline,
}

impl EventKind {
    /// Every kind, in the order above.
    pub const ALL: [EventKind; 9] = [
        EventKind::ChannelOccupied,
        EventKind::ChannelVacated,
        EventKind::MemberAdded,
        EventKind::MemberRemoved,
        EventKind::ClientEvent,
        EventKind::CacheMiss,
        EventKind::SubscriptionCount,
        EventKind::UserOnline,
        EventKind::UserOffline,
    ];

    /// The webhook event `name` (Pusher's, and herald's own for the two user events).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::ChannelOccupied => "channel_occupied",
            EventKind::ChannelVacated => "channel_vacated",
            EventKind::MemberAdded => "member_added",
            EventKind::MemberRemoved => "member_removed",
            EventKind::ClientEvent => "client_event",
            EventKind::CacheMiss => "cache_miss",
            EventKind::SubscriptionCount => "subscription_count",
            EventKind::UserOnline => "user_online",
            EventKind::UserOffline => "user_offline",
        }
    }

    /// The kind named `name`; `None` for names no event has.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One change of an app's channels or users.
///
/// Reported by the hub, an event describes this node (the first subscriber *on this node*,
/// the count *on this node*); emitted by the backend to an [`EventSink`], it describes the
/// cluster. On one node the two are the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The channel got its first subscriber.
    ChannelOccupied {
        /// The channel.
        channel: ChannelName,
    },
    /// The channel's last subscriber left.
    ChannelVacated {
        /// The channel.
        channel: ChannelName,
    },
    /// A user's first socket joined a presence channel.
    MemberAdded {
        /// The presence channel.
        channel: ChannelName,
        /// The user.
        user_id: Box<str>,
        /// The member's `user_info` as JSON text, for a backend that lists members on other
        /// nodes (webhooks do not carry it).
        info: Option<Box<str>>,
    },
    /// A user's last socket left a presence channel.
    MemberRemoved {
        /// The presence channel.
        channel: ChannelName,
        /// The user.
        user_id: Box<str>,
    },
    /// A client sent an event on a private or presence channel.
    ClientEvent {
        /// The channel.
        channel: ChannelName,
        /// The event name (`client-…`).
        event: Box<str>,
        /// The event's `data`, as the JSON text the client sent.
        data: Box<str>,
        /// The sender's socket id.
        socket_id: Box<str>,
        /// The sender's user id, on presence channels.
        user_id: Option<Box<str>>,
    },
    /// A subscriber joined a cache channel that held no event.
    CacheMiss {
        /// The cache channel.
        channel: ChannelName,
    },
    /// The number of subscriptions of a channel changed. The hub reports it for every channel;
    /// Pusher's `subscription_count` webhook leaves presence channels out (they count members).
    SubscriptionCount {
        /// The channel.
        channel: ChannelName,
        /// Subscriptions now.
        count: usize,
    },
    /// A signed-in user's first connection.
    UserOnline {
        /// The user.
        user_id: Box<str>,
    },
    /// A signed-in user's last connection closed.
    UserOffline {
        /// The user.
        user_id: Box<str>,
    },
}

impl Event {
    /// The event's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::ChannelOccupied { .. } => EventKind::ChannelOccupied,
            Event::ChannelVacated { .. } => EventKind::ChannelVacated,
            Event::MemberAdded { .. } => EventKind::MemberAdded,
            Event::MemberRemoved { .. } => EventKind::MemberRemoved,
            Event::ClientEvent { .. } => EventKind::ClientEvent,
            Event::CacheMiss { .. } => EventKind::CacheMiss,
            Event::SubscriptionCount { .. } => EventKind::SubscriptionCount,
            Event::UserOnline { .. } => EventKind::UserOnline,
            Event::UserOffline { .. } => EventKind::UserOffline,
        }
    }

    /// The channel concerned; `None` for user events.
    pub fn channel(&self) -> Option<&ChannelName> {
        match self {
            Event::ChannelOccupied { channel }
            | Event::ChannelVacated { channel }
            | Event::MemberAdded { channel, .. }
            | Event::MemberRemoved { channel, .. }
            | Event::ClientEvent { channel, .. }
            | Event::CacheMiss { channel }
            | Event::SubscriptionCount { channel, .. } => Some(channel),
            Event::UserOnline { .. } | Event::UserOffline { .. } => None,
        }
    }
}

/// Where an app's events go (webhooks). Called under hub locks: must not block.
pub trait EventSink: Send + Sync + 'static {
    /// Whether `app` wants events of `kind`; the hub builds none it would drop.
    fn wants(&self, app: &App, kind: EventKind) -> bool;

    /// Takes one event of `app`. Must not block: queue (bounded) and return.
    fn emit(&self, app: &App, event: Event);
}

/// No webhooks: every event is dropped unbuilt.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn wants(&self, _app: &App, _kind: EventKind) -> bool {
        false
    }

    fn emit(&self, _app: &App, _event: Event) {}
}

/// Proof that an event taken from a durable queue was dealt with: delivered, refused, given up
/// after retries, filtered out or cancelled by the debounce. The queue moves past an event only
/// when every copy of its receipt was completed; a copy dropped without [`Receipt::complete`]
/// (the process stopped with the event still to send) keeps the event in the queue for whoever
/// delivers next. Events from memory carry [`Receipt::none`].
#[derive(Clone, Debug, Default)]
pub struct Receipt(Option<std::sync::Arc<Ticket>>);

/// The shared part of a receipt: what to call once every copy is gone.
pub struct Ticket {
    settle: Box<dyn Fn(bool) + Send + Sync>,
    abandoned: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket").field("abandoned", &self.abandoned).finish_non_exhaustive()
    }
}

impl Receipt {
    /// No queue behind the event: completing or dropping it does nothing.
    pub fn none() -> Self {
        Self(None)
    }

    /// A receipt whose last copy calls `settle(true)` when every copy was completed, or
    /// `settle(false)` when one was dropped uncompleted.
    pub fn new(settle: impl Fn(bool) + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(Ticket {
            settle: Box::new(settle),
            abandoned: std::sync::atomic::AtomicBool::new(false),
        })))
    }

    /// This copy's event was dealt with.
    pub fn complete(mut self) {
        // The ticket goes without marking it abandoned; the last copy settles it.
        drop(self.0.take());
    }
}

impl Drop for Receipt {
    fn drop(&mut self) {
        if let Some(ticket) = self.0.take() {
            ticket.abandoned.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        (self.settle)(!self.abandoned.load(std::sync::atomic::Ordering::Acquire));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI32, Ordering};

    use super::*;

    fn counted() -> (Receipt, Arc<AtomicI32>) {
        let result = Arc::new(AtomicI32::new(-1));
        let r = Arc::clone(&result);
        (Receipt::new(move |done| r.store(i32::from(done), Ordering::SeqCst)), result)
    }

    #[test]
    fn a_receipt_settles_when_every_copy_is_completed() {
        let (receipt, result) = counted();
        let copy = receipt.clone();
        receipt.complete();
        assert_eq!(result.load(Ordering::SeqCst), -1, "one copy is still out");
        copy.complete();
        assert_eq!(result.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_copy_dropped_uncompleted_leaves_the_event_in_the_queue() {
        let (receipt, result) = counted();
        let copy = receipt.clone();
        receipt.complete();
        drop(copy);
        assert_eq!(result.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_event_of_no_queue_has_nothing_to_settle() {
        Receipt::none().complete();
        drop(Receipt::none());
    }
}
