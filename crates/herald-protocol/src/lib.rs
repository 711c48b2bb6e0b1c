//! Sans-IO wire formats of herald.
//!
//! This crate parses and encodes what travels on the wire and verifies signatures. It contains
//! no networking code, spawns nothing and never reads the clock: time is passed in. Everything
//! here is deterministic, so it is tested with table tests and fuzzed.

pub mod cluster;
pub mod espo;
mod json_text;
pub mod oro;
pub mod pusher;
pub mod wamp;
pub mod ws;
