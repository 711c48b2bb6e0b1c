//! Pusher webhooks: each app's channel and user events POSTed, signed with the app's own key
//! and secret, to the endpoints of its `[[apps.webhooks]]` (docs/configuration.md, Webhooks).
//!
//! Two halves, so that the queue can change without the delivery changing:
//! - [`sink`]: the hub's [`EventSink`](herald_core::EventSink); puts each event into a bounded
//!   queue per endpoint (`try_send`, drops counted), never blocking the hub;
//! - [`delivery`]: one task per endpoint taking its ordered events from a queue, then
//!   [`debounce`], [`filter`], [`batch`], [`body`], [`sign`] and [`sender`], with [`retry`].
//!
//! Apps gain, change and lose webhooks while herald runs ([`Webhooks::apply`],
//! [`Webhooks::remove`], called by `apps.rs` after the hub changed): an app whose endpoints or
//! signing settings changed gets new queues and delivery tasks, and its old tasks send what they
//! had queued (tried once, within [`FLUSH`]) and end. Nothing is built for an app without
//! endpoints; with no endpoint at all the sink answers `wants` with an emptiness check, and the
//! hub builds no event.

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

use herald_core::app::{AppConfig, WebhookConfig};
use herald_core::{App, AppRegistry};
use hyper::header::HeaderValue;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::delivery::Endpoint;
use self::filter::Filter;
use self::metrics::WebhookMetrics;
use self::sender::{Client, Target};
use self::sink::{AppFeeds, Feed, WebhookSink};

/// Most events queued per endpoint; beyond it new events are dropped and counted, so a dead
/// endpoint under a flood holds a bounded amount of memory.
pub(crate) const QUEUE_BOUND: usize = 10_000;

/// How long a shutdown (or an app's change) waits for what is queued to be sent.
pub(crate) const FLUSH: Duration = Duration::from_secs(5);

/// Every app's webhooks: the hub's sink, the counters, and one delivery task per endpoint.
#[derive(Debug)]
pub(crate) struct Webhooks {
    sink: Arc<WebhookSink>,
    metrics: Arc<WebhookMetrics>,
    deliveries: Mutex<Deliveries>,
}

/// The delivery tasks, current and retiring.
#[derive(Debug)]
struct Deliveries {
    /// Per app with endpoints: what they were built from, and the stop of their tasks.
    apps: HashMap<String, (Settings, CancellationToken)>,
    /// Parent of every app's stop: the shutdown.
    stop: CancellationToken,
    /// Every delivery task, those of replaced endpoints included until they have flushed.
    tasks: TaskTracker,
}

/// What an app's endpoints are built from: a change of anything else leaves them running.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    key: String,
    secret: String,
    webhooks: Vec<WebhookConfig>,
    batch_ms: u64,
    batch_max: usize,
}

impl Settings {
    fn of(config: &AppConfig) -> Self {
        Self {
            key: config.key.clone(),
            secret: config.secret.clone(),
            webhooks: config.webhooks.clone(),
            batch_ms: config.webhook_batch_ms,
            batch_max: config.webhook_batch_max,
        }
    }
}

/// An endpoint that cannot be used; validation refuses these first.
#[derive(Debug, thiserror::Error)]
#[error("app {app:?}: webhooks[{index}]: the url or a header cannot be used")]
pub(crate) struct BadEndpoint {
    app: String,
    index: usize,
}

/// What [`Webhooks::apply`] did to an app's endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rebuilt {
    /// Its endpoints were built anew (or dropped: it has none now).
    Yes,
    /// What they are built from did not change: they run on.
    No,
}

impl Webhooks {
    /// The webhooks of `apps`, their delivery tasks running (an app without endpoints has none).
    /// Must be called within the runtime.
    ///
    /// # Errors
    /// [`BadEndpoint`] for a URL or header that passed validation but cannot be sent to.
    pub(crate) fn start(apps: &AppRegistry) -> Result<Self, BadEndpoint> {
        let stop = CancellationToken::new();
        let deliveries = Deliveries { apps: HashMap::new(), stop, tasks: TaskTracker::new() };
        let hooks = Self { sink: Arc::default(), metrics: Arc::default(), deliveries: Mutex::new(deliveries) };
        for app in apps.iter() {
            hooks.apply(app)?;
        }
        Ok(hooks)
    }

    /// Gives `app` the endpoints of its settings: those it had when what they are built from is
    /// unchanged, else new ones, from the next event on. Replaced endpoints send what they had
    /// queued, each request tried once within [`FLUSH`], then end.
    ///
    /// # Errors
    /// [`BadEndpoint`] for a URL or header that cannot be used; the app's endpoints are
    /// unchanged then.
    pub(crate) fn apply(&self, app: &App) -> Result<Rebuilt, BadEndpoint> {
        let config = &app.config;
        let settings = Settings::of(config);
        let mut d = self.deliveries.lock();
        if d.apps.get(&config.id).is_some_and(|(s, _)| *s == settings)
            || (settings.webhooks.is_empty() && !d.apps.contains_key(&config.id))
        {
            return Ok(Rebuilt::No);
        }
        if settings.webhooks.is_empty() {
            drop(d);
            self.remove(&config.id);
            return Ok(Rebuilt::Yes);
        }
        // Everything that can fail first: a refused endpoint leaves the app as it was.
        let bad = |index| BadEndpoint { app: config.id.clone(), index };
        let key = HeaderValue::from_str(&config.key).map_err(|_| bad(0))?;
        let targets = (config.webhooks.iter().enumerate())
            .map(|(i, hook)| Target::new(&hook.url, &hook.headers).ok_or_else(|| bad(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let counters = self.metrics.counters(&config.id);
        let secret: Arc<str> = Arc::from(config.secret.as_str());
        let stop = d.stop.child_token();
        let mut feeds = Vec::new();
        for (hook, target) in config.webhooks.iter().zip(targets) {
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
            d.tasks.spawn(delivery::run(endpoint, rx, stop.clone(), FLUSH));
        }
        self.sink.set(&config.id, Some(AppFeeds { feeds, counters }));
        // After the swap: the old tasks flush what reached their queues before it.
        if let Some((_, old)) = d.apps.insert(config.id.clone(), (settings, stop)) {
            old.cancel();
        }
        Ok(Rebuilt::Yes)
    }

    /// App `id` is gone: its endpoints send what they had queued (as in [`Webhooks::apply`])
    /// and end, and its counters leave `/metrics`.
    pub(crate) fn remove(&self, id: &str) {
        let mut d = self.deliveries.lock();
        let Some((_, stop)) = d.apps.remove(id) else { return };
        self.sink.set(id, None);
        self.metrics.forget(id);
        stop.cancel();
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

    /// Stops every delivery task once it has sent what is queued, at most [`FLUSH`] (and one
    /// request's timeout) from now; whatever is left then is dropped with the runtime.
    pub(crate) async fn stop(&self) {
        let tasks = {
            let d = self.deliveries.lock();
            d.stop.cancel();
            d.tasks.close();
            d.tasks.clone()
        };
        if tokio::time::timeout(FLUSH + sender::REQUEST_TIMEOUT, tasks.wait()).await.is_err() {
            tracing::warn!("webhooks: some events were not sent before stopping");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use herald_core::app::{AppConfig, WebhookConfig};
    use herald_core::{App, AppRegistry, EventKind};

    use super::{Rebuilt, Webhooks};

    fn app(webhooks: &[&str], max_connections: usize) -> Arc<App> {
        let webhooks =
            webhooks.iter().map(|u| WebhookConfig { url: (*u).into(), ..WebhookConfig::default() }).collect();
        let config = AppConfig {
            id: "1".into(),
            key: "k".into(),
            secret: "s".into(),
            webhooks,
            max_connections,
            ..AppConfig::default()
        };
        Arc::new(App::new(config))
    }

    fn metrics(hooks: &Webhooks) -> String {
        let mut out = String::new();
        hooks.metrics().render(&mut out, str::to_owned);
        out
    }

    /// The sink's map follows the app: empty at first, endpoints once it has some, new ones when
    /// they change (the old tasks end), the same ones when something else changes, none after.
    #[tokio::test]
    async fn the_sink_follows_an_apps_webhooks() {
        let none = app(&[], 0);
        let registry = AppRegistry::new(vec![none.config.clone()]).expect("apps");
        let hooks = Webhooks::start(&registry).expect("webhooks");
        let sink = hooks.sink();
        assert!(!sink.wants(&none, EventKind::ChannelOccupied));
        assert_eq!(metrics(&hooks), "", "no app with webhooks: nothing on /metrics");

        let first = app(&["http://127.0.0.1:9/a"], 0);
        assert_eq!(hooks.apply(&first).expect("apply"), Rebuilt::Yes);
        assert!(sink.wants(&none, EventKind::ChannelOccupied), "found by id, whichever version asks");
        assert!(metrics(&hooks).contains("herald_webhooks_sent_total{app=\"1\"} 0"));
        let old = hooks.sink.of("1").expect("endpoints");

        assert_eq!(hooks.apply(&app(&["http://127.0.0.1:9/a"], 10)).expect("apply"), Rebuilt::No);
        assert!(Arc::ptr_eq(&old, &hooks.sink.of("1").expect("endpoints")), "a limit's change keeps the endpoints");

        assert_eq!(hooks.apply(&app(&["http://127.0.0.1:9/b"], 10)).expect("apply"), Rebuilt::Yes);
        let new = hooks.sink.of("1").expect("endpoints");
        assert!(!Arc::ptr_eq(&old, &new));
        tokio::time::timeout(Duration::from_secs(5), async {
            while !old.feeds[0].tx.is_closed() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the replaced endpoint's task ended");
        assert!(!new.feeds[0].tx.is_closed());
        assert!(Arc::ptr_eq(&old.counters, &new.counters), "the counters carry on");

        assert_eq!(hooks.apply(&app(&[], 10)).expect("apply"), Rebuilt::Yes);
        assert!(!sink.wants(&none, EventKind::ChannelOccupied) && hooks.sink.of("1").is_none());
        assert_eq!(metrics(&hooks), "");
        hooks.apply(&first).expect("apply");
        hooks.remove("1");
        assert!(!sink.wants(&none, EventKind::ChannelOccupied));
        hooks.stop().await;
        assert!(new.feeds[0].tx.is_closed());
    }

    #[tokio::test]
    async fn an_unusable_endpoint_leaves_the_app_as_it_was() {
        let hooks = Webhooks::start(&AppRegistry::new(vec![]).expect("apps")).expect("webhooks");
        let good = app(&["http://127.0.0.1:9/a"], 0);
        hooks.apply(&good).expect("apply");
        let bad = app(&["http://127.0.0.1:9/a", "mailto:x"], 0);
        let err = hooks.apply(&bad).expect_err("refused");
        assert!(err.to_string().contains("webhooks[1]"), "{err}");
        assert_eq!(hooks.sink.of("1").expect("endpoints").feeds.len(), 1);
        hooks.stop().await;
    }

    /// What the sink costs a hub whose apps have no webhooks: subscribe/unsubscribe churn (each
    /// asks `wants` for the occupied, vacated and count events) on a hub with no sink and on one
    /// with the empty webhook sink, in alternating rounds. A measurement, not a check:
    /// `cargo test --release -p herald-server --lib -- --ignored --nocapture subscribe_churn`.
    #[test]
    #[ignore = "a measurement; run it in release"]
    #[expect(clippy::disallowed_types, reason = "wall-clock time of a measurement; no clock is paused here")]
    fn subscribe_churn_with_the_empty_sink() {
        use herald_core::backend::LocalBackend;
        use herald_core::outbox::OutboxLimits;
        use herald_core::wire::Wire;
        use herald_core::{EventSink, Hub};
        use herald_protocol::pusher::channel_name::ChannelName;

        let config = AppConfig { id: "1".into(), key: "k".into(), secret: "s".into(), ..AppConfig::default() };
        let hub = |sink: Option<Arc<dyn EventSink>>| {
            let apps = AppRegistry::new(vec![config.clone()]).expect("apps");
            let hub = Hub::new(apps, Arc::new(LocalBackend), OutboxLimits::default());
            match sink {
                Some(s) => hub.with_events(s),
                None => hub,
            }
        };
        let empty = Webhooks::start(&AppRegistry::new(vec![]).expect("apps")).expect("webhooks");
        // Two hubs without a sink: their difference is what two identical hubs differ by.
        let hubs =
            [("no sink", hub(None)), ("no sink, again", hub(None)), ("empty webhook sink", hub(Some(empty.sink())))];
        let channels: Vec<ChannelName> =
            (0..1000).map(|i| ChannelName::parse(&format!("room-{i}"), 200).expect("name")).collect();
        let mut best = [Duration::MAX; 3];
        for round in 0..30 {
            // A different hub first each round: none gains from a warmed cache.
            for i in [round % 3, (round + 1) % 3, (round + 2) % 3] {
                let hub = &hubs[i].1;
                let app = hub.app_by_id("1").expect("app");
                let conns: Vec<_> = (0..50).map(|_| hub.connect(Wire::Pusher)).collect();
                let started = std::time::Instant::now();
                for conn in &conns {
                    for ch in &channels {
                        hub.subscribe(&app, conn, ch, None, |_| {}).expect("subscribed");
                    }
                }
                for conn in &conns {
                    for ch in &channels {
                        hub.unsubscribe(&app, conn, ch);
                    }
                }
                let took = started.elapsed();
                conns.iter().for_each(|c| hub.disconnect(c));
                if round > 0 {
                    best[i] = best[i].min(took);
                }
            }
        }
        for (i, (name, _)) in hubs.iter().enumerate() {
            let per_op = best[i].as_nanos() as f64 / 100_000.0;
            println!(
                "{name}: best of 29 rounds {:?} for 50 000 subscribes + 50 000 unsubscribes, {per_op:.1} ns per operation",
                best[i]
            );
        }
    }
}
