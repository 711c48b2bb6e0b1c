//! One EspoCRM browser connection: the WAMP v1 policy that makes a session behave like EspoCRM
//! >= 9.2's `websocket.php` (`Core/WebSocket/Pusher.php` on Ratchet 0.4).
//!
//! The socket opens unauthenticated: WELCOME `[0,"<sid>",1]` goes out only once `AuthTokenCheck`
//! grants the query's `authToken`/`userId`; a refusal closes it the way EspoCRM's code closes
//! connections (`$conn->close()`). A SUBSCRIBE joins the hub channel of the topic only after its
//! category's access check grants it, so events (ZeroMQ, Pusher, WAMP v2 publishers alike) reach
//! approved subscriptions only. Checks run as the session's work: when the socket goes, its
//! pending checks (and their PHP processes) go with it. Keep-alive is Ratchet's: a ping every
//! period whatever the traffic.

use std::collections::HashMap;
use std::sync::Arc;

use herald_protocol::pusher::channel_name::{Access, ChannelName};
use herald_protocol::wamp::uri::MAX_URI_LEN;
use herald_protocol::wamp::v1::{self, CallId, V1Publish};
use herald_protocol::ws;

use super::Espo;
use super::check::Verdict;
use crate::session::close::CloseReason;
use crate::session::driver::{Flow, Io};
use crate::session::keepalive::Plan;
use crate::session::wamp1::{Policy, V1};

/// EspoCRM's answer to any CALL.
const NO_CALLS: &str = "You are not allowed to make calls";

/// A finished check, back on the session task.
pub(crate) enum Done {
    /// AuthTokenCheck for the connection's user.
    Auth(Verdict),
    /// The access check of a pending subscription.
    Acl { topic: String, generation: u64, verdict: Verdict },
}

/// The EspoCRM policy of one session.
pub(crate) struct EspoPolicy {
    espo: Arc<Espo>,
    /// The upgrade's `userId` and `authToken`, until the check takes them.
    credentials: Option<(String, String)>,
    /// Set once AuthTokenCheck granted the connection.
    user: Option<Box<str>>,
    /// The user the query names, while its check runs.
    claimed: Box<str>,
    /// Subscriptions waiting for their access check, by topic, with the check's generation.
    pending: HashMap<String, u64>,
    generation: u64,
}

impl EspoPolicy {
    /// The policy of a connection whose upgrade carried `query`.
    pub(crate) fn new(espo: Arc<Espo>, query: &str) -> Self {
        Self {
            espo,
            credentials: credentials(query),
            user: None,
            claimed: "".into(),
            pending: HashMap::new(),
            generation: 0,
        }
    }

    /// Where EspoCRM calls `$conn->close()`.
    fn app_close(&self) -> Flow {
        Flow::Close(CloseReason::Protocol(self.espo.settings.app_close.frame()))
    }

    fn activate(&mut self, session: &mut V1, topic: &str) {
        let Ok(channel) = ChannelName::topic(topic, MAX_URI_LEN) else { return };
        session.join(channel);
        self.espo.debug.line(format_args!("{}: add topic {topic} for user {}", session.conn.id.0, self.claimed));
    }
}

impl Policy for EspoPolicy {
    type Done = Done;

    fn keepalive(&self, _session: &V1) -> Plan {
        Plan::fixed(self.espo.settings.keepalive)
    }

    fn open(&mut self, session: &mut V1, io: &mut Io<'_, Done>) -> Flow {
        self.espo.debug.line(format_args!("{}: open", session.conn.id.0));
        let Some((user, token)) = self.credentials.take() else { return self.app_close() };
        self.claimed = user.as_str().into();
        let checker = Arc::clone(&self.espo);
        io.spawn(async move { Done::Auth(checker.checks.auth(&token, &user).await) });
        Flow::Continue
    }

    fn subscribe(&mut self, session: &mut V1, topic: String, io: &mut Io<'_, Done>) -> Flow {
        // Nothing is kept for a connection that is not authenticated yet.
        let Some(user) = self.user.as_deref() else { return Flow::Continue };
        if self.pending.contains_key(&topic) || session.subscribed(&topic) || !self.espo.categories.is_allowed(&topic) {
            return Flow::Continue;
        }
        // Not the app's authorizer: that one judges sessions without an EspoCRM identity; this
        // one has a user, whose AclCheck below decides.
        let Ok(channel) = ChannelName::topic(&topic, MAX_URI_LEN) else { return Flow::Continue };
        if channel.kind().access != Access::Public {
            return Flow::Continue;
        }
        let Some(args) = self.espo.categories.access_check(&topic, user) else {
            self.activate(session, &topic);
            return Flow::Continue;
        };
        self.generation += 1;
        let generation = self.generation;
        self.pending.insert(topic.clone(), generation);
        let espo = Arc::clone(&self.espo);
        io.spawn(async move {
            let verdict = espo.checks.acl(args).await;
            Done::Acl { topic, generation, verdict }
        });
        Flow::Continue
    }

    fn unsubscribe(&mut self, session: &mut V1, topic: &str, _io: &mut Io<'_, Done>) -> Flow {
        if self.user.is_none() {
            return Flow::Continue;
        }
        self.pending.remove(topic);
        if session.part(topic) {
            self.espo.debug.line(format_args!("{}: remove topic {topic} for user {}", session.conn.id.0, self.claimed));
        }
        Flow::Continue
    }

    fn publish(&mut self, _session: &mut V1, p: V1Publish, _io: &mut Io<'_, Done>) -> Flow {
        // The browser's keepalive `[7,"",""]` is ignored; any real PUBLISH closes, as
        // EspoCRM's `Pusher::onPublish` does.
        if p.topic.is_empty() { Flow::Continue } else { self.app_close() }
    }

    fn call(&mut self, _session: &mut V1, call_id: &CallId, proc_uri: &str, io: &mut Io<'_, Done>) -> Flow {
        io.reply(ws::encode_text(&v1::call_error(call_id, proc_uri, NO_CALLS, None)));
        self.app_close()
    }

    fn on_done(&mut self, session: &mut V1, done: Done, io: &mut Io<'_, Done>) -> Flow {
        let debug = self.espo.debug;
        let id = session.conn.id.0;
        match done {
            Done::Auth(Verdict::Granted) => {
                let user = self.claimed.clone();
                session.conn.bind_user(&user);
                self.espo.add_user(&user, session.conn.session);
                self.user = Some(user);
                io.reply(session.welcome(None));
                debug.line(format_args!("{id}: user {} subscribed", self.claimed));
                Flow::Continue
            }
            Done::Auth(verdict) => {
                debug.line(format_args!("{id}: authentication failed for user {} ({verdict:?})", self.claimed));
                self.app_close()
            }
            Done::Acl { topic, generation, verdict } => {
                if self.pending.get(&topic) != Some(&generation) {
                    debug.line(format_args!("{id}: check for topic {topic} ignored: unsubscribed meanwhile"));
                    return Flow::Continue;
                }
                self.pending.remove(&topic);
                if verdict == Verdict::Granted {
                    debug.line(format_args!("{id}: check access succeed for topic {topic} for user {}", self.claimed));
                    self.activate(session, &topic);
                } else {
                    debug.line(format_args!("{id}: check access failed for topic {topic} for user {}", self.claimed));
                }
                Flow::Continue
            }
        }
    }

    fn leave(&mut self, session: &mut V1) {
        if let Some(user) = self.user.take() {
            self.espo.remove_user(&user, session.conn.session);
            self.espo.debug.line(format_args!("{}: user {user} unsubscribed", session.conn.id.0));
        }
        self.espo.debug.line(format_args!("{}: close", session.conn.id.0));
    }
}

/// The `userId` and `authToken` of the upgrade's query, sanitised like EspoCRM: only
/// `[A-Za-z0-9-]` is kept, and an empty value closes the connection.
fn credentials(query: &str) -> Option<(String, String)> {
    let mut user = None;
    let mut token = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            "userId" => &mut user,
            "authToken" => &mut token,
            _ => continue,
        };
        if slot.is_none() {
            let plus_decoded = v.replace('+', " ");
            *slot = Some(percent_encoding::percent_decode_str(&plus_decoded).decode_utf8_lossy().into_owned());
        }
    }
    let clean = |s: String| -> Option<String> {
        let kept: String = s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        (!kept.is_empty()).then_some(kept)
    };
    Some((clean(user?)?, clean(token?)?))
}

#[cfg(test)]
mod tests {
    use super::credentials;

    #[test]
    fn query_credentials_are_required_and_sanitised() {
        let c = |q: &str| credentials(q);
        assert_eq!(c("authToken=abc123&userId=u-1"), Some(("u-1".into(), "abc123".into())));
        assert_eq!(c("userId=u1&authToken=a%2Bb%20c'd"), Some(("u1".into(), "abcd".into())));
        assert_eq!(c("userId=u1"), None);
        assert_eq!(c("authToken=t"), None);
        assert_eq!(c("userId=&authToken=t"), None);
        assert_eq!(c("userId=%27%3B&authToken=t"), None, "nothing left after sanitising");
        assert_eq!(c(""), None);
    }
}
