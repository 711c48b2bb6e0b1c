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
