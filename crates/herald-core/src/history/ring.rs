//! The held publications of one channel: a ring trimmed by count, age and the shared memory
//! budget, and the position its next publication gets.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::time::Instant;

use super::{Held, HistoryBudget, Position, RecoverError, new_epoch};
use crate::app::HistoryPolicy;
use crate::publication::Publication;

/// What one held entry costs beyond its payload (the `Arc`, the frames' slots, the entry).
const ENTRY_OVERHEAD: usize = 256;

#[derive(Debug)]
struct Entry {
    serial: u64,
    at: Instant,
    bytes: usize,
    publication: Arc<Publication>,
}

/// One channel's history.
#[derive(Debug)]
pub struct ChannelHistory {
    epoch: Arc<str>,
    /// The serial of the last publication appended (0: none yet in this epoch).
    serial: u64,
    policy: HistoryPolicy,
    entries: VecDeque<Entry>,
    /// When the last publication was appended (or the history was made).
    touched: Instant,
    /// Set when the store forgot this history; whoever still holds it must look again.
    pub(super) dropped: bool,
}

impl ChannelHistory {
    /// An empty history in a fresh epoch.
    pub fn new(policy: HistoryPolicy, now: Instant) -> Self {
        Self::resumed(policy, new_epoch(), 0, now)
    }

    /// An empty history continuing `epoch` after `serial` (a snapshot being loaded).
    pub fn resumed(policy: HistoryPolicy, epoch: Arc<str>, serial: u64, now: Instant) -> Self {
        Self { epoch, serial, policy, entries: VecDeque::new(), touched: now, dropped: false }
    }

    /// The channel's current position: its epoch and last serial.
    pub fn position(&self) -> (Arc<str>, u64) {
        (Arc::clone(&self.epoch), self.serial)
    }

    /// Gives `publication` its position unless it carries one already (set by a backend that
    /// sequences publications across nodes), then holds it. A position in another epoch
    /// replaces this history: the backend's sequence is the authority.
    pub fn append(&mut self, publication: &Arc<Publication>, now: Instant, budget: &HistoryBudget) {
        let serial = match publication.position() {
            None => {
                self.serial += 1;
                // Only this history's lock holder sets positions, so the slot is empty here.
                let _ = publication.set_position(Position { epoch: Arc::clone(&self.epoch), serial: self.serial });
                self.serial
            }
            Some(p) => {
                if *p.epoch != *self.epoch {
                    self.clear(budget);
                    self.epoch = Arc::clone(&p.epoch);
                    self.serial = 0;
                }
                self.serial = self.serial.max(p.serial);
                p.serial
            }
        };
        self.hold(
            Entry {
                serial,
                at: now,
                bytes: ENTRY_OVERHEAD + publication.approx_bytes(),
                publication: Arc::clone(publication),
            },
            budget,
        );
        self.touched = now;
        self.trim(now, budget);
        while budget.over() && self.entries.len() > 1 {
            self.pop(budget);
            budget.count_eviction();
        }
    }

    /// Holds an entry as loaded from a snapshot (already positioned), with its original time.
    pub fn restore(&mut self, publication: Arc<Publication>, serial: u64, at: Instant, budget: &HistoryBudget) {
        self.hold(Entry { serial, at, bytes: ENTRY_OVERHEAD + publication.approx_bytes(), publication }, budget);
        self.serial = self.serial.max(serial);
    }

    fn hold(&mut self, entry: Entry, budget: &HistoryBudget) {
        budget.add(entry.bytes);
        self.entries.push_back(entry);
    }

    /// The publications after `serial` of `epoch`, oldest first.
    ///
    /// # Errors
    /// [`RecoverError`] when they are not all held.
    pub fn after(
        &mut self,
        epoch: &str,
        serial: u64,
        now: Instant,
        budget: &HistoryBudget,
    ) -> Result<Vec<Arc<Publication>>, RecoverError> {
        self.trim(now, budget);
        if epoch != &*self.epoch {
            return Err(RecoverError::UnknownEpoch);
        }
        if serial > self.serial {
            return Err(RecoverError::Ahead);
        }
        if serial == self.serial {
            return Ok(Vec::new());
        }
        match self.entries.front() {
            Some(first) if first.serial <= serial + 1 => {}
            _ => return Err(RecoverError::Gap),
        }
        Ok(self.entries.iter().filter(|e| e.serial > serial).map(|e| Arc::clone(&e.publication)).collect())
    }

    /// Up to `limit` held publications: the newest ones, or the first ones after `after`.
    pub fn held(&mut self, after: Option<u64>, limit: usize, now: Instant, budget: &HistoryBudget) -> Held {
        self.trim(now, budget);
        let publications = match after {
            Some(s) => {
                self.entries.iter().filter(|e| e.serial > s).take(limit).map(|e| Arc::clone(&e.publication)).collect()
            }
            None => {
                let skip = self.entries.len().saturating_sub(limit);
                self.entries.iter().skip(skip).map(|e| Arc::clone(&e.publication)).collect()
            }
        };
        Held { epoch: Arc::clone(&self.epoch), serial: self.serial, publications }
    }

    /// Every held entry with its serial and time, oldest first (snapshots).
    pub fn entries(&self) -> impl Iterator<Item = (u64, Instant, &Arc<Publication>)> {
        self.entries.iter().map(|e| (e.serial, e.at, &e.publication))
    }

    /// The channel's policy.
    pub fn policy(&self) -> HistoryPolicy {
        self.policy
    }

    /// Whether nothing is held and nothing was appended for the policy's age: the history can go.
    pub(super) fn is_stale(&mut self, now: Instant, budget: &HistoryBudget) -> bool {
        self.trim(now, budget);
        self.entries.is_empty() && now.saturating_duration_since(self.touched) >= self.policy.max_age
    }

    /// Number of held publications.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn trim(&mut self, now: Instant, budget: &HistoryBudget) {
        while self.entries.len() > self.policy.max_messages {
            self.pop(budget);
        }
        while self.entries.front().is_some_and(|e| now.saturating_duration_since(e.at) >= self.policy.max_age) {
            self.pop(budget);
        }
    }

    fn pop(&mut self, budget: &HistoryBudget) {
        if let Some(e) = self.entries.pop_front() {
            budget.sub(e.bytes);
        }
    }

    /// Drops every entry, giving their bytes back.
    pub(super) fn clear(&mut self, budget: &HistoryBudget) {
        while !self.entries.is_empty() {
            self.pop(budget);
        }
    }
}
