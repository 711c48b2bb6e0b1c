//! Apps: their settings, limits and counters, and the registry that finds them by id or key.
//!
//! An app is the unit of isolation: channels, users and limits never cross apps. A Pusher key,
//! a WAMP realm and a listener bound to an app all resolve to one [`App`].
//!
//! What an app has while it runs (channels, presence, signed-in users, cached events, WAMP
//! patterns and dealer) belongs to the [`Hub`](crate::Hub); the app carries a handle on it, and
//! so do its later versions: replacing an app's settings (a reload, a changed database row)
//! keeps its channels, connections and counters.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::authorize::principal::WampAuthConfig;
use crate::authorize::role::{self, Role};
use crate::authorize::{AllowAll, Authorizer, Rule, RuleList};
use crate::conn::{Conn, ConnId};
use crate::hub::app_state::AppState;
use crate::outbox::CloseRequest;
use crate::rate::{OverBudget, TokenBucket};

pub mod history;
mod registry;
mod webhook;

pub use history::{HistoryConfig, HistoryPolicy};
pub use registry::{AppRegistry, DuplicateApp, Upserted};
pub use webhook::{WebhookConfig, WebhookFilter};

/// The settings of one app, as declared in the config file (`[[apps]]`).
///
/// Field names are the config keys; defaults are those of hosted Pusher.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    /// App id, used in HTTP API paths `/apps/{id}/...`.
    pub id: String,
    /// Public key, used in WebSocket paths `/app/{key}` and in signatures.
    pub key: String,
    /// Shared secret for HMAC signatures. Never logged.
    pub secret: String,
    /// A disabled app refuses connections (close 4003) and API calls (403).
    pub enabled: bool,
    /// Most concurrent connections; 0 means no limit. Over it: close 4004.
    pub max_connections: usize,
    /// Whether `client-*` events are relayed.
    pub enable_client_messages: bool,
    /// Whether `pusher:signin` (user authentication, watchlist) is accepted.
    pub enable_user_authentication: bool,
    /// Whether `pusher_internal:subscription_count` events are sent to subscribers.
    pub enable_subscription_count: bool,
    /// Seconds of client silence before the server pings (also sent in the handshake).
    pub activity_timeout: u32,
    /// Seconds to wait for a pong before closing with 4201.
    pub pong_timeout: u32,
    /// Seconds a cache channel keeps its last event.
    pub cache_ttl: u32,
    /// Largest event `data` accepted by the HTTP API (413 above).
    pub max_event_data_bytes: usize,
    /// Most channels in one `POST /events`.
    pub max_event_channels: usize,
    /// Most events in one `POST /batch_events`.
    pub max_batch_events: usize,
    /// Longest event name.
    pub max_event_name_length: usize,
    /// Longest channel name.
    pub max_channel_name_length: usize,
    /// Most distinct users in one presence channel.
    pub max_presence_members: usize,
    /// Largest `user_info` of a presence member, in bytes of JSON.
    pub max_presence_user_info_bytes: usize,
    /// Client events a connection may send per second (pusher:error 4301 above).
    pub max_client_events_per_second: u32,
    /// Events per second the app's backend may publish through the HTTP API, counted per event
    /// and channel; 0 means no limit. Over it: 429 with `Retry-After`.
    pub max_backend_events_per_second: u32,
    /// Largest WebSocket message a client may send (close 1009 above).
    pub max_message_bytes: usize,
    /// `allow-all` or `rules` (docs/wamp.md).
    pub wamp_authorizer: String,
    /// The rules used when `wamp_authorizer = "rules"`.
    pub wamp_rules: Vec<Rule>,
    /// Whether the app is a WAMP v2 realm (realm = app id) on the Pusher listeners. Off unless
    /// turned on: a WAMP session must not reach an app whose operator never asked for it.
    pub wamp: bool,
    /// The role of WAMP sessions that present no credentials (WAMP v2 anonymous, and every
    /// session of a plain `wamp1` listener). `anonymous` (the default) may subscribe to public
    /// channels, as an anonymous Pusher client may; `trusted` may do everything (the behaviour
    /// before roles, for trusted networks); any other value names a role of `wamp_roles`;
    /// `""` refuses sessions without credentials.
    pub wamp_anonymous_role: String,
    /// Publishes one WAMP session may make per second; 0 means no limit. Over it the publish
    /// is dropped (ERROR `herald.error.rate_limited` when it asked for an acknowledgement).
    pub wamp_max_publishes_per_second: u32,
    /// Named roles with per-URI permissions (`[[apps.wamp_roles]]`).
    pub wamp_roles: Vec<Role>,
    /// Authentication methods and principals of the realm (`[apps.wamp_auth]`).
    pub wamp_auth: WampAuthConfig,
    /// Origins a browser may connect from, for Pusher and WAMP alike: `https://app.example.com`,
    /// `*.example.com` (any scheme and port), `http://localhost:8080`. Empty: any origin.
    pub allowed_origins: Vec<String>,
    /// Where the app's webhooks go (`[[apps.webhooks]]`); none by default: nothing is sent.
    pub webhooks: Vec<WebhookConfig>,
    /// Milliseconds a webhook request waits for more events after its first; 0 sends what is
    /// queued at once.
    pub webhook_batch_ms: u64,
    /// Most events in one webhook request.
    pub webhook_batch_max: usize,
    /// Channels whose publications are held for recovery (`[[apps.history]]`); none by
    /// default: no channel keeps a history.
    pub history: Vec<HistoryConfig>,
    /// Set by a drop-in profile (EspoCRM, Oro) that owns the app and does not share it: the
    /// app is then reachable only through the profile's own listeners. Not a config key.
    #[serde(skip)]
    pub profile_only: bool,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            key: String::new(),
            secret: String::new(),
            enabled: true,
            max_connections: 0,
            enable_client_messages: false,
            enable_user_authentication: false,
            enable_subscription_count: false,
            activity_timeout: 120,
            pong_timeout: 30,
            cache_ttl: 1800,
            max_event_data_bytes: 10 * 1024,
            max_event_channels: 100,
            max_batch_events: 10,
            max_event_name_length: 200,
            max_channel_name_length: 200,
            max_presence_members: 100,
            max_presence_user_info_bytes: 1024,
            max_client_events_per_second: 10,
            max_backend_events_per_second: 100_000,
            max_message_bytes: 64 * 1024,
            wamp_authorizer: "allow-all".to_owned(),
            wamp_rules: Vec::new(),
            wamp: false,
            wamp_anonymous_role: crate::authorize::role::ANONYMOUS.to_owned(),
            wamp_max_publishes_per_second: 100,
            wamp_roles: Vec::new(),
            wamp_auth: WampAuthConfig::default(),
            allowed_origins: Vec::new(),
            webhooks: Vec::new(),
            webhook_batch_ms: 0,
            webhook_batch_max: 50,
            history: Vec::new(),
            profile_only: false,
        }
    }
}

/// A config value that cannot work, named by its key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct InvalidApp {
    /// The offending key, e.g. `apps[1].key`.
    pub key: String,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl AppConfig {
    /// Checks the values that deserialisation cannot; `index` names the app in messages.
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self, index: usize) -> Result<(), InvalidApp> {
        let bad = |field: &str, problem| InvalidApp { key: format!("apps[{index}].{field}"), problem };
        let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !token(&self.id) {
            return Err(bad("id", "must be non-empty letters, digits, '-', '_' or '.'"));
        }
        if !token(&self.key) {
            return Err(bad("key", "must be non-empty letters, digits, '-', '_' or '.'"));
        }
        if self.secret.is_empty() {
            return Err(bad("secret", "must not be empty"));
        }
        if self.activity_timeout == 0 {
            return Err(bad("activity_timeout", "must be at least 1 second (pusher-js refuses 0)"));
        }
        if self.pong_timeout == 0 {
            return Err(bad("pong_timeout", "must be at least 1 second"));
        }
        if self.max_event_channels == 0 || self.max_batch_events == 0 {
            return Err(bad("max_event_channels", "limits must be at least 1"));
        }
        if self.max_channel_name_length == 0 || self.max_event_name_length == 0 {
            return Err(bad("max_channel_name_length", "limits must be at least 1"));
        }
        if self.max_message_bytes < 1024 {
            return Err(bad("max_message_bytes", "must be at least 1024"));
        }
        if !matches!(self.wamp_authorizer.as_str(), "allow-all" | "rules") {
            return Err(bad("wamp_authorizer", "must be \"allow-all\" or \"rules\""));
        }
        for (i, rule) in self.wamp_rules.iter().enumerate() {
            if let Err(field) = rule.validate() {
                return Err(InvalidApp {
                    key: format!("apps[{index}].wamp_rules[{i}].{field}"),
                    problem: "must be one of the documented values (docs/wamp.md)",
                });
            }
        }
        for (i, r) in self.wamp_roles.iter().enumerate() {
            if let Err(field) = r.validate() {
                return Err(InvalidApp {
                    key: format!("apps[{index}].wamp_roles[{i}].{field}"),
                    problem: "must be one of the documented values (docs/wamp.md)",
                });
            }
            if role::builtin(&r.name).is_some() || self.wamp_roles[..i].iter().any(|o| o.name == r.name) {
                return Err(InvalidApp {
                    key: format!("apps[{index}].wamp_roles[{i}].name"),
                    problem: "is a built-in role or used by another role",
                });
            }
        }
        if let Err((key, problem)) = self.wamp_auth.validate() {
            return Err(InvalidApp { key: format!("apps[{index}].wamp_auth.{key}"), problem });
        }
        let role_exists = |name: &str| role::builtin(name).is_some() || self.wamp_roles.iter().any(|r| r.name == name);
        if !self.wamp_anonymous_role.is_empty() && !role_exists(&self.wamp_anonymous_role) {
            return Err(bad(
                "wamp_anonymous_role",
                "must be \"anonymous\", \"trusted\", \"\" or the name of a wamp_roles entry",
            ));
        }
        for (key, name) in self.wamp_auth.role_refs() {
            if !role_exists(name) {
                return Err(InvalidApp { key: format!("apps[{index}].wamp_auth.{key}"), problem: "names no role" });
            }
        }
        for origin in &self.allowed_origins {
            if crate::origin::OriginPattern::parse(origin).is_none() {
                return Err(bad("allowed_origins", "each entry must be a host, *.host, or scheme://host[:port]"));
            }
        }
        for (i, hook) in self.webhooks.iter().enumerate() {
            if let Err((field, problem)) = hook.validate() {
                return Err(InvalidApp { key: format!("apps[{index}].webhooks[{i}].{field}"), problem });
            }
        }
        if self.webhook_batch_max == 0 {
            return Err(bad("webhook_batch_max", "must be at least 1"));
        }
        if self.webhook_batch_ms > 60_000 {
            return Err(bad("webhook_batch_ms", "must be at most 60000 (one minute)"));
        }
        for (i, entry) in self.history.iter().enumerate() {
            if let Err((field, problem)) = entry.validate() {
                return Err(InvalidApp { key: format!("apps[{index}].history[{i}].{field}"), problem });
            }
        }
        Ok(())
    }
}

/// One app: its settings, the limits kept across its connections and its counters.
///
/// Its channels, users and the rest of its live state belong to the [`Hub`](crate::Hub); the app
/// holds them in [`Live`], which every later version of the app shares.
#[derive(Debug)]
pub struct App {
    /// The app's settings.
    pub config: AppConfig,
    /// What outlives a change of settings.
    live: Arc<Live>,
    /// Who may subscribe, publish, register and call over WAMP.
    authorizer: RwLock<Arc<dyn Authorizer>>,
    /// `max_backend_events_per_second`, shared by every API request of the app; `None` when
    /// unlimited.
    backend_events: Option<Mutex<TokenBucket>>,
    /// Message and latency counters for metrics (shared by every version of the app).
    pub stats: Arc<crate::stats::AppStats>,
}

/// What every version of one app shares: a new version replaces the settings, never these.
#[derive(Debug, Default)]
struct Live {
    /// Channels, users and the rest of the app's live state, owned by the hub.
    state: AppState,
    /// Open connections, for `max_connections`.
    connections: AtomicUsize,
    /// The connections holding a place, so that removing or disabling the app can close them.
    members: Members,
}

/// Shards of an app's member set: connects and disconnects rarely meet on one lock.
const MEMBER_SHARDS: usize = 8;

/// The connections of one app, by id. Held weakly: a session that ends without
/// [`ConnectionSlot::detach`] leaves a dead entry, never a live connection.
#[derive(Debug, Default)]
struct Members {
    shards: [Mutex<HashMap<ConnId, Weak<Conn>>>; MEMBER_SHARDS],
}

impl Members {
    fn shard(&self, id: ConnId) -> &Mutex<HashMap<ConnId, Weak<Conn>>> {
        // Ids are sequential, so the low bits spread connections evenly.
        &self.shards[(id.0 as usize) % MEMBER_SHARDS]
    }
}

/// Holds one of an app's connection slots; released on drop.
#[derive(Debug)]
pub struct ConnectionSlot(Arc<App>);

impl ConnectionSlot {
    /// The app this place belongs to: a session holding its place needs no other handle on it.
    pub fn app(&self) -> &Arc<App> {
        &self.0
    }

    /// Names the connection holding this place: removing or disabling the app asks it to
    /// close. The session calls [`ConnectionSlot::detach`] when it ends. (The slot does not
    /// remember the connection itself: that word would be in every idle session.)
    pub fn attach(&self, conn: &Arc<Conn>) {
        self.0.live.members.shard(conn.id).lock().insert(conn.id, Arc::downgrade(conn));
    }

    /// Forgets the connection named by [`ConnectionSlot::attach`].
    pub fn detach(&self, conn: &Conn) {
        self.0.live.members.shard(conn.id).lock().remove(&conn.id);
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.live.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl App {
    /// A new app with no connections and no channels.
    pub fn new(config: AppConfig) -> Self {
        Self::with_live(config, Arc::default(), Arc::default())
    }

    /// The next version of `previous` with settings `config`: it keeps the channels, the
    /// connections and the counters. The authorizer a profile installed is kept too, unless
    /// the WAMP rules changed.
    pub fn succeeding(config: AppConfig, previous: &App) -> Self {
        let same_rules = config.wamp_authorizer == previous.config.wamp_authorizer
            && config.wamp_rules == previous.config.wamp_rules;
        let next = Self::with_live(config, Arc::clone(&previous.live), Arc::clone(&previous.stats));
        if same_rules {
            next.set_authorizer(previous.authorizer());
        }
        next
    }

    fn with_live(config: AppConfig, live: Arc<Live>, stats: Arc<crate::stats::AppStats>) -> Self {
        let authorizer: Arc<dyn Authorizer> = if config.wamp_authorizer == "rules" {
            Arc::new(RuleList::new(config.wamp_rules.clone()))
        } else {
            Arc::new(AllowAll)
        };
        let per_second = config.max_backend_events_per_second;
        let backend_events = (per_second > 0).then(|| Mutex::new(TokenBucket::per_second(per_second)));
        Self { authorizer: RwLock::new(authorizer), config, live, backend_events, stats }
    }

    /// The app's live state, kept by the hub.
    pub(crate) fn state(&self) -> &AppState {
        &self.live.state
    }

    /// Whether `other` is a version of this app (they share channels and connections).
    pub fn same_app(&self, other: &App) -> bool {
        Arc::ptr_eq(&self.live, &other.live)
    }

    /// Asks every connection of the app to close for `why`; returns how many were asked.
    pub(crate) fn close_connections(&self, why: CloseRequest) -> usize {
        let mut n = 0;
        for shard in &self.live.members.shards {
            for conn in shard.lock().values().filter_map(Weak::upgrade) {
                conn.outbox.request_close(why);
                n += 1;
            }
        }
        n
    }

    /// Takes a connection slot, or `None` when the app is at `max_connections`.
    pub fn try_connect(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let max = self.config.max_connections;
        let prev = self.live.connections.fetch_add(1, Ordering::AcqRel);
        if max != 0 && prev >= max {
            self.live.connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionSlot(Arc::clone(self)))
    }

    /// The app's authorizer.
    pub fn authorizer(&self) -> Arc<dyn Authorizer> {
        Arc::clone(&self.authorizer.read())
    }

    /// Replaces the authorizer (drop-in profiles install theirs at start-up).
    pub fn set_authorizer(&self, authorizer: Arc<dyn Authorizer>) {
        *self.authorizer.write() = authorizer;
    }

    /// What the app's anonymous WAMP role (`wamp_anonymous_role`) decides for `action` on
    /// `uri`; `""` (no anonymous sessions) decides no.
    pub fn anonymous_allows(&self, action: crate::authorize::Action, uri: &str) -> bool {
        let name = self.config.wamp_anonymous_role.as_str();
        match self.config.wamp_roles.iter().find(|r| r.name == name) {
            Some(r) => r.decide(action, uri).allowed,
            None => role::builtin(name).is_some_and(|b| b.decide(action).allowed),
        }
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.live.connections.load(Ordering::Acquire)
    }

    /// Charges `events` (events × channels) to `max_backend_events_per_second` at `now`.
    ///
    /// # Errors
    /// [`OverBudget`] when the budget is spent; nothing is charged then.
    pub fn charge_backend_events(&self, events: usize, now: Instant) -> Result<(), OverBudget> {
        self.backend_events.as_ref().map_or(Ok(()), |b| b.lock().take(events, now))
    }
}
