//! The histories of one app, by channel, in shards so publishers on different channels rarely
//! meet on a lock. Each channel's history has its own lock, taken after the store's shard lock
//! is released (the hub holds it while it pushes a publication to subscribers).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use herald_protocol::pusher::channel_name::ChannelName;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::{ChannelHistory, HistoryBudget};
use crate::app::HistoryPolicy;

const SHARDS: usize = 16;
/// Every this many appends, one shard is swept of stale histories.
const SWEEP_EVERY: usize = 256;

type Shard = Mutex<HashMap<ChannelName, Arc<Mutex<ChannelHistory>>>>;

/// The histories of one app.
#[derive(Debug)]
pub(crate) struct HistoryStore {
    hasher: RandomState,
    shards: Box<[Shard]>,
    appends: AtomicUsize,
}

impl Default for HistoryStore {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            appends: AtomicUsize::new(0),
        }
    }
}

impl HistoryStore {
    fn shard(&self, name: &str) -> &Shard {
        &self.shards[(self.hasher.hash_one(name) as usize) & (SHARDS - 1)]
    }

    /// Runs `f` on the history of `channel`, made (in a fresh epoch) if there is none.
    pub(crate) fn with<R>(
        &self,
        channel: &ChannelName,
        policy: HistoryPolicy,
        now: Instant,
        f: impl FnOnce(&mut ChannelHistory) -> R,
    ) -> R {
        loop {
            let history = Arc::clone(
                self.shard(channel.as_str())
                    .lock()
                    .entry(channel.clone())
                    .or_insert_with(|| Arc::new(Mutex::new(ChannelHistory::new(policy, now)))),
            );
            let mut h = history.lock();
            // A sweep may have forgotten it between the two locks: look again.
            if !h.dropped {
                return f(&mut h);
            }
        }
    }

    /// Runs `f` on the history of `channel` if it has one.
    pub(crate) fn existing<R>(&self, channel: &str, f: impl FnOnce(&mut ChannelHistory) -> R) -> Option<R> {
        let history = self.shard(channel).lock().get(channel).cloned()?;
        let mut h = history.lock();
        (!h.dropped).then(|| f(&mut h))
    }

    /// Puts a history loaded from a snapshot in place of any other.
    pub(crate) fn insert(&self, channel: ChannelName, history: ChannelHistory, budget: &HistoryBudget) {
        let old = self.shard(channel.as_str()).lock().insert(channel, Arc::new(Mutex::new(history)));
        if let Some(old) = old {
            let mut h = old.lock();
            h.dropped = true;
            h.clear(budget);
        }
    }

    /// Counts an append; now and then sweeps one shard of histories with nothing left.
    pub(crate) fn appended(&self, now: Instant, budget: &HistoryBudget) {
        let n = self.appends.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(SWEEP_EVERY) {
            self.sweep_shard((n / SWEEP_EVERY) % SHARDS, now, budget);
        }
    }

    /// Drops every stale history (metrics scrapes call this, so idle apps free memory too).
    pub(crate) fn sweep(&self, now: Instant, budget: &HistoryBudget) {
        for i in 0..SHARDS {
            self.sweep_shard(i, now, budget);
        }
    }

    fn sweep_shard(&self, i: usize, now: Instant, budget: &HistoryBudget) {
        self.shards[i].lock().retain(|_, history| {
            // A history in use now is not stale; the next sweep looks at it again.
            let Some(mut h) = history.try_lock() else { return true };
            if h.is_stale(now, budget) {
                h.dropped = true;
                false
            } else {
                true
            }
        });
    }

    /// Number of channels with a history.
    pub(crate) fn channels(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Takes every history out of the store, handing each to `f` under its lock; whoever still
    /// holds one sees it dropped and makes a new one (in a fresh epoch).
    pub(crate) fn take_all(&self, budget: &HistoryBudget, mut f: impl FnMut(&ChannelName, &mut ChannelHistory)) {
        for s in &*self.shards {
            let taken = std::mem::take(&mut *s.lock());
            for (name, history) in taken {
                let mut h = history.lock();
                f(&name, &mut h);
                h.dropped = true;
                h.clear(budget);
            }
        }
    }

    /// Every history, for a snapshot.
    pub(crate) fn all(&self) -> Vec<(ChannelName, Arc<Mutex<ChannelHistory>>)> {
        let mut out = Vec::new();
        for s in &*self.shards {
            out.extend(s.lock().iter().map(|(k, v)| (k.clone(), Arc::clone(v))));
        }
        out
    }
}
