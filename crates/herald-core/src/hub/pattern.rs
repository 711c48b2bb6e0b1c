//! WAMP v2 pattern-based subscriptions (prefix and wildcard), per app.
//!
//! They cannot live in the channel index: one pattern matches many channels. Publications scan
//! this list only when it is non-empty; each matching pattern encodes the event once per wire
//! format (its EVENT names the concrete topic) and shares those bytes among its subscribers.

use std::collections::HashMap;
use std::sync::Arc;

use herald_protocol::wamp::uri::MatchPolicy;

use crate::conn::{Conn, ConnId};

/// One pattern subscription and its sessions.
#[derive(Debug)]
pub(crate) struct PatternSub {
    /// `prefix` or `wildcard`.
    pub(crate) policy: MatchPolicy,
    /// The pattern URI.
    pub(crate) pattern: Box<str>,
    /// The WAMP subscription id shared by its sessions.
    pub(crate) id: u64,
    /// Who subscribed.
    pub(crate) subscribers: HashMap<ConnId, Arc<Conn>>,
}

/// Every pattern subscription of an app.
#[derive(Debug, Default)]
pub(crate) struct Patterns {
    pub(crate) subs: Vec<PatternSub>,
}

impl Patterns {
    /// Adds `conn` to the subscription for (`policy`, `pattern`), creating it if needed; returns
    /// its id.
    pub(crate) fn subscribe(&mut self, conn: &Arc<Conn>, policy: MatchPolicy, pattern: &str) -> u64 {
        if let Some(sub) = self.subs.iter_mut().find(|s| s.policy == policy && &*s.pattern == pattern) {
            sub.subscribers.insert(conn.id, Arc::clone(conn));
            return sub.id;
        }
        let id = rand::random_range(1..=(1u64 << 53));
        let mut subscribers = HashMap::new();
        subscribers.insert(conn.id, Arc::clone(conn));
        self.subs.push(PatternSub { policy, pattern: pattern.into(), id, subscribers });
        id
    }

    /// Removes `conn` from subscription `id`; false when it was not in it.
    pub(crate) fn unsubscribe(&mut self, conn: ConnId, id: u64) -> bool {
        let Some(i) = self.subs.iter().position(|s| s.id == id) else { return false };
        let removed = self.subs[i].subscribers.remove(&conn).is_some();
        if self.subs[i].subscribers.is_empty() {
            self.subs.swap_remove(i);
        }
        removed
    }
}
