//! herald-bench: the load generator that measures herald side by side with its peers (Soketi,
//! Sockudo, Crossbar) on one machine.
//!
//! One generator process runs on one thread (tokio current-thread runtime, every connection a
//! local task) so it can be pinned to one core while the server under test is pinned to the
//! other. Subscribers speak Pusher (protocol 7) or WAMP v2 (`wamp.2.json`) through the sans-IO
//! WebSocket codec of `herald_protocol::ws`; Pusher publishes go through the signed HTTP API
//! over keep-alive connections. Every published payload carries its send time, and every
//! delivery's latency goes into an HDR histogram. Results are JSON lines, one per step.
//!
//! This crate measures; it never asserts timings. CI runs a seconds-long smoke of it
//! (`scripts/bench-smoke`).

pub mod cli;
pub mod clock;
pub mod compare;
pub mod error;
pub mod fleet;
pub mod payload;
pub mod procfs;
pub mod publisher;
pub mod pusher;
pub mod reference_server;
pub mod report;
pub mod scenario;
mod scratch;
pub mod stats;
pub mod target;
pub mod tls;
pub mod wamp;
pub mod ws_client;
