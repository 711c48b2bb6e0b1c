//! The HTTP API's questions about channels and users, answered from Redis so that every node
//! answers the same: occupied channels, their subscription and user counts, a presence
//! channel's members, and `terminate_connections` carried to every node.

use herald_protocol::pusher::channel_name::{Access, ChannelName};
use redis::RedisError;
use tokio::sync::Mutex;

use crate::cluster::command;
use crate::commands::{Commands, Connector};
use crate::control::Control;
use crate::keys::Keys;

/// One channel across the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelCounts {
    /// The channel.
    pub name: String,
    /// Subscriptions on every node.
    pub subscription_count: usize,
    /// Distinct members, on presence channels (0 elsewhere).
    pub user_count: usize,
}

/// Redis could not answer.
#[derive(Debug, thiserror::Error)]
#[error("the shared channel state in redis cannot be read: {0}")]
pub struct QueryError(#[from] RedisError);

/// Answers the HTTP API's channel and user queries for a scaled-out node.
#[derive(Debug)]
pub struct ClusterQueries {
    connector: Connector,
    keys: Keys,
    /// One connection, opened on first use and again after it failed.
    conn: Mutex<Option<Commands>>,
}

impl ClusterQueries {
    pub(crate) fn new(connector: Connector, keys: Keys) -> Self {
        Self { connector, keys, conn: Mutex::new(None) }
    }

    async fn conn(&self) -> Result<Commands, QueryError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = &*guard {
            return Ok(c.clone());
        }
        let c = command(&self.connector).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Runs `f` on the connection; forgets the connection when it fails.
    async fn with<T>(&self, f: impl AsyncFnOnce(&mut Commands) -> Result<T, RedisError>) -> Result<T, QueryError> {
        let mut c = self.conn().await?;
        match f(&mut c).await {
            Ok(v) => Ok(v),
            Err(e) => {
                *self.conn.lock().await = None;
                Err(e.into())
            }
        }
    }

    /// Channels of `app` with subscribers on a live node whose name starts with `prefix`, sorted.
    ///
    /// # Errors
    /// [`QueryError`] when Redis cannot be read.
    pub async fn channels(&self, app: &str, prefix: &str) -> Result<Vec<ChannelCounts>, QueryError> {
        let keys = &self.keys;
        self.with(async |c| {
            let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(keys.nodes()).query_async(c).await?;
            let mut live = Vec::new();
            for n in nodes {
                let alive: bool = redis::cmd("EXISTS").arg(keys.lease(&n)).query_async(c).await?;
                if alive {
                    live.push(keys.node_channels(app, &n));
                }
            }
            if live.is_empty() {
                return Ok(Vec::new());
            }
            // The nodes' sets share the app's hash tag: one slot, so one command on a cluster too.
            let mut names: Vec<String> = redis::cmd("SUNION").arg(&live).query_async(c).await?;
            names.retain(|n| n.starts_with(prefix));
            names.sort();
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let counts = counts(keys, c, app, name).await?;
                if counts.subscription_count > 0 {
                    out.push(counts);
                }
            }
            Ok(out)
        })
        .await
    }

    /// One channel of `app`; `None` when nobody is subscribed anywhere.
    ///
    /// # Errors
    /// [`QueryError`] when Redis cannot be read.
    pub async fn channel(&self, app: &str, name: &str) -> Result<Option<ChannelCounts>, QueryError> {
        let keys = &self.keys;
        self.with(async |c| {
            let counts = counts(keys, c, app, name.to_owned()).await?;
            Ok((counts.subscription_count > 0).then_some(counts))
        })
        .await
    }

    /// The members of presence channel `name` of `app`.
    ///
    /// # Errors
    /// [`QueryError`] when Redis cannot be read.
    pub async fn users(&self, app: &str, name: &str) -> Result<Vec<String>, QueryError> {
        let key = self.keys.users(app, name);
        self.with(async |c| {
            let mut users: Vec<String> = redis::cmd("HKEYS").arg(key).query_async(c).await?;
            users.sort();
            Ok(users)
        })
        .await
    }

    /// Asks every node to close the connections of signed-in `user` of `app` (this one too).
    ///
    /// # Errors
    /// [`QueryError`] when Redis cannot be reached.
    pub async fn terminate(&self, app: &str, user: &str) -> Result<(), QueryError> {
        let msg = Control::Terminate { user: user.into() }.encode();
        let channel = self.keys.control(app);
        self.with(async |c| redis::cmd(c.publish()).arg(channel).arg(msg).query_async::<()>(c).await).await
    }
}

async fn counts(keys: &Keys, c: &mut Commands, app: &str, name: String) -> Result<ChannelCounts, RedisError> {
    let (subs, users): (Vec<usize>, usize) = redis::pipe()
        .cmd("HVALS")
        .arg(keys.subs(app, &name))
        .cmd("HLEN")
        .arg(keys.users(app, &name))
        .query_async(c)
        .await?;
    let user_count = if ChannelName::parse(&name, usize::MAX).is_ok_and(|n| n.kind().access == Access::Presence) {
        users
    } else {
        0
    };
    Ok(ChannelCounts { name, subscription_count: subs.iter().sum(), user_count })
}
