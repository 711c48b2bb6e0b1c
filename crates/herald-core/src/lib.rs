//! herald's domain: apps, connections, channels and the hub that fans publications out.
//!
//! This crate knows nothing of sockets, HTTP, Redis or ZeroMQ. Transport adapters in
//! `herald-server` turn frames into hub operations; every publication, whatever its source,
//! ends in [`Hub::publish`], which encodes it once per wire format and pushes the shared bytes
//! into each subscriber's bounded [`Outbox`].
//!
//! An [`App`] is settings, limits and counters. What changes while apps run belongs to the
//! [`Hub`], under `hub/`: per app, its channels with their presence members, signed-in users,
//! cached events, WAMP pattern subscriptions and dealer.
//!
//! Imports run one way, down this list: `hub`; `history`; `backend`; `events`; `app`; `authorize` and `publication`;
//! `conn`; `outbox`; `stats`; `wire`. `wire`, `origin` and `rate` need nothing of the crate.

pub mod app;
pub mod authorize;
pub mod backend;
pub mod conn;
pub mod events;
pub mod history;
pub mod hub;
pub mod origin;
pub mod outbox;
pub mod publication;
pub mod rate;
pub mod stats;
pub mod wire;

pub use app::{App, AppConfig, AppRegistry};
pub use backend::{Backend, LocalBackend};
pub use conn::{Conn, ConnId, SocketId};
pub use events::{Event, EventKind, EventSink, NoEvents, Receipt};
pub use hub::Hub;
pub use outbox::{CloseRequest, Drained, Outbox, OutboxLimits};
pub use publication::{Origin, Position, Publication, PublicationData, WampFilter};
pub use wire::Wire;
