//! The WAMP-only parts of the hub: pattern subscriptions, event history reads and RPC routing.

use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::pusher::channel_name::Access;
use herald_protocol::wamp::uri::MatchPolicy;
use herald_protocol::wamp::v2::{Dict, Payload};
use tokio::time::Instant;

use super::Hub;
use super::app_state::AppState;
use super::dealer::RpcError;
use crate::app::App;
use crate::conn::Conn;
use crate::publication::Publication;
use crate::wire::Wire;

impl Hub {
    /// Subscribes a WAMP v2 session to a prefix or wildcard pattern; returns the subscription id.
    pub fn subscribe_pattern(&self, app: &App, conn: &Arc<Conn>, policy: MatchPolicy, pattern: &str) -> u64 {
        self.state(app).patterns.write().subscribe(conn, policy, pattern)
    }

    /// Removes a session from a pattern subscription; false when it was not subscribed.
    pub fn unsubscribe_pattern(&self, app: &App, conn: &Conn, subscription: u64) -> bool {
        self.state(app).patterns.write().unsubscribe(conn.id, subscription)
    }

    /// Fan-out to pattern subscribers: one encoding per (pattern, wire format). `state` is
    /// `app`'s, already found by [`Hub::deliver`].
    pub(super) fn deliver_to_patterns(&self, app: &App, state: &AppState, publication: &Publication) -> usize {
        // Patterns are a WAMP feature and WAMP never sees Pusher's signed channels
        // (private, presence, encrypted, server-to-user): only public channels match.
        if publication.channel.kind().access != Access::Public {
            return 0;
        }
        let patterns = state.patterns.read();
        let topic = publication.channel.as_str();
        let mut queued = 0;
        for sub in patterns.subs.iter().filter(|s| s.policy.matches(&s.pattern, topic)) {
            let mut frames: [Option<(Wire, Bytes)>; 2] = [None, None];
            for conn in sub.subscribers.values() {
                if !publication.admits(conn) {
                    continue;
                }
                let frame = match frames.iter().flatten().find(|(w, _)| *w == conn.wire) {
                    Some((_, f)) => f.clone(),
                    None => {
                        let f = publication.encode(conn.wire, sub.id, Some(topic));
                        if let Some(slot) = frames.iter_mut().find(|s| s.is_none()) {
                            *slot = Some((conn.wire, f.clone()));
                        }
                        f
                    }
                };
                if conn.outbox.push(frame).is_ok() {
                    queued += 1;
                    app.stats.messages_out.add(crate::stats::Protocol::from(conn.wire), 1);
                }
            }
        }
        queued
    }

    /// Up to `limit` publications `channel` holds in its history, newest first, each with when
    /// it was held (WAMP `wamp.subscription.get_events`); `None` when the channel keeps no
    /// history. A read does not order itself with concurrent publications.
    pub fn wamp_events(&self, app: &App, channel: &str, limit: usize) -> Option<Vec<(Instant, Arc<Publication>)>> {
        if !self.has_history(app, channel) {
            return None;
        }
        let now = Instant::now();
        let held = self.state(app).history.existing(channel, |h| {
            // Drops what expired before reading.
            let _ = h.held(None, 0, now, &self.history_budget);
            let skip = h.len().saturating_sub(limit);
            h.entries().skip(skip).map(|(_, at, p)| (at, Arc::clone(p))).collect::<Vec<_>>()
        });
        let mut events = held.unwrap_or_default();
        events.reverse();
        Some(events)
    }

    /// Registers `procedure` with `callee`; returns the registration id.
    ///
    /// # Errors
    /// [`RpcError::ProcedureExists`] when another session registered it.
    pub fn register(&self, app: &App, callee: &Arc<Conn>, procedure: &str) -> Result<u64, RpcError> {
        self.state(app).dealer.lock().register(callee, procedure)
    }

    /// Removes a registration of `callee`.
    ///
    /// # Errors
    /// [`RpcError::NoSuchRegistration`] when it is not one of the callee's.
    pub fn unregister(&self, app: &App, callee: &Conn, registration: u64) -> Result<(), RpcError> {
        self.state(app).dealer.lock().unregister(callee.id, registration)
    }

    /// Routes a CALL to the procedure's callee; returns the invocation id.
    ///
    /// # Errors
    /// [`RpcError::NoSuchProcedure`] when nothing is registered.
    pub fn call(
        &self,
        app: &App,
        caller: &Arc<Conn>,
        request: u64,
        procedure: &str,
        payload: Payload,
        details: Dict,
    ) -> Result<u64, RpcError> {
        self.state(app).dealer.lock().call(caller, request, procedure, payload, details)
    }

    /// Hands a callee's YIELD to the caller; false when the call is gone (timed out, cancelled).
    pub fn yield_result(&self, app: &App, callee: &Conn, invocation: u64, payload: Payload) -> bool {
        self.state(app).dealer.lock().yield_result(callee.id, invocation, payload)
    }

    /// Hands a callee's ERROR to the caller.
    pub fn invocation_error(&self, app: &App, callee: &Conn, invocation: u64, error: &str, payload: Payload) -> bool {
        self.state(app).dealer.lock().fail(Some(callee.id), invocation, error, payload)
    }

    /// Fails a call in flight with `error` (used for call timeouts).
    pub fn fail_call(&self, app: &App, invocation: u64, error: &str) -> bool {
        self.state(app).dealer.lock().fail(None, invocation, error, Payload::default())
    }

    /// Forgets a WAMP session's registrations, calls and pattern subscriptions.
    pub fn leave_wamp(&self, app: &App, conn: &Conn) {
        let state = self.state(app);
        state.dealer.lock().leave(conn.id);
        let mut patterns = state.patterns.write();
        let ids: Vec<u64> =
            patterns.subs.iter().filter(|s| s.subscribers.contains_key(&conn.id)).map(|s| s.id).collect();
        for id in ids {
            patterns.unsubscribe(conn.id, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use herald_protocol::pusher::channel_name::ChannelName;
    use herald_protocol::wamp::v2::Value;

    use crate::app::history::HistoryConfig;
    use crate::app::{AppConfig, AppRegistry};
    use crate::backend::LocalBackend;
    use crate::hub::Hub;
    use crate::outbox::OutboxLimits;
    use crate::publication::{Publication, PublicationData};

    fn publish(hub: &Hub, topic: &str, n: u64) -> u64 {
        let data = PublicationData::Wamp { args: vec![Value::from(n)], kwargs: Default::default() };
        let p = Publication::new(ChannelName::topic(topic, 255).unwrap(), topic, data).from_wamp();
        let id = p.id;
        hub.publish(hub.apps().get(0).unwrap(), p);
        id
    }

    #[test]
    fn wamp_events_are_the_newest_held_first() {
        let history = vec![HistoryConfig { channels: "h.*".into(), max_messages: 3, ..HistoryConfig::default() }];
        let config = AppConfig { id: "a".into(), key: "k".into(), history, ..AppConfig::default() };
        let hub = Hub::new(AppRegistry::new(vec![config]).unwrap(), Arc::new(LocalBackend), OutboxLimits::default());
        let app = Arc::clone(hub.apps().get(0).unwrap());
        assert_eq!(hub.wamp_events(&app, "h.one", 10).map(|e| e.len()), Some(0), "history, nothing held");
        let ids: Vec<u64> = (1..=5).map(|n| publish(&hub, "h.one", n)).collect();
        let newest: Vec<u64> = hub.wamp_events(&app, "h.one", 2).unwrap().iter().map(|(_, p)| p.id).collect();
        assert_eq!(newest, vec![ids[4], ids[3]]);
        let held = hub.wamp_events(&app, "h.one", 10).unwrap();
        assert_eq!(held.iter().map(|(_, p)| p.id).collect::<Vec<_>>(), vec![ids[4], ids[3], ids[2]]);
        assert!(held[0].0 >= held[2].0, "newest first");
        publish(&hub, "other.topic", 1);
        assert!(hub.wamp_events(&app, "other.topic", 10).is_none(), "no history configured");
    }
}
