//! What the hub takes from a backend that shares channel state across nodes.
//!
//! With shared state, this node knows its own sockets and the cluster knows the rest: the
//! backend tells the hub when a user became or stopped being a member anywhere, what a
//! channel's subscription count is across nodes, and which cache-channel events are live. The
//! hub then updates its listings and pushes the Pusher frames to its own subscribers, so a
//! member joining on one node reaches the members on every other one.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::pusher::channel_name::{Access, ChannelName};
use herald_protocol::pusher::server_msg;
use herald_protocol::ws;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::Hub;
use super::channels::Channel;
use super::presence::Presence;
use crate::app::App;
use crate::publication::Publication;
use crate::wire::Wire;

/// A presence member with a socket on this node: its user id and `user_info` JSON.
pub type LocalMember = (Box<str>, Option<Box<str>>);

/// This node's share of an app: what it contributes to the cluster's state, for a backend to
/// register again after the shared store lost it (a restarted Redis).
#[derive(Debug, Default)]
pub struct LocalSnapshot {
    /// Each channel with subscribers here: its name, its subscriptions here, and the presence
    /// members with a socket here, with their `user_info` JSON.
    pub channels: Vec<(ChannelName, usize, Vec<LocalMember>)>,
    /// Users signed in on this node.
    pub users: Vec<Box<str>>,
}

impl Hub {
    /// A user became a member of presence `channel` somewhere in the cluster: it is listed, and
    /// this node's subscribers get `pusher_internal:member_added` (except the user's own
    /// sockets, which know).
    pub fn cluster_member_added(&self, app: &App, channel: &ChannelName, user_id: &str, info: Option<Box<RawValue>>) {
        if channel.kind().access != Access::Presence {
            return;
        }
        let mut shard = self.state(app).channels.shard(channel.as_str()).write();
        let ch = shard.entry(channel.clone()).or_insert_with(Channel::new);
        let presence = ch.presence.get_or_insert_with(Presence::default);
        if !presence.cluster_add(user_id, info) {
            // Already announced here (a reload of the channel crossing an announcement).
            return;
        }
        let info = presence.iter().find(|(id, _)| *id == user_id).and_then(|(_, info)| info);
        let frame = ws::encode_text(&server_msg::member_added(channel.as_str(), user_id, info));
        for sub in ch.subscribers.values() {
            if sub.user_id.as_deref() != Some(user_id) && sub.conn.wire == Wire::Pusher {
                // A full outbox has already marked its socket for closing; nothing more to do.
                let _ = sub.conn.outbox.push(frame.clone());
            }
        }
    }

    /// The user's last socket in the cluster left presence `channel`: it leaves the listing
    /// and this node's subscribers get `pusher_internal:member_removed`.
    pub fn cluster_member_removed(&self, app: &App, channel: &ChannelName, user_id: &str) {
        let mut shard = self.state(app).channels.shard(channel.as_str()).write();
        let Some(ch) = shard.get_mut(channel.as_str()) else { return };
        let Some(presence) = ch.presence.as_mut() else { return };
        if presence.cluster_remove(user_id) {
            let frame = ws::encode_text(&server_msg::member_removed(channel.as_str(), user_id));
            ch.push_pusher(&frame);
        }
        if ch.is_idle() {
            shard.remove(channel.as_str());
        }
    }

    /// Replaces the cluster's part of a presence channel's members with `members` (at start and
    /// after the link to the other nodes came back). Subscribers here are told the difference.
    pub fn cluster_members_reset(
        &self,
        app: &App,
        channel: &ChannelName,
        members: Vec<(Box<str>, Option<Box<RawValue>>)>,
    ) {
        if channel.kind().access != Access::Presence {
            return;
        }
        let gone = {
            let shard = self.state(app).channels.shard(channel.as_str()).read();
            shard
                .get(channel.as_str())
                .and_then(|ch| ch.presence.as_ref())
                .map(|p| p.cluster_users_except(&|id| members.iter().any(|(m, _)| &**m == id)))
                .unwrap_or_default()
        };
        for user_id in gone {
            self.cluster_member_removed(app, channel, &user_id);
        }
        for (user_id, info) in members {
            let listed = {
                let shard = self.state(app).channels.shard(channel.as_str()).read();
                shard.get(channel.as_str()).and_then(|ch| ch.presence.as_ref()).is_some_and(|p| p.contains(&user_id))
            };
            if listed {
                let mut shard = self.state(app).channels.shard(channel.as_str()).write();
                if let Some(p) = shard.get_mut(channel.as_str()).and_then(|ch| ch.presence.as_mut()) {
                    p.cluster_add(&user_id, None);
                }
            } else {
                self.cluster_member_added(app, channel, &user_id, info);
            }
        }
    }

    /// The cluster's subscription count of `channel` changed: this node's subscribers get
    /// `pusher_internal:subscription_count` (when the app enables it; throttled as on one node).
    pub fn cluster_subscription_count(&self, app: &App, channel: &ChannelName, count: usize) {
        if !app.config.enable_subscription_count || channel.kind().access == Access::Presence {
            return;
        }
        let mut shard = self.state(app).channels.shard(channel.as_str()).write();
        if let Some(ch) = shard.get_mut(channel.as_str())
            && !ch.subscribers.is_empty()
        {
            ch.send_subscription_count(channel, count);
        }
    }

    /// This node's share of `app`'s state.
    pub fn local_snapshot(&self, app: &App) -> LocalSnapshot {
        let state = self.state(app);
        let mut snapshot = LocalSnapshot::default();
        for shard in state.channels.all() {
            let shard = shard.read();
            for (name, ch) in shard.iter().filter(|(_, ch)| !ch.subscribers.is_empty()) {
                let members = ch
                    .presence
                    .as_ref()
                    .map(|p| p.local_users().map(|u| (Box::from(u), p.info_of(u).map(|i| i.get().into()))).collect())
                    .unwrap_or_default();
                snapshot.channels.push((name.clone(), ch.subscribers.len(), members));
            }
        }
        snapshot.users = state.users.lock().user_ids();
        snapshot
    }

    /// Keeps `publication` as its cache channel's last event for `ttl` (an event published
    /// before this node heard it, loaded from the shared store).
    pub fn cache_put(&self, app: &App, publication: Arc<Publication>, ttl: Duration) {
        self.state(app).cache.lock().put(publication, Instant::now(), ttl);
    }
}
