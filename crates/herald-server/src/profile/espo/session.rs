//! One EspoCRM browser connection: the owner task of its socket, speaking WAMP v1 the way
//! EspoCRM >= 9.2's `websocket.php` does (`Core/WebSocket/Pusher.php` on Ratchet 0.4).
//!
//! The socket opens unauthenticated: WELCOME `[0,"<sid>",1]` goes out only once `AuthTokenCheck`
//! grants the query's `authToken`/`userId`; a refusal closes it the way EspoCRM's code closes
//! connections (`$conn->close()`). A SUBSCRIBE joins the hub channel of the topic only after its
//! category's access check grants it, so events (ZeroMQ, Pusher, WAMP v2 publishers alike) reach
//! approved subscriptions only. Checks run on a `JoinSet` owned by the session: when the socket
//! goes, its pending checks (and their PHP processes) go with it.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use herald_core::outbox::CloseRequest;
use herald_core::{App, Conn, Hub, Wire};
use herald_protocol::pusher::channel_name::{Access, ChannelName};
use herald_protocol::wamp::uri::MAX_URI_LEN;
use herald_protocol::wamp::v1::{self, CurieRule, V1ClientMsg};
use herald_protocol::wamp::{Prefixes, parse_v1};
use herald_protocol::ws::{self, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Espo;
use super::check::Verdict;
use crate::ws::keepalive::{KeepAlive, Tick};
use crate::ws::socket::{Event, Socket};
use crate::ws::wamp1::session_id;

/// EspoCRM's answer to any CALL.
const NO_CALLS: &str = "You are not allowed to make calls";

/// A finished check, back on the session task.
enum Done {
    /// AuthTokenCheck for the connection's user.
    Auth(Verdict),
    /// The access check of a pending subscription.
    Acl { topic: String, generation: u64, verdict: Verdict },
}

/// Where a subscription stands.
enum Sub {
    /// Waiting for the access check started as `generation`.
    Pending(u64),
    /// Approved: the connection is in the hub channel.
    Active(ChannelName),
}

/// How the loop ends.
enum End {
    /// Send this close frame (or just FIN when `None`).
    Close(Option<Bytes>),
    /// Where EspoCRM calls `$conn->close()`.
    AppClose,
}

struct Session {
    hub: Arc<Hub>,
    espo: Arc<Espo>,
    app: Arc<App>,
    conn: Arc<Conn>,
    prefixes: Prefixes,
    /// Set once AuthTokenCheck granted the connection.
    user: Option<Box<str>>,
    /// The user the query names, while its check runs.
    claimed: Box<str>,
    subs: HashMap<String, Sub>,
    generation: u64,
    checks: JoinSet<Done>,
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

/// Runs one connection of the EspoCRM listener until it ends.
pub(crate) async fn run<S>(hub: Arc<Hub>, espo: Arc<Espo>, app: Arc<App>, query: String, mut socket: Socket<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(slot) = app.try_connect() else {
        return socket.refuse(Some(ws::encode_close(1013, "over capacity"))).await;
    };
    let conn = hub.connect(Wire::WampV1);
    let debug = espo.debug;
    let id = conn.id.0;
    debug.line(format_args!("{id}: open"));
    let mut session = Session {
        hub,
        espo: Arc::clone(&espo),
        app,
        conn: Arc::clone(&conn),
        prefixes: Prefixes::new(CurieRule::Ratchet),
        user: None,
        claimed: "".into(),
        subs: HashMap::new(),
        generation: 0,
        checks: JoinSet::new(),
    };
    let end = match credentials(&query) {
        None => End::AppClose,
        Some((user, token)) => {
            session.claimed = user.as_str().into();
            let checker = Arc::clone(&espo);
            session.checks.spawn(async move { Done::Auth(checker.checks.auth(&token, &user).await) });
            session.serve(&mut socket).await
        }
    };
    let frame = match end {
        End::Close(frame) => frame,
        End::AppClose => espo.settings.app_close.frame(),
    };
    session.leave();
    debug.line(format_args!("{id}: close"));
    socket.close(frame, &conn.outbox, false).await;
    drop(slot);
}

impl Session {
    /// The event loop: socket, finished checks and the keepalive tick.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&mut self, socket: &mut Socket<S>) -> End {
        // Ratchet's keepalive: a ping every period whatever the traffic; a connection that did
        // not answer the previous one with a pong carrying its payload is closed.
        let period = self.espo.settings.keepalive;
        let mut keepalive = KeepAlive::new(period, period, Instant::now());
        // Boxed: the session future stays as small as with an `Interval`, which boxes its timer.
        let mut timer = Box::pin(tokio::time::sleep_until(keepalive.deadline()));
        // The payload of the ping not yet answered by a matching pong.
        let mut unanswered: Option<Bytes> = None;
        let mut pings = 0u64;
        let conn = Arc::clone(&self.conn);
        loop {
            let checks = &mut self.checks;
            let wake = std::future::poll_fn(|cx| {
                if let Poll::Ready(e) = socket.poll_event(cx, &conn.outbox) {
                    return Poll::Ready(Some(Ok(e)));
                }
                while let Poll::Ready(Some(joined)) = checks.poll_join_next(cx) {
                    // A check task only fails by panicking; the subscription then stays silent.
                    if let Ok(done) = joined {
                        return Poll::Ready(Some(Err(done)));
                    }
                }
                timer.as_mut().poll(cx).map(|()| None)
            })
            .await;
            let event = match wake {
                Some(Ok(event)) => event,
                Some(Err(done)) => {
                    if let Err(end) = self.on_check(done, socket) {
                        return end;
                    }
                    continue;
                }
                None => {
                    match keepalive.tick(Instant::now()) {
                        Tick::Wait(at) => timer.as_mut().reset(at),
                        Tick::Ping(at) => {
                            pings += 1;
                            let payload = Bytes::from(format!("herald-{pings}"));
                            socket.queue(ws::encode_ping(&payload));
                            unanswered = Some(payload);
                            timer.as_mut().reset(at);
                        }
                        // Ratchet's keepalive closes with 1000 (`WsConnection::close()`).
                        Tick::Expired => return End::Close(Some(ws::encode_close(1000, ""))),
                    }
                    continue;
                }
            };
            let msg = match event {
                Event::Message(m) => m,
                Event::Violation(e) => return End::Close(Some(ws::encode_close(e.close_code(), ""))),
                Event::Gone => return End::Close(None),
                Event::CloseRequested(CloseRequest::SlowConsumer) => {
                    return End::Close(Some(ws::encode_close(1008, "slow consumer")));
                }
                Event::CloseRequested(CloseRequest::Code { .. }) => {
                    return End::Close(Some(ws::encode_close(1001, "")));
                }
            };
            match msg {
                Message::Text(text) => {
                    if let Err(end) = self.on_text(&text, socket) {
                        return end;
                    }
                }
                // Ratchet fails JSON decoding of binary input: 1007.
                Message::Binary(_) => return End::Close(Some(ws::encode_close(1007, ""))),
                Message::Ping(p) => socket.queue(ws::encode_pong(&p)),
                Message::Pong(p) => {
                    if unanswered.as_deref() == Some(&p[..]) {
                        unanswered = None;
                        keepalive.answered();
                    }
                }
                Message::Close(frame) => return End::Close(Some(ws::encode_close_reply(frame.as_ref()))),
            }
        }
    }

    /// One WAMP v1 message.
    fn on_text<S: AsyncRead + AsyncWrite + Unpin>(&mut self, text: &[u8], socket: &mut Socket<S>) -> Result<(), End> {
        let close_1007 = |_| End::Close(Some(ws::encode_close(1007, "")));
        let msg = parse_v1(text).map_err(close_1007)?;
        let Some(msg) = self.prefixes.apply(msg).map_err(close_1007)? else {
            return Ok(());
        };
        match msg {
            V1ClientMsg::Prefix { .. } => Ok(()),
            V1ClientMsg::Subscribe { topic } => {
                self.subscribe(topic);
                Ok(())
            }
            V1ClientMsg::Unsubscribe { topic } => {
                self.unsubscribe(&topic);
                Ok(())
            }
            // The browser's keepalive `[7,"",""]` is ignored; any real PUBLISH closes, as
            // EspoCRM's `Pusher::onPublish` does.
            V1ClientMsg::Publish(p) if p.topic.is_empty() => Ok(()),
            V1ClientMsg::Publish(_) => Err(End::AppClose),
            V1ClientMsg::Call { call_id, proc_uri, .. } => {
                socket.queue(ws::encode_text(&v1::call_error(&call_id, &proc_uri, NO_CALLS, None)));
                Err(End::AppClose)
            }
        }
    }

    /// A finished check.
    fn on_check<S: AsyncRead + AsyncWrite + Unpin>(&mut self, done: Done, socket: &mut Socket<S>) -> Result<(), End> {
        let debug = self.espo.debug;
        let id = self.conn.id.0;
        match done {
            Done::Auth(Verdict::Granted) => {
                let user = self.claimed.clone();
                self.conn.bind_user(&user);
                self.espo.add_user(&user, self.conn.session);
                self.user = Some(user);
                let sid = session_id(&self.conn);
                socket.queue(ws::encode_text(&v1::welcome(&sid, None)));
                debug.line(format_args!("{id}: user {} subscribed", self.claimed));
                Ok(())
            }
            Done::Auth(verdict) => {
                debug.line(format_args!("{id}: authentication failed for user {} ({verdict:?})", self.claimed));
                Err(End::AppClose)
            }
            Done::Acl { topic, generation, verdict } => {
                if !matches!(self.subs.get(&topic), Some(Sub::Pending(g)) if *g == generation) {
                    debug.line(format_args!("{id}: check for topic {topic} ignored: unsubscribed meanwhile"));
                    return Ok(());
                }
                if verdict == Verdict::Granted {
                    debug.line(format_args!("{id}: check access succeed for topic {topic} for user {}", self.claimed));
                    self.activate(topic);
                } else {
                    debug.line(format_args!("{id}: check access failed for topic {topic} for user {}", self.claimed));
                    self.subs.remove(&topic);
                }
                Ok(())
            }
        }
    }

    fn subscribe(&mut self, topic: String) {
        // Nothing is kept for a connection that is not authenticated yet.
        let Some(user) = self.user.clone() else { return };
        if self.subs.contains_key(&topic) || !self.espo.categories.is_allowed(&topic) {
            return;
        }
        // Not the app's authorizer: that one judges sessions without an EspoCRM identity; this
        // one has a user, whose AclCheck below decides.
        let Ok(channel) = ChannelName::topic(&topic, MAX_URI_LEN) else { return };
        if channel.kind().access != Access::Public {
            return;
        }
        let Some(args) = self.espo.categories.access_check(&topic, &user) else {
            return self.activate(topic);
        };
        self.generation += 1;
        let generation = self.generation;
        self.subs.insert(topic.clone(), Sub::Pending(generation));
        let espo = Arc::clone(&self.espo);
        self.checks.spawn(async move {
            let verdict = espo.checks.acl(args).await;
            Done::Acl { topic, generation, verdict }
        });
    }

    fn activate(&mut self, topic: String) {
        let Ok(channel) = ChannelName::topic(&topic, MAX_URI_LEN) else { return };
        // Already in the channel can only mean a race we lost harmlessly: keep one membership.
        let _ = self.hub.subscribe(&self.app, &self.conn, &channel, None, |_| {});
        self.espo.debug.line(format_args!("{}: add topic {topic} for user {}", self.conn.id.0, self.claimed));
        self.subs.insert(topic, Sub::Active(channel));
    }

    fn unsubscribe(&mut self, topic: &str) {
        if self.user.is_none() {
            return;
        }
        match self.subs.remove(topic) {
            Some(Sub::Active(channel)) => {
                self.hub.unsubscribe(&self.app, &self.conn, &channel);
                self.espo
                    .debug
                    .line(format_args!("{}: remove topic {topic} for user {}", self.conn.id.0, self.claimed));
            }
            Some(Sub::Pending(_)) | None => {}
        }
    }

    fn leave(&mut self) {
        self.checks.abort_all();
        for (_, sub) in self.subs.drain() {
            if let Sub::Active(channel) = sub {
                self.hub.unsubscribe(&self.app, &self.conn, &channel);
            }
        }
        if let Some(user) = self.user.take() {
            self.espo.remove_user(&user, self.conn.session);
            self.espo.debug.line(format_args!("{}: user {user} unsubscribed", self.conn.id.0));
        }
        self.hub.disconnect(&self.conn);
    }
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
