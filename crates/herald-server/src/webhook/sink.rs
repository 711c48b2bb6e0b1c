//! The hub's side of webhooks: the [`EventSink`] that puts each event of an app into the bounded
//! queue of every endpoint of that app that wants it. Never blocks: a full queue drops the
//! event and counts it.
//!
//! The endpoints of every app sit in one map swapped whole when an app's webhooks change
//! (`arc_swap`): the hub asks [`EventSink::wants`] on every subscribe and unsubscribe, and that
//! stays a lock-free load and, for a hub whose apps have no webhooks, one relaxed atomic read.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
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
    apps: ArcSwap<HashMap<String, Arc<AppFeeds>>>,
    /// Whether `apps` has any app: read first, so a hub without webhooks pays no map load.
    any: AtomicBool,
}

impl EventSink for WebhookSink {
    fn wants(&self, app: &App, kind: EventKind) -> bool {
        let apps = self.apps.load();
        // No app has webhooks: no hashing of the app id on the subscribe path.
        !apps.is_empty() && apps.get(&app.config.id).is_some_and(|a| a.feeds.iter().any(|f| f.filter.queues(kind)))
    }

    fn emit(&self, app: &App, event: Event) {
        self.offer(app, event, tokio::time::Instant::now(), &Receipt::none());
    }
}

impl WebhookSink {
    /// Gives app `id` these endpoints from now on (`None`: none); returns those it had. Callers
    /// serialise their changes (a change reads the map, then stores its successor).
    pub(crate) fn set(&self, id: &str, feeds: Option<AppFeeds>) -> Option<Arc<AppFeeds>> {
        let mut next = HashMap::clone(&self.apps.load());
        let old = match feeds {
            Some(f) => next.insert(id.to_owned(), Arc::new(f)),
            None => next.remove(id),
        };
        self.any.store(!next.is_empty(), Ordering::Relaxed);
        self.apps.store(Arc::new(next));
        old
    }

    /// Files `event`, which happened `at`, into the queue of each of the app's endpoints that
    /// wants it, each with a copy of `receipt`; a full queue drops it (counted).
    pub(crate) fn offer(&self, app: &App, event: Event, at: tokio::time::Instant, receipt: &Receipt) {
        let apps = self.apps.load();
        let Some(a) = apps.get(&app.config.id) else { return };
        for feed in a.feeds.iter().filter(|f| f.filter.admits(&event)) {
            let hook = Hook { event: event.clone(), receipt: receipt.clone() };
            match feed.tx.try_send((at, hook)) {
                Ok(()) => AppCounters::add(&a.counters.queued, 1),
                Err(mpsc::error::TrySendError::Full(_)) => AppCounters::add(&a.counters.dropped_queue_full, 1),
                // The delivery task is gone (shutdown, or the app's endpoints were rebuilt a
                // moment ago): nothing will send it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Events every endpoint of `app` can take now without dropping any: what a reader of a
    /// durable queue may hand over.
    pub(crate) fn room(&self, app: &App) -> usize {
        self.apps.load().get(&app.config.id).map_or(0, |a| a.feeds.iter().map(|f| f.tx.capacity()).min().unwrap_or(0))
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

#[cfg(test)]
impl WebhookSink {
    /// App `id`'s endpoints now.
    pub(crate) fn of(&self, id: &str) -> Option<Arc<AppFeeds>> {
        self.apps.load().get(id).cloned()
    }
}
