//! Per-channel history: the recent publications of the channels an app configures
//! (`[[apps.history]]`), so that a client that lost its connection can ask for what it missed.
//!
//! Each channel's history has an *epoch* (a random short string, fixed for the life of that
//! history) and a *serial* (1 for its first publication, +1 per publication). A position
//! `(epoch, serial)` names one publication; a new epoch means the history a client knew is
//! gone. The ring of one channel is trimmed by count and age lazily, on append and on read:
//! there is no timer task. A channel's history outlives its last subscriber until its entries
//! expire; idle histories are dropped by a sweep that appends run now and then.
//!
//! Memory: every held publication counts its approximate size against one budget shared by all
//! apps ([`HistoryBudget`]); over it, the channel being appended to gives up its oldest entries
//! (counted as evictions). That keeps the append O(1) with no global lock.
//!
//! Locking (see `Hub::deliver` and `Hub::subscribe_recovering`): the hub appends while it holds
//! the channel shard's read lock and keeps the channel's history lock while it pushes the
//! publication to subscribers, so serials reach every subscriber in order; a subscriber takes
//! its snapshot under the shard's write lock, so no publication is half-delivered then.

mod ring;
pub mod snapshot;
mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub use ring::ChannelHistory;
pub(crate) use store::HistoryStore;

pub use crate::publication::Position;
use crate::publication::Publication;

/// Default memory budget of all histories together: 64 MiB.
pub const DEFAULT_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// Why held publications cannot be handed out from a given position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecoverError {
    /// The channel keeps no history.
    #[error("no_history")]
    NoHistory,
    /// The epoch is not the channel's (its history was dropped, or never existed here).
    #[error("unknown_epoch")]
    UnknownEpoch,
    /// Publications after the position are no longer held (trimmed by count, age or memory).
    #[error("gap")]
    Gap,
    /// The serial is beyond the channel's current one.
    #[error("ahead")]
    Ahead,
    /// The request was not a position (`recover` of the wrong shape).
    #[error("invalid_request")]
    Invalid,
    /// More was missed than the connection's outbox can take at once.
    #[error("too_large")]
    TooLarge,
}

impl RecoverError {
    /// The `reason` of `pusher:recovery_failed`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoHistory => "no_history",
            Self::UnknownEpoch => "unknown_epoch",
            Self::Gap => "gap",
            Self::Ahead => "ahead",
            Self::Invalid => "invalid_request",
            Self::TooLarge => "too_large",
        }
    }
}

/// Held publications of one channel, as handed out by a read.
#[derive(Clone, Debug)]
pub struct Held {
    /// The channel's epoch.
    pub epoch: Arc<str>,
    /// The channel's current serial (0 before its first publication).
    pub serial: u64,
    /// The publications asked for, oldest first; each carries its [`Position`].
    pub publications: Vec<Arc<Publication>>,
}

/// What a subscriber joining a channel with history learns, under the channel's lock.
#[derive(Clone, Debug)]
pub struct JoinedHistory {
    /// The channel's epoch.
    pub epoch: Arc<str>,
    /// Its current serial.
    pub serial: u64,
    /// With a recovery request: the publications after the given position, or why not.
    /// `None` when the subscriber asked for no recovery.
    pub replay: Option<Result<Vec<Arc<Publication>>, RecoverError>>,
}

/// The memory budget shared by every history of a hub, and its counters.
#[derive(Debug)]
pub struct HistoryBudget {
    limit: usize,
    used: AtomicUsize,
    evicted: AtomicU64,
    recovered: AtomicU64,
    failed: AtomicU64,
    replayed: AtomicU64,
}

impl HistoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        let zero = || AtomicU64::new(0);
        Self { limit, used: AtomicUsize::new(0), evicted: zero(), recovered: zero(), failed: zero(), replayed: zero() }
    }

    /// Counts a recovery: replayed (with how many publications) or failed.
    pub fn count_recovery(&self, result: Result<usize, RecoverError>) {
        match result {
            Ok(n) => {
                self.recovered.fetch_add(1, Ordering::Relaxed);
                self.replayed.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Recoveries `(replayed, failed)` and publications replayed, since start.
    pub fn recoveries(&self) -> (u64, u64, u64) {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        (get(&self.recovered), get(&self.failed), get(&self.replayed))
    }

    /// Bytes held now (approximate: payload sizes plus a fixed overhead per entry).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Entries dropped because the budget was full (not those trimmed by count or age).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    pub(crate) fn over(&self) -> bool {
        self.used() > self.limit
    }

    fn add(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    fn count_eviction(&self) {
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }
}

impl Default for HistoryBudget {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET_BYTES)
    }
}

/// A fresh epoch: 16 hex digits of a random u64.
pub fn new_epoch() -> Arc<str> {
    format!("{:016x}", rand::random::<u64>()).into()
}

#[cfg(test)]
mod tests;
