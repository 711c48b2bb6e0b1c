//! The last event of each cache channel, kept for a TTL and replayed to new subscribers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::pusher::channel_name::ChannelName;
use tokio::time::Instant;

use crate::publication::Publication;

/// Cached publications with their expiry.
#[derive(Debug, Default)]
pub(crate) struct CacheStore {
    entries: HashMap<ChannelName, (Arc<Publication>, Instant)>,
}

impl CacheStore {
    /// Keeps `publication` as the channel's last event until `now + ttl`.
    pub(crate) fn put(&mut self, publication: Arc<Publication>, now: Instant, ttl: Duration) {
        // Sweep when the map has grown, so abandoned channels do not accumulate forever.
        if self.entries.len() >= 1024 && self.entries.len().is_power_of_two() {
            self.entries.retain(|_, (_, exp)| *exp > now);
        }
        self.entries.insert(publication.channel.clone(), (publication, now + ttl));
    }

    /// The live cached event of `channel` and its remaining TTL.
    pub(crate) fn get(&mut self, channel: &str, now: Instant) -> Option<(Arc<Publication>, Duration)> {
        let (p, exp) = self.entries.get(channel)?;
        if *exp <= now {
            self.entries.remove(channel);
            return None;
        }
        Some((Arc::clone(p), *exp - now))
    }
}
