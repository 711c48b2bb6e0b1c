//! The hub's side of channel history: holding what is published on channels with history,
//! handing it to recovering subscribers, and reading it for other callers (WAMP event history,
//! snapshots, metrics).

use std::sync::Arc;

use herald_protocol::pusher::channel_name::ChannelName;
use tokio::time::Instant;

use super::Hub;
use super::app_state::AppState;
use crate::app::{App, history::policy_for};
use crate::history::{ChannelHistory, Held, HistoryBudget, JoinedHistory, RecoverError};
use crate::publication::Publication;

/// What a hub's histories hold, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistoryTotals {
    /// Approximate bytes held across apps.
    pub bytes: usize,
    /// Channels with a history across apps.
    pub channels: usize,
    /// Entries evicted because the memory budget was full.
    pub evicted: u64,
    /// Recoveries that replayed what was missed.
    pub recovered: u64,
    /// Recoveries that failed (`pusher:recovery_failed`).
    pub failed: u64,
    /// Publications replayed by recoveries.
    pub replayed: u64,
}

impl Hub {
    /// Holds `publication` when its channel has history, calling `fan_out` under the channel's
    /// history lock; false (and `fan_out` not called) when the channel keeps no history.
    pub(super) fn append_to_history(
        &self,
        app: &App,
        state: &AppState,
        publication: &Arc<Publication>,
        fan_out: impl FnOnce(),
    ) -> bool {
        let channel = &publication.channel;
        let Some(policy) = policy_for(&app.config.history, channel.as_str()) else { return false };
        let now = Instant::now();
        state.history.with(channel, policy, now, |h| {
            h.append(publication, now, &self.history_budget);
            fan_out();
        });
        state.history.appended(now, &self.history_budget);
        true
    }

    /// The history part of a subscriber's acknowledgement; called under the channel shard's
    /// write lock, so no publication of the channel is being delivered meanwhile.
    pub(super) fn joined_history(
        &self,
        app: &App,
        state: &AppState,
        channel: &ChannelName,
        recover: Option<(&str, u64)>,
    ) -> Option<JoinedHistory> {
        let policy = policy_for(&app.config.history, channel.as_str())?;
        let now = Instant::now();
        let limits = self.outbox_limits;
        Some(state.history.with(channel, policy, now, |h| {
            let replay = recover.map(|(epoch, serial)| {
                let replay = h.after(epoch, serial, now, &self.history_budget)?;
                // A replay the outbox cannot take would close the socket as a slow consumer,
                // and the client would reconnect and ask again: refuse it up front.
                let bytes: usize = replay.iter().map(|p| p.approx_bytes() + 64).sum();
                if replay.len() > limits.max_frames / 2 || bytes > limits.max_bytes / 2 {
                    return Err(RecoverError::TooLarge);
                }
                Ok(replay)
            });
            if let Some(r) = &replay {
                self.history_budget.count_recovery(r.as_ref().map(Vec::len).map_err(|e| *e));
            }
            let (epoch, serial) = h.position();
            JoinedHistory { epoch, serial, replay }
        }))
    }

    /// Whether `channel` of `app` keeps a history.
    pub fn has_history(&self, app: &App, channel: &str) -> bool {
        policy_for(&app.config.history, channel).is_some()
    }

    /// Up to `limit` held publications of `channel`: the newest ones when `after` is `None`,
    /// else the first ones with a serial above `after`; `None` when the channel has no
    /// history here (not configured, or nothing held and expired).
    ///
    /// A read does not order itself with concurrent publications: a publication delivered
    /// while the read runs may or may not be in it.
    pub fn history(&self, app: &App, channel: &str, after: Option<u64>, limit: usize) -> Option<Held> {
        policy_for(&app.config.history, channel)?;
        let now = Instant::now();
        self.state(app).history.existing(channel, |h| h.held(after, limit, now, &self.history_budget))
    }

    /// Every held publication of `channel` after position `(epoch, serial)`, oldest first.
    ///
    /// # Errors
    /// [`RecoverError`] when they are not all held.
    pub fn history_after(
        &self,
        app: &App,
        channel: &str,
        epoch: &str,
        serial: u64,
    ) -> Result<Vec<Arc<Publication>>, RecoverError> {
        policy_for(&app.config.history, channel).ok_or(RecoverError::NoHistory)?;
        let now = Instant::now();
        self.state(app)
            .history
            .existing(channel, |h| h.after(epoch, serial, now, &self.history_budget))
            .unwrap_or(Err(RecoverError::UnknownEpoch))
    }

    /// Totals for metrics; drops the histories that have expired on the way.
    pub fn history_totals(&self) -> HistoryTotals {
        let now = Instant::now();
        let mut channels = 0;
        for app in self.apps().iter() {
            let store = &self.state(app).history;
            store.sweep(now, &self.history_budget);
            channels += store.channels();
        }
        let b = &self.history_budget;
        let (recovered, failed, replayed) = b.recoveries();
        HistoryTotals { bytes: b.used(), channels, evicted: b.evicted(), recovered, failed, replayed }
    }

    /// The budget every history counts against.
    pub fn history_budget(&self) -> &HistoryBudget {
        &self.history_budget
    }

    /// Every history of `app`, each under its own lock while `f` reads it (snapshots).
    pub fn each_history(&self, app: &App, mut f: impl FnMut(&ChannelName, &ChannelHistory)) {
        for (name, history) in self.state(app).history.all() {
            f(&name, &history.lock());
        }
    }

    /// Takes every history of `app` out of the hub, each handed to `f` under its lock
    /// (snapshots: see `history::snapshot`).
    pub fn take_histories(&self, app: &App, f: impl FnMut(&ChannelName, &mut ChannelHistory)) {
        self.state(app).history.take_all(&self.history_budget, f);
    }

    /// Puts `history` (loaded from a snapshot) in place for `channel` of `app`.
    pub fn restore_history(&self, app: &App, channel: ChannelName, history: ChannelHistory) {
        self.state(app).history.insert(channel, history, &self.history_budget);
    }
}

#[cfg(test)]
mod tests;
