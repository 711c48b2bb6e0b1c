//! Sessions: what runs on an upgraded WebSocket, from its first frame to its close.
//!
//! One [`driver`] runs every session: it owns the socket, the timer, keep-alive, the outbox and
//! the close sequence. An adapter per protocol gives the messages their meaning without
//! touching the socket: [`pusher`], [`wamp1`] (whose policies are a plain listener's, and the
//! EspoCRM and Oro profiles' in `profile/`) and [`wamp2`]. Each maps a typed [`close::CloseReason`]
//! to its own goodbye.

pub(crate) mod close;
pub(crate) mod driver;
pub(crate) mod keepalive;
pub(crate) mod pusher;
pub(crate) mod wamp1;
pub(crate) mod wamp2;

#[cfg(test)]
mod tests;
