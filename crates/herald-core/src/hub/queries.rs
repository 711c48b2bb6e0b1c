//! What the HTTP API asks the hub about one node's channels: occupancy, members and cached
//! events. Listings walk every shard: for API requests and metrics, not hot paths.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::pusher::channel_name::ChannelName;
use tokio::time::Instant;

use super::Hub;
use super::channels::Channel;
use super::presence::Presence;
use crate::app::App;
use crate::publication::Publication;

/// Occupancy of one channel, for the HTTP API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSummary {
    /// The channel.
    pub name: ChannelName,
    /// Subscribed connections.
    pub subscription_count: usize,
    /// Distinct users, on presence channels.
    pub user_count: Option<usize>,
}

impl Hub {
    /// Occupied channels whose name starts with `prefix`.
    pub fn channels(&self, app: &App, prefix: &str) -> Vec<ChannelSummary> {
        let mut out = Vec::new();
        for shard in self.state(app).channels.all() {
            let shard = shard.read();
            out.extend(
                shard
                    .iter()
                    .filter(|(name, ch)| !ch.subscribers.is_empty() && name.as_str().starts_with(prefix))
                    .map(|(name, ch)| summary(name, ch)),
            );
        }
        out.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        out
    }

    /// Occupancy of one channel; `None` when nobody is subscribed.
    pub fn channel(&self, app: &App, name: &str) -> Option<ChannelSummary> {
        let shard = self.state(app).channels.shard(name).read();
        shard.get_key_value(name).filter(|(_, ch)| !ch.subscribers.is_empty()).map(|(n, ch)| summary(n, ch))
    }

    /// User ids present in a presence channel (empty when unoccupied).
    pub fn presence_users(&self, app: &App, name: &str) -> Vec<String> {
        let shard = self.state(app).channels.shard(name).read();
        shard
            .get(name)
            .and_then(|ch| ch.presence.as_ref())
            .map(|p| p.iter().map(|(id, _)| id.to_owned()).collect())
            .unwrap_or_default()
    }

    /// The live cached event of a cache channel and its remaining TTL.
    pub fn cached(&self, app: &App, name: &str) -> Option<(Arc<Publication>, Duration)> {
        self.state(app).cache.lock().get(name, Instant::now())
    }
}

fn summary(name: &ChannelName, ch: &Channel) -> ChannelSummary {
    ChannelSummary {
        name: name.clone(),
        subscription_count: ch.subscribers.len(),
        user_count: ch.presence.as_ref().map(Presence::count),
    }
}
