//! Pusher webhooks: each app's channel and user events POSTed, signed with the app's own key
//! and secret, to the endpoints of its `[[apps.webhooks]]` (docs/configuration.md, Webhooks).
//!
//! Two halves, so that the queue can change without the delivery changing:
//! - [`sink`]: the hub's [`EventSink`](herald_core::EventSink); puts each event into a bounded
//!   queue per endpoint (`try_send`, drops counted), never blocking the hub;
//! - [`delivery`]: one task per endpoint taking its ordered events from a queue, then
//!   [`debounce`], [`filter`], [`batch`], [`body`], [`sign`] and [`sender`], with [`retry`].
//!
//! Nothing is built for an app without endpoints, and nothing at all when no app has one: the
//! hub then keeps its default sink and builds no event.

mod batch;
mod body;
mod debounce;
mod delivery;
mod filter;
mod item;
pub(crate) mod metrics;
mod retry;
mod sender;
mod sign;
mod sink;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::AppRegistry;
use hyper::header::HeaderValue;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::delivery::Endpoint;
use self::filter::Filter;
use self::metrics::{AppCounters, WebhookMetrics};
use self::sender::{Client, Target};
use self::sink::{AppFeeds, Feed, WebhookSink};

/// Most events queued per endpoint; beyond it new events are dropped and counted, so a dead
/// endpoint under a flood holds a bounded amount of memory.
pub(crate) const QUEUE_BOUND: usize = 10_000;

/// How long a shutdown waits for what is queued to be sent.
pub(crate) const FLUSH: Duration = Duration::from_secs(5);

/// Webhooks built, not yet running: the sink for the hub, and the delivery tasks to start.
#[derive(Debug)]
pub(crate) struct Webhooks {
    sink: Arc<WebhookSink>,
    metrics: Arc<WebhookMetrics>,
    endpoints: Vec<(Endpoint, mpsc::Receiver<delivery::Stamped>)>,
}

/// An endpoint that cannot be used; validation refuses these first.
#[derive(Debug, thiserror::Error)]
#[error("apps[{app}].webhooks[{index}]: the url or a header cannot be used")]
pub(crate) struct BadEndpoint {
    app: usize,
    index: usize,
}

impl Webhooks {
    /// The webhooks of `apps`; `None` when no app has an endpoint.
    ///
    /// # Errors
    /// [`BadEndpoint`] for a URL or header that passed validation but cannot be sent to.
    pub(crate) fn build(apps: &AppRegistry) -> Result<Option<Self>, BadEndpoint> {
        let mut sink = WebhookSink { apps: HashMap::new() };
        let mut metrics = WebhookMetrics::default();
        let mut endpoints = Vec::new();
        for (a, app) in apps.iter().enumerate() {
            let config = &app.config;
            if config.webhooks.is_empty() {
                continue;
            }
            let counters = Arc::new(AppCounters::default());
            let secret: Arc<str> = Arc::from(config.secret.as_str());
            let key = HeaderValue::from_str(&config.key).map_err(|_| BadEndpoint { app: a, index: 0 })?;
            let mut feeds = Vec::new();
            for (index, hook) in config.webhooks.iter().enumerate() {
                let target = Target::new(&hook.url, &hook.headers).ok_or(BadEndpoint { app: a, index })?;
                let (tx, rx) = mpsc::channel(QUEUE_BOUND);
                let filter = Filter::new(hook);
                feeds.push(Feed { filter: filter.clone(), tx });
                let endpoint = Endpoint {
                    app: config.id.clone(),
                    url: hook.url.clone(),
                    key: key.clone(),
                    secret: Arc::clone(&secret),
                    filter,
                    client: Client::new(target),
                    window: Duration::from_millis(config.webhook_batch_ms),
                    max: config.webhook_batch_max,
                    counters: Arc::clone(&counters),
                };
                endpoints.push((endpoint, rx));
            }
            metrics.apps.push((config.id.clone(), Arc::clone(&counters)));
            sink.apps.insert(config.id.clone(), AppFeeds { feeds, counters });
        }
        if endpoints.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self { sink: Arc::new(sink), metrics: Arc::new(metrics), endpoints }))
    }

    /// The sink to install in the hub.
    pub(crate) fn sink(&self) -> Arc<dyn herald_core::EventSink> {
        Arc::clone(&self.sink) as Arc<dyn herald_core::EventSink>
    }

    /// What a cluster's webhook queue hands the events this node delivers to.
    pub(crate) fn consumer(&self) -> Arc<dyn herald_redis::hooks::HookConsumer> {
        Arc::clone(&self.sink) as Arc<dyn herald_redis::hooks::HookConsumer>
    }

    /// The counters `/metrics` shows.
    pub(crate) fn metrics(&self) -> Arc<WebhookMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Starts one delivery task per endpoint.
    pub(crate) fn start(self) -> Running {
        let stop = CancellationToken::new();
        let tasks = self
            .endpoints
            .into_iter()
            .map(|(ep, rx)| tokio::spawn(delivery::run(ep, rx, stop.clone(), FLUSH)))
            .collect();
        Running { stop, tasks }
    }
}

/// The running delivery tasks.
#[derive(Debug)]
pub(crate) struct Running {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops the tasks once they have sent what is queued, at most [`FLUSH`] (and one request's
    /// timeout) from now; whatever is left then is dropped.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let deadline = tokio::time::Instant::now() + FLUSH + sender::REQUEST_TIMEOUT;
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}
