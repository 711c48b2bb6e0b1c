//! What the webhooks report on `/metrics`: per app, events delivered, failed requests, events
//! dropped and events queued. Counted with relaxed atomics; labelled at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// One app's webhook counters, shared by its endpoints' queues and delivery tasks.
#[derive(Debug, Default)]
pub(crate) struct AppCounters {
    /// Events in requests an endpoint answered 2xx.
    pub(crate) sent: AtomicU64,
    /// Requests that brought no 2xx (each attempt: a retried request counts each time).
    pub(crate) failed: AtomicU64,
    /// Events dropped because an endpoint's queue was full.
    pub(crate) dropped_queue_full: AtomicU64,
    /// Events dropped after their request was retried for the whole retry period.
    pub(crate) dropped_gave_up: AtomicU64,
    /// Events dropped because the endpoint refused them (4xx, not retried).
    pub(crate) dropped_rejected: AtomicU64,
    /// Events queued or waiting in a delivery task (debounce, batch, retry), every endpoint.
    pub(crate) queued: AtomicU64,
}

impl AppCounters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: usize) {
        counter.fetch_sub(n as u64, Ordering::Relaxed);
    }
}

/// Every app with webhooks now, with its counters: apps gain and lose them while herald runs.
#[derive(Debug, Default)]
pub(crate) struct WebhookMetrics {
    apps: RwLock<BTreeMap<String, Arc<AppCounters>>>,
}

impl WebhookMetrics {
    /// The counters of app `id`: those it has, which its rebuilt endpoints carry on, or new ones.
    pub(crate) fn counters(&self, id: &str) -> Arc<AppCounters> {
        Arc::clone(self.apps.write().entry(id.to_owned()).or_default())
    }

    /// App `id` has no webhooks any more: its series leave `/metrics`.
    pub(crate) fn forget(&self, id: &str) {
        self.apps.write().remove(id);
    }

    /// Appends the webhook metrics in the Prometheus text format; nothing when no app has
    /// webhooks.
    pub(crate) fn render(&self, out: &mut String, esc: impl Fn(&str) -> String) {
        let apps: Vec<(String, Arc<AppCounters>)> =
            self.apps.read().iter().map(|(id, c)| (id.clone(), Arc::clone(c))).collect();
        if apps.is_empty() {
            return;
        }
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let name = "herald_webhooks_sent_total";
        header(out, name, "counter", "Webhook events delivered (their request answered 2xx).");
        for (id, c) in &apps {
            let _ = writeln!(out, "{name}{{app=\"{}\"}} {}", esc(id), load(&c.sent));
        }
        let name = "herald_webhooks_failed_total";
        header(out, name, "counter", "Webhook requests that brought no 2xx answer, each attempt counted.");
        for (id, c) in &apps {
            let _ = writeln!(out, "{name}{{app=\"{}\"}} {}", esc(id), load(&c.failed));
        }
        let name = "herald_webhooks_dropped_total";
        header(out, name, "counter", "Webhook events given up: queue full, retried too long, or refused (4xx).");
        for (id, c) in &apps {
            let id = esc(id);
            let _ = writeln!(out, "{name}{{app=\"{id}\",reason=\"queue_full\"}} {}", load(&c.dropped_queue_full));
            let _ = writeln!(out, "{name}{{app=\"{id}\",reason=\"retries_exhausted\"}} {}", load(&c.dropped_gave_up));
            let _ = writeln!(out, "{name}{{app=\"{id}\",reason=\"rejected\"}} {}", load(&c.dropped_rejected));
        }
        let name = "herald_webhook_queue_depth";
        header(out, name, "gauge", "Webhook events waiting for delivery, every endpoint of the app.");
        for (id, c) in &apps {
            let _ = writeln!(out, "{name}{{app=\"{}\"}} {}", esc(id), load(&c.queued));
        }
    }
}
