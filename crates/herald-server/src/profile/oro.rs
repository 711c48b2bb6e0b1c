//! The Oro drop-in profile: herald in place of OroPlatform's `gos:websocket:server`
//! (OroPlatform's SyncBundle on GeniusesOfSymfony's WebSocketBundle and Ratchet 0.4). docs/oro.md
//! lists what herald reproduces and how it is configured.
//!
//! An Oro listener is accepted by the common edge (`listen.rs`: TLS, proxy trust, path prefix,
//! per-address limits, drain) in its raw-head upgrade mode ([`upgrade`]), because Oro's PHP
//! backend needs the 101 response and the WAMP v1 WELCOME in one write, which hyper cannot do.
//! Each connection then lives in [`session`]: sync-ticket authentication right after WELCOME, Oro's route
//! table and per-user topic security, publishing through the shared hub. Oro's topics belong
//! to one herald app, so WAMP v2 sessions of that app on the main listener see the same events
//! (when `share_broadcasts` lets them subscribe). Two background tasks per listener: the
//! `oro/ping` keepalive event and the watch on Oro's server-state table.
//!
//! Must not: read the process environment (config does that), or block the runtime (ticket
//! digests run on the blocking pool).

mod db;
mod dsn;
pub(crate) mod handshake;
mod routes;
pub(crate) mod session;
pub(crate) mod settings;
mod ticket;
pub(crate) mod upgrade;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_core::authorize::{Action, Authorizer};
use herald_core::{App, Conn, Hub, Publication, PublicationData};
use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::wamp::uri::MAX_URI_LEN;
use herald_protocol::wamp::v1::RATCHET_SERVER_IDENT;
use parking_lot::RwLock;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use db::{Db, DbError};
use routes::{Access, PING_TOPIC, Routes};
use settings::{OroSettings, Publishers};
use ticket::{Ticket, TicketError};

/// What the server calls itself in WELCOME and `X-Powered-By`: Ratchet's own ident, as the
/// PHP daemon sends it (Oro's backend client looks for it in the first read).
pub(crate) const SERVER_IDENT: &str = RATCHET_SERVER_IDENT;
/// The keepalive event's payload (Oro `WebsocketPingTopic`).
const PING_PAYLOAD: &str = "\"Connection keep alive\"";

/// Why an Oro listener cannot start (config validation normally refuses both first).
#[derive(Debug, thiserror::Error)]
pub enum OroError {
    /// The app that should carry Oro's topics is not in the registry.
    #[error("oro: no app has id {0:?}")]
    NoApp(String),
    /// A route does not compile.
    #[error("oro: {0}")]
    Route(#[from] routes::RouteError),
}

/// Who a connection authenticated as with its ticket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    /// The anonymous ticket signed with `ORO_SECRET`: Oro's PHP backend.
    Backend,
    /// An Oro user (`oro_user.id`).
    User(i64),
}

/// Why a connection's ticket was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    /// The ticket itself is bad.
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// A user ticket, but no database is configured to look the user up.
    #[error("user tickets need Oro's database (ORO_DB_DSN)")]
    NoDatabase,
    /// The database could not answer.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The digest task did not finish (runtime shutting down).
    #[error("ticket check interrupted")]
    Interrupted,
}

/// What Oro's rules say about a SUBSCRIBE, UNSUBSCRIBE, PUBLISH or CALL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Go ahead.
    Allow,
    /// Secured topic of another user: tell the client, keep the connection.
    Deny,
    /// Nothing to do (publishes to `oro/ping`, or from users when only the backend publishes).
    Ignore,
    /// No route: close with 1007 (GOS's router throws, and Ratchet closes with 1007).
    NoRoute,
}

/// Oro's topic rules, also installed as the Oro app's authorizer for other sessions.
#[derive(Debug)]
pub(crate) struct Policy {
    routes: Routes,
    publishers: Publishers,
    share_broadcasts: bool,
}

impl Policy {
    /// Oro's rules as the settings configure them.
    ///
    /// # Errors
    /// [`routes::RouteError`] for a route that does not compile (config validation has
    /// already refused it).
    pub(crate) fn new(settings: &OroSettings) -> Result<Self, routes::RouteError> {
        let routes = Routes::new(&settings.routes)?;
        Ok(Self { routes, publishers: settings.publishers, share_broadcasts: settings.share_broadcasts })
    }

    /// May `identity` subscribe to (or unsubscribe from) `topic`?
    pub(crate) fn subscribe(&self, identity: &Identity, topic: &str) -> Decision {
        let Some(matched) = self.routes.find(topic) else { return Decision::NoRoute };
        let user = match identity {
            Identity::User(id) => Some(*id),
            Identity::Backend => None,
        };
        if routes::may_subscribe(matched, user) { Decision::Allow } else { Decision::Deny }
    }

    /// May `identity` publish to `topic`?
    pub(crate) fn publish(&self, identity: &Identity, topic: &str) -> Decision {
        match self.routes.find(topic) {
            None => Decision::NoRoute,
            Some(m) if m.access == Access::Ping => Decision::Ignore,
            Some(_) if self.publishers == Publishers::Backend && *identity != Identity::Backend => Decision::Ignore,
            Some(_) => Decision::Allow,
        }
    }

    /// Whether a CALL names a route (Oro has no RPC handlers; routed calls get CALLERROR).
    pub(crate) fn routed(&self, uri: &str) -> bool {
        self.routes.find(uri).is_some()
    }
}

impl Authorizer for Policy {
    /// Sessions without an Oro ticket (WAMP v2 on the main listener, a plain `wamp1` listener
    /// of the Oro app) may at most read broadcast topics; they can never publish into Oro's
    /// topics nor read a user's secured ones.
    fn authorize(&self, _conn: &Conn, action: Action, uri: &str) -> bool {
        action == Action::Subscribe
            && self.share_broadcasts
            && self.routes.find(uri).is_some_and(|m| matches!(m.access, Access::Broadcast | Access::Ping))
    }

    fn covers_pusher(&self) -> bool {
        true
    }
}

/// What every connection of one Oro listener shares.
#[derive(Debug)]
pub(crate) struct Oro {
    settings: Arc<OroSettings>,
    hub: Arc<Hub>,
    app: Arc<App>,
    policy: Arc<Policy>,
    /// Lower-case hosts an `Origin` may name; replaced when Oro's configuration changes.
    origins: RwLock<Vec<String>>,
    db: Option<Db>,
}

impl Oro {
    /// Whether the `Origin` header passes Oro's origin check.
    pub(crate) fn origin_allowed(&self, origin: Option<&str>) -> bool {
        if !self.settings.origin_check {
            return true;
        }
        let Some(origin) = origin else { return false };
        let host = handshake::origin_host(origin).to_ascii_lowercase();
        self.origins.read().contains(&host)
    }

    /// Recomputes the allowed origins with this application URL.
    fn set_application_url(&self, url: Option<&str>) {
        let mut hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        if let Some(host) = url.and_then(|u| dsn::Dsn::parse(u).ok()).map(|d| d.host).filter(|h| !h.is_empty()) {
            hosts.push(host.to_ascii_lowercase());
        }
        hosts.extend(self.settings.allowed_origins.iter().map(|h| h.to_ascii_lowercase()));
        tracing::info!(origins = ?hosts, "oro: allowed origins");
        *self.origins.write() = hosts;
    }

    /// Verifies the ticket of a request's query string.
    ///
    /// # Errors
    /// [`AuthError`] for any refusal.
    pub(crate) async fn authenticate(&self, query: &str) -> Result<Identity, AuthError> {
        let ticket = Ticket::from_query(query)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let ttl = self.settings.ticket_ttl.as_secs();
        ticket.check_time(i64::try_from(now).unwrap_or(i64::MAX), i64::try_from(ttl).unwrap_or(i64::MAX))?;
        let secret = self.settings.secret.0.clone();
        let (identity, password) = if ticket.username.is_empty() {
            (Identity::Backend, secret.clone())
        } else {
            let db = self.db.as_ref().ok_or(AuthError::NoDatabase)?;
            let user =
                db.user(&ticket.username).await?.ok_or_else(|| TicketError::UnknownUser(ticket.username.clone()))?;
            (Identity::User(user.id), user.password)
        };
        // 5000 SHA-512 rounds take milliseconds: keep them off the async workers.
        tokio::task::spawn_blocking(move || ticket.verify(&password, &secret))
            .await
            .map_err(|_| AuthError::Interrupted)??;
        Ok(identity)
    }
}

impl Oro {
    /// The runtime of an Oro listener bound on `port`: its app, its rules (the same `Policy` is
    /// installed as the app's authorizer) and its database client.
    ///
    /// # Errors
    /// [`OroError`] when the app is missing or a route does not compile.
    pub(crate) fn new(settings: Arc<OroSettings>, hub: &Arc<Hub>, port: u16) -> Result<Arc<Self>, OroError> {
        let app = hub.app_by_id(&settings.app).ok_or_else(|| OroError::NoApp(settings.app.clone()))?;
        let policy = Arc::new(Policy::new(&settings)?);
        let db = settings
            .db
            .as_ref()
            .map(|dsn| Db::new(dsn, settings.user_query.clone(), settings.application_url_query.clone()));
        if db.is_none() {
            tracing::warn!("oro: no ORO_DB_DSN: only anonymous (backend) tickets can be verified");
        }
        warn_about_backend_dsn(&settings, port);
        let oro = Arc::new(Oro { settings, hub: Arc::clone(hub), app, policy, origins: RwLock::new(Vec::new()), db });
        oro.set_application_url(oro.settings.application_url.as_deref());
        Ok(oro)
    }

    /// Installs Oro's rules as the authorizer of the Oro app, for the sessions that hold no
    /// Oro ticket.
    pub(crate) fn install_authorizer(&self) {
        self.app.set_authorizer(Arc::clone(&self.policy) as Arc<dyn Authorizer>);
    }

    /// Starts the listener's two background tasks on `tracker`: the `oro/ping` keepalive and
    /// the watch on Oro's configuration; both end when `stop` is cancelled.
    pub(crate) fn start(self: &Arc<Self>, tracker: &TaskTracker, stop: &CancellationToken) {
        tracker.spawn(keepalive(Arc::clone(self), stop.clone()));
        tracker.spawn(watch_config(Arc::clone(self), stop.clone()));
    }
}

/// Oro's PHP backend connects to `ORO_WEBSOCKET_BACKEND_DSN`; a loopback DSN on another port
/// than the one bound is almost certainly a mistake that silently disables Oro's websockets.
fn warn_about_backend_dsn(settings: &OroSettings, bound: u16) {
    let Some(backend) = &settings.backend else { return };
    let loopback = matches!(backend.host.as_str(), "127.0.0.1" | "localhost" | "::1");
    let port = backend.port.unwrap_or(8080);
    if loopback && port != bound {
        tracing::warn!(
            backend_port = port,
            bound_port = bound,
            "oro: ORO_WEBSOCKET_BACKEND_DSN points at another port than herald listens on"
        );
    }
}

/// Sends `"Connection keep alive"` to `oro/ping` every interval while it has subscribers, as
/// Oro's `WebsocketPingTopic` timer does (Oro sends no WebSocket pings).
async fn keepalive(oro: Arc<Oro>, stop: CancellationToken) {
    let period = oro.settings.ping_interval;
    let (Ok(channel), Ok(payload)) =
        (ChannelName::topic(PING_TOPIC, MAX_URI_LEN), RawValue::from_string(PING_PAYLOAD.to_owned()))
    else {
        return;
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if oro.hub.channel(&oro.app, PING_TOPIC).is_some() {
            let event = Publication::new(channel.clone(), PING_TOPIC, PublicationData::Json(payload.clone()));
            oro.hub.publish(&oro.app, event.from_wamp());
        }
    }
}

/// Reads `oro_ui.application_url` from Oro's database (unless fixed in the config) and watches
/// `oro_sync_websocket_server_state`. Where Oro's PHP server stops itself on a change so
/// that its supervisor restarts it with fresh configuration, herald reloads what it uses of
/// that configuration, the allowed origins, and keeps its connections.
async fn watch_config(oro: Arc<Oro>, stop: CancellationToken) {
    let Some(db) = &oro.db else { return };
    let period = oro.settings.state_poll_interval;
    let fixed_url = oro.settings.application_url.is_some();
    let mut url_loaded = fixed_url;
    let mut known: Option<Option<String>> = None;
    let mut warned = false;
    let mut tick = (!period.is_zero()).then(|| {
        let mut t = tokio::time::interval(period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    loop {
        if !url_loaded {
            match db.application_url().await {
                Ok(url) => {
                    oro.set_application_url(url.as_deref());
                    url_loaded = true;
                }
                Err(e) if !warned => {
                    tracing::warn!(error = %e, "oro: cannot read oro_ui.application_url; allowing localhost only for now");
                    warned = true;
                }
                Err(_) => {}
            }
        }
        let Some(t) = tick.as_mut() else {
            if url_loaded {
                return;
            }
            // Polling is off but the URL is still unknown: retry now and then.
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(5)) => continue,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            _ = t.tick() => {}
        }
        match db.config_state().await {
            Ok(state) => match &known {
                None => known = Some(state),
                Some(prev) if *prev != state => {
                    tracing::info!(updated_at = ?state, "oro: system configuration changed; reloading allowed origins");
                    known = Some(state);
                    url_loaded = fixed_url;
                    warned = false;
                }
                Some(_) => {}
            },
            Err(DbError::Postgres(e)) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                tracing::info!("oro: no oro_sync_websocket_server_state table (Oro before 7.0); not watching it");
                tick = None;
            }
            Err(e) if !warned => {
                tracing::warn!(error = %e, "oro: cannot read oro_sync_websocket_server_state");
                warned = true;
            }
            Err(_) => {}
        }
    }
}
