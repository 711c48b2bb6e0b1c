//! The channel index of one app: channel name -> [`Channel`], split into shards.
//!
//! A publication takes one shard's read lock while it pushes into the subscribers' outboxes;
//! (un)subscriptions take the write lock of their channel's shard only. Nothing is awaited
//! while a guard is held (the workspace denies `await_holding_lock`).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::pusher::server_msg;
use herald_protocol::ws;
use parking_lot::RwLock;
use tokio::time::Instant;

use super::presence::Presence;
use crate::conn::{Conn, ConnId};
use crate::publication::{Position, Publication};
use crate::wire::Wire;

/// Number of shards per app. A power of two well above the core count keeps two publishers on
/// different channels from meeting on one lock.
const SHARDS: usize = 16;

/// One subscribed connection.
#[derive(Debug)]
pub(crate) struct Subscriber {
    /// The connection.
    pub(crate) conn: Arc<Conn>,
    /// On presence channels: the user this socket joined as.
    pub(crate) user_id: Option<Box<str>>,
    /// Publications of this epoch up to this serial were replayed to the subscriber from the
    /// backend's shared history before this node delivered them (see `Hub::subscribe_replayed`).
    pub(crate) replayed: Option<Position>,
}

impl Subscriber {
    /// Whether `publication` reached this subscriber already, in a replay from the backend.
    pub(crate) fn already_replayed(&self, publication: &Publication) -> bool {
        match (&self.replayed, publication.position()) {
            (Some(r), Some(p)) => p.serial <= r.serial && p.epoch == r.epoch,
            _ => false,
        }
    }
}

/// One occupied channel.
#[derive(Debug)]
pub(crate) struct Channel {
    /// The WAMP v2 subscription id shared by every exact subscriber (WAMP: one subscription
    /// per topic and match policy), so one EVENT encoding serves them all.
    pub(crate) wamp_id: u64,
    /// Who receives what is published here.
    pub(crate) subscribers: HashMap<ConnId, Subscriber>,
    /// Members, on presence channels.
    pub(crate) presence: Option<Presence>,
    /// When the last `subscription_count` event went out (throttled above 100 subscribers).
    pub(crate) count_sent_at: Option<Instant>,
}

/// Above this many subscribers, `subscription_count` events go out at most every 5 s
/// (the throttle Pusher's "Events" docs describe for the hosted service).
const COUNT_THROTTLE_ABOVE: usize = 100;
const COUNT_THROTTLE: std::time::Duration = std::time::Duration::from_secs(5);

impl Channel {
    /// Queues an internal Pusher frame (member and count events) for the channel's Pusher
    /// subscribers. A full outbox has already marked its socket for closing: nothing more to do.
    pub(crate) fn push_pusher(&self, frame: &Bytes) {
        for sub in self.subscribers.values() {
            if sub.conn.wire == Wire::Pusher {
                let _ = sub.conn.outbox.push(frame.clone());
            }
        }
    }

    /// Tells the channel's Pusher subscribers its subscription count `n`, throttled on large
    /// channels.
    pub(crate) fn send_subscription_count(&mut self, name: &ChannelName, n: usize) {
        let now = Instant::now();
        if n > COUNT_THROTTLE_ABOVE
            && let Some(at) = self.count_sent_at
            && now.duration_since(at) < COUNT_THROTTLE
        {
            return;
        }
        self.count_sent_at = Some(now);
        self.push_pusher(&ws::encode_text(&server_msg::subscription_count(name.as_str(), n)));
    }

    /// Whether the channel can be forgotten: no subscriber here and no member listed (with
    /// shared state, members on other nodes keep a channel known without a subscriber).
    pub(crate) fn is_idle(&self) -> bool {
        self.subscribers.is_empty() && self.presence.as_ref().is_none_or(|p| p.count() == 0)
    }

    /// An empty channel with a fresh WAMP subscription id.
    pub(crate) fn new() -> Self {
        Self {
            wamp_id: rand::random_range(1..=(1u64 << 53)),
            subscribers: HashMap::new(),
            presence: None,
            count_sent_at: None,
        }
    }
}

/// The sharded channel index.
#[derive(Debug)]
pub(crate) struct ChannelShards {
    hasher: RandomState,
    shards: Box<[RwLock<HashMap<ChannelName, Channel>>]>,
}

impl Default for ChannelShards {
    fn default() -> Self {
        Self { hasher: RandomState::new(), shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect() }
    }
}

impl ChannelShards {
    /// The shard holding `name`.
    pub(crate) fn shard(&self, name: &str) -> &RwLock<HashMap<ChannelName, Channel>> {
        // The mask keeps the index in range; SHARDS is a power of two.
        let i = (self.hasher.hash_one(name) as usize) & (SHARDS - 1);
        &self.shards[i]
    }

    /// Every shard, for listings.
    pub(crate) fn all(&self) -> impl Iterator<Item = &RwLock<HashMap<ChannelName, Channel>>> {
        self.shards.iter()
    }
}
