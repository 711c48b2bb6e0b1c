//! One client connection as the hub sees it: an id, the wire format it speaks and its outbox.
//!
//! The socket itself belongs to its owner task in `herald-server`; the hub only holds
//! `Arc<Conn>` handles and talks to the socket through the [`Outbox`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::outbox::{Outbox, OutboxLimits};
// Declared in `wire`, below the outbox; re-exported so `herald_core::conn::Wire` keeps working.
pub use crate::wire::Wire;

/// Process-unique connection number, used as the key of subscriber maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// The Pusher `socket_id`: `<node prefix>.<connection number>`, matching `\d+\.\d+`.
///
/// The counter makes it unique within a process; the random prefix drawn at start-up keeps ids of
/// different nodes (or of a restarted node) apart, which is what `socket_id` exclusion needs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SocketId(Box<str>);

impl SocketId {
    /// The id as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hands out connection ids and socket ids.
#[derive(Debug)]
pub struct ConnIds {
    prefix: u32,
    next: AtomicU64,
}

impl ConnIds {
    /// A generator with a random node prefix.
    pub fn new() -> Self {
        Self { prefix: rand::random_range(1..1_000_000_000), next: AtomicU64::new(1) }
    }

    /// The next connection id and its socket id.
    pub fn next(&self) -> (ConnId, SocketId) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (ConnId(n), SocketId(format!("{}.{n}", self.prefix).into_boxed_str()))
    }
}

impl Default for ConnIds {
    fn default() -> Self {
        Self::new()
    }
}

/// A connection's handle, shared by the hub's indexes and the owner task.
#[derive(Debug)]
pub struct Conn {
    /// Key in subscriber maps.
    pub id: ConnId,
    /// The Pusher socket id (also used for publisher exclusion).
    pub socket_id: SocketId,
    /// What the connection speaks.
    pub wire: Wire,
    /// The WAMP session id: random in `[1, 2^53]` as WAMP requires; v1 sends it as a string.
    pub session: u64,
    /// Frames waiting for the owner task to write them.
    pub outbox: Outbox,
    /// The user this connection signed in as (`pusher:signin`), if any.
    user: Mutex<Option<Box<str>>>,
}

impl Conn {
    /// A new handle with an empty outbox.
    pub fn new(id: ConnId, socket_id: SocketId, wire: Wire, limits: OutboxLimits) -> Self {
        let session = rand::random_range(1..=(1u64 << 53));
        Self { id, socket_id, wire, session, outbox: Outbox::new(limits), user: Mutex::new(None) }
    }

    /// The signed-in user id, if the connection signed in.
    pub fn user_id(&self) -> Option<Box<str>> {
        self.user.lock().clone()
    }

    /// Binds the connection to a user. Returns false when it is already bound to another one.
    pub fn bind_user(&self, user_id: &str) -> bool {
        let mut u = self.user.lock();
        match u.as_deref() {
            Some(existing) => existing == user_id,
            None => {
                *u = Some(user_id.into());
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Conn;

    /// Every connection holds one `Conn` behind an `Arc` (16 bytes of counts): at most 144 bytes
    /// keeps it in the 160-byte allocation class instead of the 192-byte one.
    #[test]
    fn a_connection_handle_stays_in_its_allocation_class() {
        assert!(size_of::<Conn>() <= 144, "Conn is {} bytes", size_of::<Conn>());
    }
}
