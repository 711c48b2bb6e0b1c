//! Scale-out over Redis: several herald nodes share every publication through Redis pub/sub.
//!
//! [`RedisBackend`] is the hub's [`herald_core::Backend`] when a cluster is configured: every
//! publication accepted on this node (HTTP API, client events, WAMP publishes, ingress: they all
//! end in `Hub::publish`) is delivered locally as before and queued for Redis, where the other
//! nodes read it and call `Hub::deliver`. What crosses nodes is the versioned envelope of
//! `herald_protocol::cluster`; this crate only carries it. There is no cluster protocol of our
//! own: nodes never talk to each other, only to Redis.
//!
//! Each app is one Redis channel, `{prefix}:{app_id}`, subscribed once at start: every node hears
//! every publication of the app and its hub drops those nobody subscribed to locally.
//! Per-channel Redis subscriptions would follow each first subscribe and last unsubscribe, with a
//! window in which a fresh subscriber misses events, and WAMP pattern subscriptions would still
//! need the whole app; one channel per app has neither problem.
//!
//! The hub never waits for Redis: [`RedisBackend::broadcast`](herald_core::Backend::broadcast)
//! queues into a bounded channel. The `publisher` task drains it in pipelined batches and keeps
//! a failed batch to resend after reconnecting. A batch may then reach Redis twice, so envelopes
//! carry a per-node sequence number and the `subscriber` drops what it has seen (`inbound`);
//! a node drops its own envelopes by node id, and envelopes of another format version are
//! refused, never delivered.
//!
//! Channel and user state is shared too (`cluster`): each node counts its own share of every
//! channel's subscriptions and presence members, and of the app's signed-in users, in Redis; a
//! `tracker` task turns the hub's changes of this node into the cluster's with Lua scripts
//! (`script`, `keys`), emits those to the app's event sink once, and announces them on the
//! app's control channel (`control`), which the `follower` task applies to the local hub.
//! `liveness` keeps the node's lease and reaps the share of dead nodes; `queries` answers the
//! HTTP API from Redis.
//!
//! Modules, each using only those listed before it: `url` (checking and redacting the URL),
//! `state` (the link's up flags and counters), `queue` (what the hub queues for Redis), `connect`
//! (opening the connections, backoff and timings), `publication` (publication to envelope and
//! back), `inbound` (what the subscriber delivers, drops or refuses), `publisher` and
//! `subscriber` (the two tasks), `link` (spawning and stopping them) and `backend` (what the hub
//! calls, connecting at start).

mod backend;
mod cluster;
mod connect;
mod control;
mod follower;
mod inbound;
mod keys;
mod link;
mod liveness;
mod publication;
mod publisher;
mod queries;
mod queue;
mod script;
mod state;
mod subscriber;
mod tracker;
mod url;

pub use backend::RedisBackend;
pub use link::{RedisLink, RunningLink};
pub use queries::{ChannelCounts, ClusterQueries, QueryError};
pub use url::{UrlError, check_url, redact_url};
