//! The hub's side of webhooks: the [`EventSink`] that puts each event of an app into the bounded
//! queue of every endpoint of that app that wants it. Never blocks: a full queue drops the
//! event and counts it.

use std::collections::HashMap;
use std::sync::Arc;

use herald_core::{App, Event, EventKind, EventSink, Receipt};
use tokio::sync::mpsc;

use super::delivery::Stamped;
use super::filter::Filter;
use super::item::Hook;
use super::metrics::AppCounters;

/// One endpoint's queue and what goes into it.
#[derive(Debug)]
pub(crate) struct Feed {
    pub(crate) filter: Filter,
    pub(crate) tx: mpsc::Sender<Stamped>,
}

/// One app's endpoints.
#[derive(Debug)]
pub(crate) struct AppFeeds {
    pub(crate) feeds: Vec<Feed>,
    pub(crate) counters: Arc<AppCounters>,
}

/// Every app's endpoints, found by app id: an app's events reach its own endpoints only.
#[derive(Debug, Default)]
pub(crate) struct WebhookSink {
    pub(crate) apps: HashMap<String, AppFeeds>,
}

impl EventSink for WebhookSink {
    fn wants(&self, app: &App, kind: EventKind) -> bool {
        self.apps.get(&app.config.id).is_some_and(|a| a.feeds.iter().any(|f| f.filter.queues(kind)))
    }

    fn emit(&self, app: &App, event: Event) {
        self.offer(app, event, tokio::time::Instant::now(), &Receipt::none());
    }
}

impl WebhookSink {
    /// Files `event`, which happened `at`, into the queue of each of the app's endpoints that
    /// wants it, each with a copy of `receipt`; a full queue drops it (counted).
    pub(crate) fn offer(&self, app: &App, event: Event, at: tokio::time::Instant, receipt: &Receipt) {
        let Some(a) = self.apps.get(&app.config.id) else { return };
        for feed in a.feeds.iter().filter(|f| f.filter.admits(&event)) {
            let hook = Hook { event: event.clone(), receipt: receipt.clone() };
            match feed.tx.try_send((at, hook)) {
                Ok(()) => AppCounters::add(&a.counters.queued, 1),
                Err(mpsc::error::TrySendError::Full(_)) => AppCounters::add(&a.counters.dropped_queue_full, 1),
                // The delivery task is gone (shutdown): nothing will send it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Events every endpoint of `app` can take now without dropping any: what a reader of a
    /// durable queue may hand over.
    pub(crate) fn room(&self, app: &App) -> usize {
        self.apps.get(&app.config.id).map_or(0, |a| a.feeds.iter().map(|f| f.tx.capacity()).min().unwrap_or(0))
    }
}

/// In a cluster, the node holding an app's webhook lease hands the app's stream from Redis here:
/// the same queues, debounce and delivery as on one node, with each event's receipt settled by
/// the endpoints.
impl herald_redis::hooks::HookConsumer for WebhookSink {
    fn wants(&self, app: &App, kind: EventKind) -> bool {
        EventSink::wants(self, app, kind)
    }

    fn room(&self, app: &App) -> usize {
        WebhookSink::room(self, app)
    }

    fn offer(&self, app: &App, event: Event, at_ms: u64, receipt: &Receipt) {
        // The debounce counts from when the event happened, on whichever node that was.
        let age = super::body::now_ms().saturating_sub(at_ms);
        let now = tokio::time::Instant::now();
        let at = now.checked_sub(std::time::Duration::from_millis(age)).unwrap_or(now);
        WebhookSink::offer(self, app, event, at, receipt);
    }
}
