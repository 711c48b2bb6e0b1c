//! Scale-out over Redis: several herald nodes share every publication through Redis streams.
//!
//! [`RedisBackend`] is the hub's [`herald_core::Backend`] when a cluster is configured: every
//! publication accepted on this node (HTTP API, client events, WAMP publishes, ingress: they all
//! end in `Hub::publish`) is delivered locally as before and queued for Redis, where the other
//! nodes read it and call `Hub::deliver`. What crosses nodes is the versioned envelope of
//! `herald_protocol::cluster`; this crate only carries it. There is no cluster protocol of our
//! own: nodes never talk to each other, only to Redis.
//!
//! Each app is one Redis stream, `{prefix}:{app_id}`, read by every node: every node gets every
//! publication of the app and its hub drops those nobody subscribed to locally. Per-channel
//! streams would follow each first subscribe and last unsubscribe, and WAMP pattern subscriptions
//! would still need the whole app; one stream per app has neither problem.
//!
//! Why a stream and not pub/sub: pub/sub keeps nothing for a subscriber that is reconnecting, so a
//! node whose link dropped for a moment missed what was published meanwhile. A stream is one
//! ordered log: the `subscriber` task (the reader) keeps, per stream, the id of the last entry it
//! delivered and reads after it with `XREAD BLOCK`; after a reconnect it resumes from there, with
//! no gap detection of its own. The log is bounded: the `publisher` appends with
//! `XADD MAXLEN ~` (entries) and trims each batch's streams with `XTRIM MINID ~` (age, the
//! replay window). `cursor` decides, without I/O, where a reader resumes from what `XINFO STREAM`
//! says: at the end for a fresh node (no history to its clients), after its last entry within the
//! window, with a reported gap when entries it never read were trimmed (counted with the
//! stream's `entries-added`), and at the start of a stream that is gone or behind its cursor (a
//! Redis restarted empty; waiting for ids past the old ones would never end). An `XADD` costs
//! Redis about twice a `PUBLISH` (0.6-0.7 against 1.0-1.6 million/s pipelined on one machine),
//! far above what a node publishes.
//!
//! A Redis that dies right after acknowledging an entry may not have handed it to every reader;
//! the publisher, having seen the acknowledgement, would not send it again. So it keeps the
//! envelopes of the last second (`acked`) and appends them again when the link comes back to a
//! new Redis instance (another `run_id`); readers drop the copies they had.
//!
//! The hub never waits for Redis: [`RedisBackend::broadcast`](herald_core::Backend::broadcast)
//! queues into a bounded channel. The `publisher` task drains it in pipelined batches and keeps
//! a failed batch to resend after reconnecting. A batch may then reach Redis twice, so envelopes
//! carry a per-node sequence number and the reader drops what it has seen (`inbound`);
//! a node drops its own envelopes by node id, and envelopes of another format version are
//! refused, never delivered.
//!
//! Channels with history (`[[apps.history]]`, one Redis only) are sequenced by Redis: the
//! publisher runs `history.lua` for each of their publications, which gives it the channel's
//! epoch and next serial, appends it positioned to the app stream and keeps it in the channel's
//! capped history stream. The publishing node does not deliver it first ([`Backend::sequences`](
//! herald_core::Backend::sequences)): every node delivers it as it reads it back, so all agree on
//! one order and one serial. `history` reads a channel's history back for a recovering client
//! whose gap a node does not hold in memory.
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
//! (opening the command connection, backoff and timings), `publication` (publication to envelope
//! and back), `cursor` (where a reader resumes), `stream` (the stream commands and answers),
//! `acked` (what a new Redis instance gets again), `inbound` (what the reader delivers, drops or
//! refuses), `publisher` and `subscriber` (the two tasks; `subscriber` also opens the reader
//! connection), `link` (spawning and stopping them) and `backend` (what the hub calls,
//! connecting at start). `sharded` is the Redis Cluster mode (each app's channels over shards
//! with sharded pub/sub, filled from per-shard streams; see its docs), spawned by `link` in
//! place of both tasks; `commands` is [`Commands`], one connection type over a single Redis or a
//! cluster for code running its own commands and scripts.

mod acked;
mod backend;
mod cluster;
mod commands;
mod connect;
mod control;
mod cursor;
mod follower;
mod history;
pub mod hooks;
mod inbound;
mod keys;
mod link;
mod liveness;
mod publication;
mod publisher;
mod queries;
mod queue;
mod script;
mod sharded;
mod state;
mod stream;
mod subscriber;
mod tracker;
mod url;

pub use backend::RedisBackend;
pub use commands::Commands;
pub use link::{RedisLink, RunningLink};
pub use queries::{ChannelCounts, ClusterQueries, QueryError};
pub use stream::DEFAULT_REPLAY_WINDOW;
pub use url::{UrlError, check_url, redact_url};
