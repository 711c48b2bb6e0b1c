//! The EspoCRM profile: herald in place of EspoCRM's `websocket.php` (EspoCRM >= 9.2's
//! `Core/WebSocket/*` on Ratchet 0.4), with EspoCRM itself unchanged. docs/espocrm.md lists what
//! herald reproduces and how it is configured.
//!
//! One `[espocrm]` config section gives one WAMP v1 listener (browsers, [`session`]) and one
//! ZeroMQ PULL socket (EspoCRM's PHP side, `crate::ingress::zmq`), sharing an [`Espo`]: the
//! settings, the topic categories, the check runner and the index of authenticated users.
//! Submissions become hub publications on the app's channel named by `topicId`, so Pusher and
//! WAMP v2 subscribers of the same app receive EspoCRM's broadcasts too; user-targeted
//! submissions reach that user's EspoCRM connections only.

pub(crate) mod categories;
pub(crate) mod check;
pub(crate) mod debug;
pub(crate) mod policy;
pub(crate) mod session;
pub(crate) mod settings;
pub(crate) mod submission;

use std::collections::HashMap;
use std::sync::Arc;

use herald_core::{App, Hub, Publication, PublicationData, WampFilter};
use herald_protocol::pusher::channel_name::{Access, ChannelName};
use herald_protocol::wamp::uri::MAX_URI_LEN;
use parking_lot::Mutex;

use categories::Categories;
use check::Checks;
use debug::DebugLog;
use settings::{EspoProfile, EspoSettings};

/// The running EspoCRM profile of a listener, as its sessions and its ZeroMQ ingress share it.
/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct EspoListener(pub(crate) Arc<Espo>);

impl std::fmt::Debug for EspoListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspoListener")
            .field("app", &self.0.settings.app)
            .field("zeromq", &self.0.settings.zmq_endpoint)
            .finish_non_exhaustive()
    }
}

impl PartialEq for EspoListener {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for EspoListener {}

impl EspoListener {
    /// The runtime of a configured profile: its check runner, debug log and empty user index.
    pub(crate) fn new(profile: &EspoProfile) -> Self {
        let settings = profile.settings.clone();
        Self(Arc::new(Espo {
            checks: Checks::new(&settings),
            debug: DebugLog::new(settings.debug),
            categories: profile.categories.clone(),
            users: Mutex::new(HashMap::new()),
            settings,
        }))
    }

    /// The app id the EspoCRM topics live in.
    pub(crate) fn app(&self) -> &str {
        &self.0.settings.app
    }
}

/// What the EspoCRM listener's sessions and its ZeroMQ ingress share.
#[derive(Debug)]
pub(crate) struct Espo {
    /// The validated `[espocrm]` section.
    pub(crate) settings: EspoSettings,
    /// Which topics exist and how they are checked.
    pub(crate) categories: Categories,
    /// AuthTokenCheck / AclCheck runner.
    pub(crate) checks: Checks,
    /// `webSocketDebugMode` output.
    pub(crate) debug: DebugLog,
    /// Authenticated user id -> WAMP session numbers of their connections, for submissions
    /// that carry a `userId`.
    users: Mutex<HashMap<Box<str>, Vec<u64>>>,
}

impl Espo {
    /// The authorizer of the EspoCRM app, for sessions that did not come through this listener.
    pub(crate) fn policy(&self) -> policy::Policy {
        policy::Policy::new(self.categories.clone(), self.settings.share_broadcasts)
    }

    /// Records an authenticated connection of `user`.
    pub(crate) fn add_user(&self, user: &str, session: u64) {
        self.users.lock().entry(user.into()).or_default().push(session);
    }

    /// Forgets a connection of `user`.
    pub(crate) fn remove_user(&self, user: &str, session: u64) {
        let mut users = self.users.lock();
        if let Some(sessions) = users.get_mut(user) {
            sessions.retain(|s| *s != session);
            if sessions.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Routes one ZeroMQ message: drops what is invalid or not a category with a log
    /// line; publishes the rest to the topic's approved subscribers, only to `userId`'s
    /// connections when it is set. Returns the number of connections it was queued for.
    pub(crate) fn submit(&self, hub: &Hub, app: &App, bytes: &[u8]) -> usize {
        let sub = match submission::parse(bytes) {
            Ok(s) => s,
            Err(e) => {
                let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
                tracing::warn!(error = %e, message = %shown, "dropping an invalid EspoCRM submission");
                return 0;
            }
        };
        if !self.categories.is_allowed(&sub.topic) {
            tracing::warn!(topic = %sub.topic, "dropping an EspoCRM submission for a topic that is not a category");
            return 0;
        }
        let channel = match ChannelName::topic(&sub.topic, MAX_URI_LEN) {
            Ok(c) if c.kind().access == Access::Public => c,
            _ => {
                tracing::warn!(topic = %sub.topic, "dropping an EspoCRM submission with an unusable topic");
                return 0;
            }
        };
        let filter = match &sub.user {
            None => None,
            Some(user) => {
                let sessions = self.users.lock().get(user.as_str()).cloned().unwrap_or_default();
                if sessions.is_empty() {
                    self.debug.line(format_args!("message {} for user {user}: no connection", sub.topic));
                    return 0;
                }
                Some(WampFilter { exclude: Vec::new(), eligible: Some(sessions) })
            }
        };
        let publication = Publication::new(channel, sub.topic.as_str(), PublicationData::Json(sub.payload))
            .from_wamp()
            .with_filter(filter);
        let sent = hub.publish(app, publication);
        match &sub.user {
            Some(user) => self.debug.line(format_args!("message {} for user {user}: sent to {sent}", sub.topic)),
            None => self.debug.line(format_args!("message {} for all: sent to {sent}", sub.topic)),
        }
        sent
    }
}
