//! [`Commands`]: one connection type for code that runs commands and scripts on whichever Redis
//! the node shares, a single server or a Redis Cluster.
//!
//! Both connections are cheap to clone (clones share the underlying connections) and implement
//! [`ConnectionLike`], so `cmd(..).query_async(&mut commands)`, pipelines and
//! `Script::invoke_async` work on either. On a cluster each command goes to the master of its
//! first key's slot: a script's keys must share a hash tag (for example `{app:channel}`), and
//! so must the keys of one pipeline.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// A single Redis server or a Redis Cluster, to run commands on.
#[derive(Clone)]
pub enum Commands {
    /// One Redis server (`scale_out.redis_url`).
    Single(MultiplexedConnection),
    /// A Redis Cluster (`scale_out.redis_cluster`).
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Commands::Single(_) => "Commands::Single",
            Commands::Cluster(_) => "Commands::Cluster",
        })
    }
}

impl From<MultiplexedConnection> for Commands {
    fn from(c: MultiplexedConnection) -> Commands {
        Commands::Single(c)
    }
}

impl From<ClusterConnection> for Commands {
    fn from(c: ClusterConnection) -> Commands {
        Commands::Cluster(c)
    }
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Commands::Single(c) => c.req_packed_command(cmd),
            Commands::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Commands::Single(c) => c.req_packed_commands(cmd, offset, count),
            Commands::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Commands::Single(c) => c.get_db(),
            Commands::Cluster(c) => c.get_db(),
        }
    }
}

impl Commands {
    /// The command that publishes on a control channel: `PUBLISH` on one Redis; `SPUBLISH` on a
    /// cluster, where the channel carries a hash tag and the message stays on its shard instead
    /// of going over the cluster bus to every node.
    pub(crate) fn publish(&self) -> &'static str {
        match self {
            Commands::Single(_) => "PUBLISH",
            Commands::Cluster(_) => "SPUBLISH",
        }
    }

    /// True on a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Commands::Cluster(_))
    }
}

/// Opens [`Commands`] connections to the shared Redis: one server or a cluster.
#[derive(Clone)]
pub(crate) enum Connector {
    Single(redis::Client),
    /// The command client, and the seed URLs (the control channels' client is built from them).
    Cluster(std::sync::Arc<redis::cluster::ClusterClient>, std::sync::Arc<[String]>),
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Connector::Single(_) => "Connector::Single",
            Connector::Cluster(..) => "Connector::Cluster",
        })
    }
}

impl Connector {
    /// A command client for the cluster on the seed `urls`, with short timeouts.
    ///
    /// # Errors
    /// When the client refuses the URLs.
    pub(crate) fn cluster(urls: &[String]) -> redis::RedisResult<Connector> {
        let client = redis::cluster::ClusterClientBuilder::new(urls.iter().map(String::as_str))
            .connection_timeout(crate::connect::CONNECT_TIMEOUT)
            .response_timeout(crate::connect::RESPONSE_TIMEOUT)
            .build()?;
        Ok(Connector::Cluster(client.into(), urls.into()))
    }

    /// Opens a connection (bounded by the connection timeout).
    pub(crate) async fn connect(&self) -> redis::RedisResult<Commands> {
        match self {
            Connector::Single(client) => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(crate::connect::CONNECT_TIMEOUT))
                    .set_response_timeout(Some(crate::connect::RESPONSE_TIMEOUT));
                Ok(Commands::Single(client.get_multiplexed_async_connection_with_config(&config).await?))
            }
            Connector::Cluster(client, _) => Ok(Commands::Cluster(client.get_async_connection().await?)),
        }
    }
}

impl Commands {
    /// `INFO server` of each master, with its address (`host:port`); one entry with no address
    /// on one Redis.
    pub(crate) async fn info_server(&mut self) -> redis::RedisResult<Vec<(String, String)>> {
        let info: Value = redis::cmd("INFO").arg("server").query_async(self).await?;
        match info {
            // A cluster answers every master's, by address.
            Value::Map(entries) => entries
                .into_iter()
                .map(|(addr, text)| Ok((redis::from_redis_value(addr)?, redis::from_redis_value(text)?)))
                .collect(),
            text => Ok(vec![(String::new(), redis::from_redis_value(text)?)]),
        }
    }

    /// One `SCAN` step for keys matching `pattern` on the master at `addr` (an address from
    /// [`Commands::info_server`]): a cluster's `SCAN` reads one master's keys only.
    pub(crate) async fn scan(
        &mut self,
        addr: &str,
        cursor: u64,
        pattern: &str,
    ) -> redis::RedisResult<(u64, Vec<String>)> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(500);
        match self {
            Commands::Single(c) => scan.query_async(c).await,
            Commands::Cluster(c) => {
                let (host, port) = addr
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                    .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Client, "not a master's address")))?;
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                Ok(redis::from_redis_value(c.route_command(scan, route).await?)?)
            }
        }
    }
}
