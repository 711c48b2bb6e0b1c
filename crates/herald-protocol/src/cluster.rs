//! What herald nodes send each other through the broker they share (the scale-out backend).
//!
//! Nodes never talk to each other directly: each publication accepted on one node travels to the
//! others as one [`Envelope`]. Only the bytes live here; which broker carries them, and how, is
//! the backend's business.

pub mod envelope;

pub use envelope::{Envelope, EnvelopeError, VERSION};
