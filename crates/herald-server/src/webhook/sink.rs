//! The hub's side of webhooks: the [`EventSink`] that puts each event of an app into the bounded
//! queue of every endpoint of that app that wants it. Never blocks: a full queue drops the
//! event and counts it.

use std::collections::HashMap;
use std::sync::Arc;

use herald_core::{App, Event, EventKind, EventSink};
use tokio::sync::mpsc;

use super::delivery::Stamped;
use super::filter::Filter;
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
        let Some(a) = self.apps.get(&app.config.id) else { return };
        let now = tokio::time::Instant::now();
        for feed in a.feeds.iter().filter(|f| f.filter.admits(&event)) {
            match feed.tx.try_send((now, event.clone())) {
                Ok(()) => AppCounters::add(&a.counters.queued, 1),
                Err(mpsc::error::TrySendError::Full(_)) => AppCounters::add(&a.counters.dropped_queue_full, 1),
                // The delivery task is gone (shutdown): nothing will send it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}
