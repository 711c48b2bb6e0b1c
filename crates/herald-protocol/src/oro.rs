//! OroCommerce/OroCRM's wire formats that reach herald from outside, sans-IO: the sync ticket a
//! WebSocket client presents in its query string (OroPlatform's `SyncBundle/Authentication`).
//!
//! The database lookup of the user's password hash and the clock read stay in `herald-server`
//! (`profile/oro`); splitting, the time window and the digest are here so that they are
//! deterministic and can be fuzzed (`fuzz/fuzz_targets/oro_ticket.rs`).

pub mod ticket;
