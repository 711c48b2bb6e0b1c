//! A WAMP v1 session (autobahn 0.8 / Ratchet 0.4 behaviour): the owner task of one socket.
//!
//! WELCOME goes out as soon as the socket is open. PREFIX, SUBSCRIBE and UNSUBSCRIBE are never
//! answered; PUBLISH fans out through the hub; CALL is answered with CALLERROR unless a profile
//! provides the procedure. Any malformed message closes the socket with 1007, as Ratchet's
//! `WampServer` does.

use std::sync::Arc;
use std::time::Duration;

use herald_core::app::ConnectionSlot;
use herald_core::authorize::Action;
use herald_core::outbox::CloseRequest;
use herald_core::rate::TokenBucket;
use herald_core::{App, Conn, Hub, Publication, PublicationData, WampFilter, Wire};
use herald_protocol::pusher::channel_name::{Access, ChannelName};
use herald_protocol::wamp::uri::MAX_URI_LEN;
use herald_protocol::wamp::v1::{self, CurieRule, V1ClientMsg, V1Publish};
use herald_protocol::wamp::{Prefixes, parse_v1};
use herald_protocol::ws::{self, Message};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use super::keepalive::{KeepAlive, Tick};
use super::socket::{Event, Socket};

/// The error URI of a CALL nobody provides.
pub(crate) const NO_SUCH_PROCEDURE: &str = "http://herald.invalid/error#no_such_procedure";
/// What herald calls itself in WELCOME.
const SERVER_IDENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// The v1 session id of a connection, on every WAMP v1 listener (the EspoCRM and Oro profiles'
/// too): the WAMP session number in 20 decimal digits, so exclude/eligible lists map back to
/// session numbers. Ratchet's ids are ~30 characters of `[0-9a-f]`; clients treat ids as opaque
/// strings.
pub(crate) fn session_id(conn: &Conn) -> String {
    format!("{:020}", conn.session)
}

/// The hub publication of a v1 PUBLISH from `conn` on `channel`, for every v1 listener (the
/// EspoCRM and Oro profiles' too). Exclude and eligible lists name v1 session ids, which
/// [`session_id`] makes WAMP session numbers; an empty eligible list means everyone, as in
/// Ratchet's `Topic::broadcast`.
pub(crate) fn publication(channel: ChannelName, p: V1Publish, conn: &Conn) -> Publication {
    let ids = |list: &[String]| list.iter().filter_map(|s| s.parse::<u64>().ok()).collect::<Vec<_>>();
    let eligible = p.eligible.as_deref().filter(|e| !e.is_empty()).map(ids);
    let filter =
        (!p.exclude.is_empty() || eligible.is_some()).then(|| WampFilter { exclude: ids(&p.exclude), eligible });
    Publication::new(channel, p.topic.as_str(), PublicationData::Json(p.event.into_raw()))
        .from_wamp()
        .excluding(p.exclude_me.then_some(conn.socket_id.as_str()))
        .with_filter(filter)
}

/// State of one WAMP v1 session.
struct Session {
    hub: Arc<Hub>,
    app: Arc<App>,
    conn: Arc<Conn>,
    prefixes: Prefixes,
    topics: Vec<ChannelName>,
    /// `wamp_max_publishes_per_second`, made at the first publish.
    publish_budget: Option<Box<TokenBucket>>,
}

/// Runs a WAMP v1 session for `app` until it ends.
// A plain fn returning an `async move` block, not an `async fn`: an `async fn` keeps each
// argument twice in its state (the argument and the local it is moved into), and this future
// is what every idle connection's task holds (docs/benchmarks.md measures idle memory).
#[expect(clippy::manual_async_fn, reason = "an async fn would store its arguments twice")]
pub(crate) fn run<S: AsyncRead + AsyncWrite + Unpin>(
    hub: Arc<Hub>,
    app: Arc<App>,
    mut socket: Socket<S>,
) -> impl Future<Output = ()> {
    async move {
        if !app.config.enabled {
            // A disabled app serves no session: policy-violation close, no WELCOME.
            return socket.refuse(Some(ws::encode_close(1008, "app disabled"))).await;
        }
        let Some(slot) = app.try_connect() else {
            // 1013 "try again later": over the app's max_connections.
            return socket.refuse(Some(ws::encode_close(1013, "over capacity"))).await;
        };
        let conn = hub.connect(Wire::WampV1);
        socket.queue(ws::encode_text(&v1::welcome(&session_id(&conn), Some(SERVER_IDENT))));
        let mut session = Session {
            hub,
            app,
            conn,
            prefixes: Prefixes::new(CurieRule::Ratchet),
            topics: Vec::new(),
            publish_budget: None,
        };
        let cfg = &session.app.config;
        let mut keepalive = KeepAlive::new(
            Duration::from_secs(cfg.activity_timeout.into()),
            Duration::from_secs(cfg.pong_timeout.into()),
            Instant::now(),
        );
        let timer = tokio::time::sleep_until(keepalive.deadline());
        tokio::pin!(timer);

        let close_frame = loop {
            let next = std::future::poll_fn(|cx| {
                if let std::task::Poll::Ready(e) = socket.poll_event(cx, &session.conn.outbox) {
                    return std::task::Poll::Ready(Some(e));
                }
                timer.as_mut().poll(cx).map(|()| None)
            })
            .await;
            let Some(event) = next else {
                match keepalive.tick(Instant::now()) {
                    Tick::Wait(at) => timer.as_mut().reset(at),
                    Tick::Ping(at) => {
                        socket.queue(ws::encode_ping(b"herald"));
                        timer.as_mut().reset(at);
                    }
                    // Ratchet's keepalive closes with 1000 (`WsConnection::close()`).
                    Tick::Expired => break Some(ws::encode_close(1000, "")),
                }
                continue;
            };
            let msg = match event {
                Event::Message(m) => m,
                Event::Violation(e) => break Some(ws::encode_close(e.close_code(), "")),
                Event::Gone => break None,
                Event::CloseRequested(CloseRequest::SlowConsumer) => {
                    break Some(ws::encode_close(1008, "slow consumer"));
                }
                Event::CloseRequested(CloseRequest::Code { .. }) => break Some(ws::encode_close(1001, "")),
            };
            session.app.stats.message_in(herald_core::stats::Protocol::WampV1);
            keepalive.seen(Instant::now());
            match msg {
                Message::Text(text) => {
                    if let Err(code) = session.on_text(&text) {
                        break Some(ws::encode_close(code, ""));
                    }
                }
                // Text frames only: Ratchet's JSON decoding fails on binary input.
                Message::Binary(_) => break Some(ws::encode_close(1007, "")),
                Message::Ping(p) => socket.queue(ws::encode_pong(&p)),
                Message::Pong(_) => {}
                Message::Close(_) => break Some(ws::encode_close(1000, "")),
            }
        };
        session.leave();
        socket.close(close_frame, &session.conn.outbox, false).await;
        drop::<ConnectionSlot>(slot);
    }
}

impl Session {
    /// Handles one message; `Err(code)` closes the socket with that code.
    fn on_text(&mut self, text: &[u8]) -> Result<(), u16> {
        let msg = parse_v1(text).map_err(|e| e.v1_close_code())?;
        let Some(msg) = self.prefixes.apply(msg).map_err(|e| e.v1_close_code())? else {
            return Ok(());
        };
        match msg {
            V1ClientMsg::Prefix { .. } => {}
            V1ClientMsg::Subscribe { topic } => self.subscribe(&topic),
            V1ClientMsg::Unsubscribe { topic } => {
                if let Some(i) = self.topics.iter().position(|t| t.as_str() == topic) {
                    let channel = self.topics.swap_remove(i);
                    self.hub.unsubscribe(&self.app, &self.conn, &channel);
                }
            }
            V1ClientMsg::Publish(p) => self.publish(p),
            V1ClientMsg::Call { call_id, proc_uri, .. } => {
                let desc = format!("no procedure {proc_uri}");
                let _ =
                    self.conn.outbox.push(ws::encode_text(&v1::call_error(&call_id, NO_SUCH_PROCEDURE, &desc, None)));
            }
        }
        Ok(())
    }

    /// A hub channel for `topic` when the session may use it for `action`; `None` means ignore.
    fn channel(&self, action: Action, topic: &str) -> Option<ChannelName> {
        let channel = ChannelName::topic(topic, MAX_URI_LEN).ok()?;
        // Pusher's signed channel kinds are never open to WAMP (docs/wamp.md).
        if channel.kind().access != Access::Public {
            return None;
        }
        // A plain wamp1 listener has no authentication: every session holds the app's
        // anonymous role, and the app's authorizer (rules, a profile's) has the last word.
        let allowed =
            self.app.anonymous_allows(action, topic) && self.app.authorizer().authorize(&self.conn, action, topic);
        allowed.then_some(channel)
    }

    fn subscribe(&mut self, topic: &str) {
        let Some(channel) = self.channel(Action::Subscribe, topic) else { return };
        // WAMP v1 never answers SUBSCRIBE, and a second SUBSCRIBE is simply refused by the hub.
        if self.hub.subscribe(&self.app, &self.conn, &channel, None, |_| {}).is_ok() {
            self.topics.push(channel);
        }
    }

    fn publish(&mut self, p: V1Publish) {
        let Some(channel) = self.channel(Action::Publish, &p.topic) else { return };
        // The topic becomes the Pusher event name: never a reserved `pusher:` one.
        if !super::wamp2::is_app_event_name(&p.topic, usize::MAX) {
            return;
        }
        // Every publish counts against `wamp_max_publishes_per_second`; v1 has no way to say
        // "refused", so a publish over it is dropped, as a denied one is.
        let per_second = self.app.config.wamp_max_publishes_per_second;
        if per_second > 0 {
            let budget = self.publish_budget.get_or_insert_with(|| Box::new(TokenBucket::per_second(per_second)));
            if budget.take(1, Instant::now()).is_err() {
                return;
            }
        }
        self.hub.publish(&self.app, publication(channel, p, &self.conn));
    }

    fn leave(&mut self) {
        for channel in self.topics.drain(..) {
            self.hub.unsubscribe(&self.app, &self.conn, &channel);
        }
        self.hub.disconnect(&self.conn);
    }
}
