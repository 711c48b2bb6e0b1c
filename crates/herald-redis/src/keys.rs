//! The Redis keys of the cluster's shared channel and user state.
//!
//! A channel's keys carry the hash tag `{app:channel}`, an app's `{app}`, so that each set of
//! keys one script touches lives on one Redis Cluster shard, and so does every set that one
//! command reads together (the nodes' channel sets of an app). The node keys (`nodes`, `lease`,
//! `reap`) carry no tag: each command on them names one key.

use std::sync::Arc;

/// Key names under one `[scale_out] prefix`.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: Arc<str>,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.into() }
    }

    fn channel_key(&self, app: &str, channel: &str, what: &str) -> String {
        format!("{}:{{{app}:{channel}}}:{what}", self.prefix)
    }

    fn app_key(&self, app: &str, what: &str) -> String {
        format!("{}:{{{app}}}:{what}", self.prefix)
    }

    /// HASH node → subscriptions of the channel on that node.
    pub(crate) fn subs(&self, app: &str, channel: &str) -> String {
        self.channel_key(app, channel, "subs")
    }

    /// HASH user → number of nodes where the user is a member of the channel.
    pub(crate) fn users(&self, app: &str, channel: &str) -> String {
        self.channel_key(app, channel, "users")
    }

    /// HASH user → `user_info` JSON.
    pub(crate) fn info(&self, app: &str, channel: &str) -> String {
        self.channel_key(app, channel, "info")
    }

    /// HASH user → 1: the channel's members with a socket on `node` (what a reaper takes back).
    pub(crate) fn node_members(&self, app: &str, channel: &str, node: &str) -> String {
        self.channel_key(app, channel, &format!("n:{node}"))
    }

    /// STRING: the channel's last cached event (cache channels), with the cache's TTL.
    pub(crate) fn cache(&self, app: &str, channel: &str) -> String {
        self.channel_key(app, channel, "cache")
    }

    /// `SCAN` pattern of every cache key of `app`.
    pub(crate) fn cache_pattern(&self, app: &str) -> String {
        format!("{}:{{{app}:*}}:cache", self.prefix)
    }

    /// SET of the channels with subscribers on `node`.
    pub(crate) fn node_channels(&self, app: &str, node: &str) -> String {
        self.app_key(app, &format!("ch:{node}"))
    }

    /// HASH user → number of nodes where the user is signed in.
    pub(crate) fn online(&self, app: &str) -> String {
        self.app_key(app, "on")
    }

    /// HASH user → 1: users signed in on `node`.
    pub(crate) fn node_online(&self, app: &str, node: &str) -> String {
        self.app_key(app, &format!("on:{node}"))
    }

    /// Pub/sub channel of the app's control messages between nodes.
    pub(crate) fn control(&self, app: &str) -> String {
        self.app_key(app, "ctl")
    }

    /// SET of node ids.
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// A node's lease: it exists while the node is alive.
    pub(crate) fn lease(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// Held by the one node reaping a dead `node`.
    pub(crate) fn reap(&self, node: &str) -> String {
        format!("{}:reap:{node}", self.prefix)
    }
}

/// HASH of a channel's history position in Redis: `epoch`, `serial`, and per node `n:{node}` the
/// last envelope sequence number sequenced (one Redis only: see `history`). Next to the app
/// `stream`, whose name carries the prefix and the app.
pub(crate) fn history_position(stream: &str, channel: &str) -> String {
    format!("{stream}:hp:{channel}")
}

/// STREAM of a channel's held publications, entry id `{serial}-0`.
pub(crate) fn history_entries(stream: &str, channel: &str) -> String {
    format!("{stream}:h:{channel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channels_keys_share_one_hash_tag() {
        let k = Keys::new("p");
        assert_eq!(k.subs("a", "presence-x"), "p:{a:presence-x}:subs");
        assert_eq!(k.node_members("a", "presence-x", "n1"), "p:{a:presence-x}:n:n1");
        assert_eq!(k.node_channels("a", "n1"), "p:{a}:ch:n1");
        assert_eq!(k.control("a"), "p:{a}:ctl");
    }
}
