//! Where the edge finds an app by key or id: the hub first (the file's apps always win), then,
//! with `[app_store]`, a negative cache and the table. Apps read from the table are added to the
//! hub, read again every `cache_ttl_secs` (one query for all of them) and, on PostgreSQL, at
//! once when a NOTIFY names them; a row that was deleted removes its app (its connections are
//! closed with 4001), a row disabled closes them with 4003 (the hub does both).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use herald_core::rate::TokenBucket;
use herald_core::{App, AppConfig};
use parking_lot::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{By, Row, Store, StoreMetrics, row};
use crate::apps::Apps;
use crate::config::AppStoreSettings;

/// Most unknown keys and ids remembered at once: a client trying random keys must not grow
/// the cache without bound (past it, unknown keys are queried until entries expire).
const MAX_NEGATIVE: usize = 10_000;
/// Longest key or id looked up in the table; longer ones are unknown without a query.
const MAX_LOOKUP_LEN: usize = 200;
/// Notifications waiting for the directory; more are dropped (the periodic refresh catches up).
const NOTIFY_QUEUE: usize = 256;

/// Held while the table is asked about one key or id.
type Gate = Arc<tokio::sync::Mutex<()>>;

/// Finds apps for the edge; see the module documentation.
#[derive(Debug)]
pub(crate) struct AppDirectory {
    /// The hub's apps; a row's change goes through them, so its webhooks follow.
    apps: Arc<Apps>,
    store: Option<Store>,
    settings: Option<AppStoreSettings>,
    /// The apps read from the table, by id, as last read (to tell a changed row from the same).
    /// Every other app of the hub is the config file's or a profile's, and wins over a row.
    loaded: Mutex<HashMap<String, AppConfig>>,
    /// Keys and ids the table did not have (or whose lookup failed), until when.
    negative: Mutex<HashMap<(By, String), Instant>>,
    /// `max_lookups_per_second`, across clients; `None`: no bound.
    lookups: Option<Mutex<TokenBucket>>,
    /// One gate per key or id being looked up: concurrent misses for it share one query.
    inflight: Mutex<HashMap<(By, String), Gate>>,
    /// Lookup outcomes, for `/metrics`.
    pub(crate) metrics: Arc<StoreMetrics>,
}

impl AppDirectory {
    /// The directory of `hub`'s apps, with the table `settings` names when there is one.
    pub(crate) fn new(apps: Arc<Apps>, settings: Option<&AppStoreSettings>) -> Self {
        Self {
            store: settings.map(Store::new),
            settings: settings.cloned(),
            apps,
            loaded: Mutex::default(),
            negative: Mutex::default(),
            lookups: settings
                .map(|s| s.max_lookups_per_second)
                .filter(|n| *n > 0)
                .map(|n| Mutex::new(TokenBucket::per_second(n))),
            inflight: Mutex::default(),
            metrics: Arc::default(),
        }
    }

    /// Whether apps can come from a table: without one, a hub miss is final.
    pub(crate) fn has_store(&self) -> bool {
        self.store.is_some()
    }

    /// The app with this key: the hub's, else the table's.
    pub(crate) async fn by_key(&self, key: &str) -> Option<Arc<App>> {
        match self.apps.hub().app_by_key(key) {
            Some(app) => Some(app),
            None => self.miss(By::Key, key).await,
        }
    }

    /// The app with this id: the hub's, else the table's.
    pub(crate) async fn by_id(&self, id: &str) -> Option<Arc<App>> {
        match self.apps.hub().app_by_id(id) {
            Some(app) => Some(app),
            None => self.miss(By::Id, id).await,
        }
    }

    /// Before a request is routed: when its path names an app the hub does not have (a
    /// WebSocket `/app/{key}`, an HTTP transport `/pusher/app/{key}/…`, an event stream
    /// `GET /apps/{key}/events`, an HTTP API `/apps/{id}/…`), looks it up in the table so the
    /// handlers' own (synchronous) hub lookups find it. The file's apps never reach the table.
    pub(crate) async fn prepare(&self, method: &hyper::Method, path: &str) {
        let (by, value) = if let Some(rest) = path.strip_prefix("/app/") {
            (By::Key, rest)
        } else if let Some(rest) = path.strip_prefix(crate::http_transport::path::MOUNT) {
            (By::Key, rest.split('/').next().unwrap_or(""))
        } else if let Some(rest) = path.strip_prefix("/apps/") {
            let first = rest.split('/').next().unwrap_or("");
            let stream = method == hyper::Method::GET && rest.strip_suffix("/events") == Some(first);
            (if stream { By::Key } else { By::Id }, first)
        } else {
            return;
        };
        if value.contains('/') {
            return;
        }
        let _ = match by {
            By::Key => self.by_key(value).await,
            By::Id => self.by_id(value).await,
        };
    }

    fn in_hub(&self, by: By, value: &str) -> Option<Arc<App>> {
        match by {
            By::Id => self.apps.hub().app_by_id(value),
            By::Key => self.apps.hub().app_by_key(value),
        }
    }

    async fn miss(&self, by: By, value: &str) -> Option<Arc<App>> {
        let store = self.store.as_ref()?;
        if value.is_empty() || value.len() > MAX_LOOKUP_LEN || self.known_missing(by, value) {
            return None;
        }
        let entry = (by, value.to_owned());
        let gate = Arc::clone(self.inflight.lock().entry(entry.clone()).or_default());
        let found = {
            let _turn = gate.lock().await;
            // Whoever held the gate before may have answered for us.
            match self.in_hub(by, value) {
                Some(app) => Some(app),
                None if self.known_missing(by, value) => None,
                None if !self.may_query() => None,
                None => self.query(store, by, value).await,
            }
        };
        let mut inflight = self.inflight.lock();
        // Ours and the map's: nobody else waits on this gate.
        if Arc::strong_count(&gate) <= 2 {
            inflight.remove(&entry);
        }
        found
    }

    /// Whether a lookup may query the table now (`max_lookups_per_second`). A refused one is
    /// counted and not remembered as unknown: the key may well exist.
    fn may_query(&self) -> bool {
        let Some(bucket) = &self.lookups else { return true };
        let allowed = bucket.lock().take(1, Instant::now()).is_ok();
        if !allowed {
            StoreMetrics::bump(&self.metrics.throttled);
        }
        allowed
    }

    /// Whether the negative cache answers for `value` (counted as a hit).
    fn known_missing(&self, by: By, value: &str) -> bool {
        let mut negative = self.negative.lock();
        match negative.get(&(by, value.to_owned())) {
            Some(until) if *until > Instant::now() => {
                StoreMetrics::bump(&self.metrics.negative_hits);
                true
            }
            Some(_) => {
                negative.remove(&(by, value.to_owned()));
                false
            }
            None => false,
        }
    }

    fn remember_missing(&self, by: By, value: &str) {
        let ttl = self.settings.as_ref().map_or(Duration::ZERO, |s| s.negative_ttl);
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut negative = self.negative.lock();
        if negative.len() >= MAX_NEGATIVE {
            negative.retain(|_, until| *until > now);
        }
        if negative.len() < MAX_NEGATIVE {
            negative.insert((by, value.to_owned()), now + ttl);
        }
    }

    async fn query(&self, store: &Store, by: By, value: &str) -> Option<Arc<App>> {
        match store.find(by, value).await {
            Ok(Some(row)) => match self.admit(&row) {
                Some(app) => {
                    StoreMetrics::bump(&self.metrics.found);
                    Some(app)
                }
                None => {
                    StoreMetrics::bump(&self.metrics.refused);
                    self.remember_missing(by, value);
                    None
                }
            },
            Ok(None) => {
                StoreMetrics::bump(&self.metrics.missing);
                self.remember_missing(by, value);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "app store: lookup failed; the app is unknown for now");
                StoreMetrics::bump(&self.metrics.failed);
                self.remember_missing(by, value);
                None
            }
        }
    }

    /// Serves the app a row describes; `None` (logged) when the row cannot be served.
    fn admit(&self, row: &Row) -> Option<Arc<App>> {
        let config = match row::app_config(row) {
            Ok(c) => c,
            Err(e) => {
                let id = row.get("id").map(ToString::to_string).unwrap_or_default();
                tracing::warn!(id, column = %e.column, problem = %e.problem, "app store: row refused");
                return None;
            }
        };
        if self.taken_by_another(&config) {
            tracing::warn!(
                id = %config.id,
                key = %config.key,
                "app store: row ignored: its id or key belongs to an app of the config file"
            );
            return None;
        }
        let id = config.id.clone();
        match self.apps.upsert(config.clone()) {
            Ok((app, _)) => {
                self.loaded.lock().insert(id, config);
                Some(app)
            }
            Err(e) => {
                tracing::warn!(id = %id, error = %e, "app store: row refused");
                None
            }
        }
    }

    /// Whether the hub serves `config`'s id or key for an app the table did not give it (the
    /// config file's, as it is now after any reload, or a profile's): those always win.
    fn taken_by_another(&self, config: &AppConfig) -> bool {
        let hub = self.apps.hub();
        let loaded = self.loaded.lock();
        let foreign = |app: Arc<App>| !loaded.contains_key(&app.config.id);
        hub.app_by_id(&config.id).is_some_and(foreign) || hub.app_by_key(&config.key).is_some_and(foreign)
    }

    /// Removes an app that came from the table.
    fn forget(&self, id: &str, why: &str) {
        if self.loaded.lock().remove(id).is_some() {
            tracing::info!(id, why, "app store: app removed");
            self.apps.remove(id);
        }
    }

    /// Reads every loaded app's row again (one query): changed rows replace their app, deleted
    /// or now invalid ones remove it. A failure changes nothing.
    pub(crate) async fn refresh(&self) {
        let Some(store) = &self.store else { return };
        let ids: Vec<String> = self.loaded.lock().keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        let rows = match store.find_ids(&ids).await {
            Ok(rows) => rows,
            Err(e) => {
                StoreMetrics::bump(&self.metrics.refresh_failures);
                tracing::warn!(error = %e, "app store: refresh failed; loaded apps are kept as they were");
                return;
            }
        };
        StoreMetrics::bump(&self.metrics.refreshes);
        let mut seen = HashSet::new();
        for row in &rows {
            if let Some(id) = self.apply(row) {
                seen.insert(id);
            }
        }
        for id in ids.iter().filter(|id| !seen.contains(*id)) {
            self.forget(id, "its row was deleted or can no longer be served");
        }
    }

    /// Applies a fresh row of a loaded app; the id when the app is (still) served.
    fn apply(&self, row: &Row) -> Option<String> {
        let config = row::app_config(row).ok()?;
        if self.loaded.lock().get(&config.id) == Some(&config) {
            return Some(config.id);
        }
        self.admit(row).map(|app| app.config.id.clone())
    }

    /// A NOTIFY named `payload` (an app id or key): it is looked up afresh.
    async fn notified(&self, payload: &str) {
        {
            let mut negative = self.negative.lock();
            negative.remove(&(By::Id, payload.to_owned()));
            negative.remove(&(By::Key, payload.to_owned()));
        }
        let Some(store) = &self.store else { return };
        let id = {
            let loaded = self.loaded.lock();
            if loaded.contains_key(payload) {
                Some(payload.to_owned())
            } else {
                loaded.values().find(|c| c.key == payload).map(|c| c.id.clone())
            }
        };
        let Some(id) = id else { return };
        match store.find(By::Id, &id).await {
            Ok(Some(row)) => {
                if self.apply(&row).is_none() {
                    self.forget(&id, "its row can no longer be served");
                }
            }
            Ok(None) => self.forget(&id, "its row was deleted"),
            Err(e) => tracing::warn!(error = %e, id, "app store: refresh of a notified app failed"),
        }
    }

    /// Starts the refresh task (and PostgreSQL's LISTEN); both end when `stop` fires, after
    /// which the store's connections are closed.
    pub(crate) fn spawn(self: &Arc<Self>, stop: &CancellationToken) -> Option<tokio::task::JoinHandle<()>> {
        let settings = self.settings.clone()?;
        let dir = Arc::clone(self);
        let stop = stop.clone();
        Some(tokio::spawn(async move {
            let listen = settings.listen_channel.clone().map(|channel| {
                let (dir, stop, url) = (Arc::clone(&dir), stop.clone(), settings.url.clone());
                tokio::spawn(async move { dir.listen(&url, &channel, &stop).await })
            });
            let mut tick = tokio::time::interval(settings.cache_ttl);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => dir.refresh().await,
                }
            }
            if let Some(l) = listen {
                let _ = l.await;
            }
            if let Some(store) = &dir.store {
                store.close().await;
            }
        }))
    }

    /// LISTEN on `channel`, reconnecting with a growing pause; after each reconnection every
    /// loaded app is read again (notifications sent meanwhile were lost).
    async fn listen(self: &Arc<Self>, url: &str, channel: &str, stop: &CancellationToken) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(NOTIFY_QUEUE);
        let dir = Arc::clone(self);
        let worker = tokio::spawn(async move {
            while let Some(payload) = rx.recv().await {
                dir.notified(&payload).await;
            }
        });
        let mut pause = Duration::from_secs(1);
        let mut first = true;
        while !stop.is_cancelled() {
            if !first {
                self.refresh().await;
            }
            first = false;
            let result = super::postgres::listen(url, channel, stop, |payload| {
                let _ = tx.try_send(payload);
            })
            .await;
            match result {
                Ok(()) => pause = Duration::from_secs(1),
                Err(e) => tracing::warn!(error = %e, "app store: LISTEN failed; retrying"),
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(Duration::from_secs(30));
        }
        drop(tx);
        let _ = worker.await;
    }
}
