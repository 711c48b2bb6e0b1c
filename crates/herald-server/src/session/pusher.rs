//! A Pusher Channels v7 session: the adapter the session driver runs for one Pusher WebSocket.
//!
//! It turns client messages into hub operations (subscribe, client events, sign-in), answers
//! with Pusher frames, probes a silent client with `pusher:ping`, and on the way out removes every
//! trace of the connection from the hub. Errors a client causes are answered on the wire
//! (`pusher:error`, `pusher:subscription_error`) and never end other sessions.

use std::sync::Arc;

use bytes::Bytes;
use herald_core::app::ConnectionSlot;
use herald_core::authorize::Action;
use herald_core::rate::TokenBucket;
use herald_core::{App, Conn, Hub, Outbox, Publication, PublicationData, Wire};
use herald_protocol::pusher::channel_name::{Access, ChannelName};
use herald_protocol::pusher::client_msg::{ClientMsg, Recover, parse_client_msg};
use herald_protocol::pusher::close_code::CloseCode;
use herald_protocol::pusher::server_msg;
use herald_protocol::pusher::socket_auth::{self, PresenceMember, parse_presence_member, parse_user_data};
use herald_protocol::ws;

use super::close::{CloseReason, Goodbye};
use super::driver::{Adapter, Data, Flow, Io};
use super::keepalive::Plan;
use crate::dashboard::tap;

mod recovery;

pub(crate) use recovery::Fetched;

/// The server's keep-alive probe; the client answers `pusher:pong`.
const PING: &[u8] = br#"{"event":"pusher:ping","data":"{}"}"#;

/// The watchlist length hosted Pusher accepts (Pusher's watchlist docs).
const MAX_WATCHLIST: usize = 100;

/// One subscription of this connection.
struct Subscription {
    channel: ChannelName,
    /// On presence channels, the user this socket joined as (added to client events).
    user_id: Option<Box<str>>,
}

/// The signed-in user of this connection.
struct SignedIn {
    id: Box<str>,
    watchlist: Vec<String>,
}

/// State of one Pusher session: the adapter the session driver runs.
pub(crate) struct Pusher {
    hub: Arc<Hub>,
    conn: Arc<Conn>,
    subscriptions: Vec<Subscription>,
    /// Boxed, as is the budget below: most connections never sign in or send a client event,
    /// and every idle connection would carry them inline.
    user: Option<Box<SignedIn>>,
    /// `max_client_events_per_second`, made at the first client event.
    client_events: Option<Box<TokenBucket>>,
    /// The app's connection place, which also names the app.
    slot: ConnectionSlot,
    /// Channels whose recovering subscribe waits for the backend's shared history (boxed: an
    /// idle connection carries one pointer for it).
    #[expect(clippy::box_collection, reason = "one pointer in every idle session, not a Vec's three words")]
    recovering: Option<Box<Vec<ChannelName>>>,
}

impl Pusher {
    /// A session of `app`, holding one of its connection places.
    pub(crate) fn new(hub: Arc<Hub>, slot: ConnectionSlot) -> Self {
        let conn = hub.connect(Wire::Pusher);
        slot.attach(&conn);
        Self { client_events: None, hub, conn, subscriptions: Vec::new(), user: None, slot, recovering: None }
    }

    fn app(&self) -> &Arc<App> {
        self.slot.app()
    }

    /// What the dashboard's console names this session by.
    fn tap(&self) -> (&App, &str) {
        (self.app(), self.conn.socket_id.as_str())
    }
}

impl Adapter for Pusher {
    type Done = Fetched;

    fn outbox(&self) -> &Outbox {
        &self.conn.outbox
    }

    fn keepalive(&self) -> Plan {
        Plan::silence(self.app().config.activity_timeout, self.app().config.pong_timeout)
    }

    fn probe(&self) -> Bytes {
        frame(Bytes::from_static(PING))
    }

    fn open(&mut self, io: &mut Io<'_, Self::Done>) -> Flow {
        io.reply(frame(server_msg::connection_established(
            self.conn.socket_id.as_str(),
            self.app().config.activity_timeout,
        )));
        tracing::debug!(socket_id = %self.conn.socket_id, app = %self.app().config.id, "pusher connected");
        tap::opened(self.app(), self.conn.socket_id.as_str(), "pusher");
        Flow::Continue
    }

    fn on_data(&mut self, data: Data, io: &mut Io<'_, Self::Done>) -> Flow {
        self.app().stats.message_in(herald_core::stats::Protocol::Pusher);
        match data {
            Data::Text(text) => self.on_text(&text, io),
            Data::Binary(_) => {
                io.reply(frame(server_msg::error(None, "Binary frames are not supported; send JSON text frames")))
            }
        }
        Flow::Continue
    }

    fn goodbye(&mut self, reason: CloseReason, _io: &mut Io<'_, Self::Done>) -> Goodbye {
        let goodbye = match reason {
            CloseReason::ClientClosed(_) => Goodbye::with(ws::encode_close(1000, "")),
            CloseReason::Violation(e) => Goodbye::with(ws::encode_close(e.close_code(), &e.to_string())),
            CloseReason::Gone => Goodbye::silent(),
            CloseReason::SlowConsumer => {
                tracing::debug!(socket_id = %self.conn.socket_id, "closing slow consumer");
                Goodbye { frame: Some(close(CloseCode::OverCapacity)), discard_backlog: true }
            }
            CloseReason::Terminated => {
                Goodbye::with(ws::encode_close(CloseCode::Unauthorized.code(), "Connection terminated"))
            }
            CloseReason::Shutdown => Goodbye::with(close(CloseCode::ReconnectNow)),
            // Pusher's codes for a key that names no app, and for a disabled app: pusher-js
            // does not reconnect after either.
            CloseReason::AppRemoved => Goodbye::with(close(CloseCode::AppNotFound)),
            CloseReason::AppDisabled => Goodbye::with(close(CloseCode::AppDisabled)),
            CloseReason::Unresponsive => Goodbye::with(close(CloseCode::PongNotReceived)),
            CloseReason::Protocol(frame) => Goodbye { frame, discard_backlog: false },
        };
        tap::closed(self.app(), self.conn.socket_id.as_str(), goodbye.frame.as_ref());
        goodbye
    }

    /// The backend's shared history answered a recovering subscribe.
    fn on_done(&mut self, done: Fetched, io: &mut Io<'_, Fetched>) -> Flow {
        // Unsubscribed meanwhile (or subscribed again, without recovery): nothing to do.
        let Some(waiting) = self.recovering.as_mut() else { return Flow::Continue };
        let Some(i) = waiting.iter().position(|c| *c == done.channel) else { return Flow::Continue };
        waiting.swap_remove(i);
        if waiting.is_empty() {
            self.recovering = None;
        }
        self.join_fetched(done, io);
        Flow::Continue
    }

    /// Removes every trace of the connection from the hub.
    fn leave(&mut self) {
        let app = self.slot.app();
        for sub in self.subscriptions.drain(..) {
            self.hub.unsubscribe(app, &self.conn, &sub.channel);
        }
        if let Some(user) = self.user.take() {
            self.hub.sign_out(self.app(), &self.conn, &user.id, &user.watchlist);
        }
        self.slot.detach(&self.conn);
        self.hub.disconnect(&self.conn);
        tracing::debug!(socket_id = %self.conn.socket_id, "pusher disconnected");
    }
}

impl Pusher {
    /// Handles one text frame from the client.
    fn on_text(&mut self, text: &[u8], io: &mut Io<'_, Fetched>) {
        let msg = match parse_client_msg(text) {
            Ok(m) => m,
            Err(e) => return io.reply(frame(server_msg::error(None, &e.to_string()))),
        };
        match msg {
            ClientMsg::Ping => io.reply(frame(server_msg::pong())),
            ClientMsg::Pong => {}
            ClientMsg::Subscribe { channel, auth, channel_data, recover } => {
                self.subscribe(&channel, auth.as_deref(), channel_data.as_deref(), recover.as_ref(), io);
            }
            ClientMsg::Unsubscribe { channel } => self.unsubscribe(&channel),
            ClientMsg::Signin { auth, user_data } => self.sign_in(&auth, &user_data, io),
            ClientMsg::ClientEvent { event, channel, data } => {
                self.client_event(event, &channel, data, io);
            }
            ClientMsg::Other { event } => {
                io.reply(frame(server_msg::error(None, &format!("Unsupported event {event:?}"))))
            }
        }
    }

    fn subscribe(
        &mut self,
        name: &str,
        auth: Option<&str>,
        channel_data: Option<&str>,
        recover: Option<&Recover>,
        io: &mut Io<'_, Fetched>,
    ) {
        let cfg = &self.app().config;
        let channel = match ChannelName::parse(name, cfg.max_channel_name_length) {
            Ok(c) => c,
            Err(e) => return refuse(io, self.tap(), name, 400, &e.to_string()),
        };
        // A drop-in profile that shares its app judges every subscription, Pusher's included:
        // the profile's topics are public channels, so no signature would stop anyone.
        let authorizer = self.app().authorizer();
        if authorizer.covers_pusher() && !authorizer.authorize(&self.conn, Action::Subscribe, name) {
            return refuse(io, self.tap(), name, 403, "Not allowed to subscribe to this channel");
        }
        let auth_result = match channel.kind().access {
            Access::Public => Ok(()),
            Access::Private | Access::PrivateEncrypted => socket_auth::verify_channel_auth(
                &cfg.key,
                &cfg.secret,
                self.conn.socket_id.as_str(),
                name,
                None,
                auth.unwrap_or(""),
            ),
            Access::Presence => socket_auth::verify_channel_auth(
                &cfg.key,
                &cfg.secret,
                self.conn.socket_id.as_str(),
                name,
                channel_data,
                auth.unwrap_or(""),
            ),
            Access::ServerToUser => {
                let me = self.user.as_ref().map(|u| &*u.id);
                if me.is_none() || me != channel.server_to_user_id() {
                    return refuse(
                        io,
                        self.tap(),
                        name,
                        403,
                        "Only the signed-in user may subscribe to its own channel",
                    );
                }
                Ok(())
            }
        };
        if let Err(e) = auth_result {
            return refuse(io, self.tap(), name, 401, &e.to_string());
        }
        let member = if channel.kind().access == Access::Presence {
            match self.presence_member(channel_data) {
                Ok(m) => Some(m),
                Err(msg) => return refuse(io, self.tap(), name, 400, &msg),
            }
        } else {
            None
        };
        let user_id = member.as_ref().map(|m| Box::<str>::from(m.user_id.as_str()));
        let conn = Arc::clone(&self.conn);
        let from = match recover {
            Some(Recover::From { epoch, serial }) => Some((epoch.as_str(), *serial)),
            _ => None,
        };
        let invalid = matches!(recover, Some(Recover::Invalid));
        if let Some((epoch, serial)) = from
            && let Some(local) = self.needs_shared_history(&channel, epoch, serial)
        {
            // This node does not hold what the client missed (it started after it, or has not
            // read it yet): the backend's shared history does. The subscription waits for its
            // answer, so there is no live publication to hold back meanwhile; once it is here,
            // the subscription, the replay and this node's own newer publications are taken
            // under the channel's lock (`join_fetched`).
            let fetch = self.hub.backend().history_after(self.app(), &channel, epoch, serial);
            self.recovering.get_or_insert_default().push(channel.clone());
            let (epoch, channel) = (Box::<str>::from(epoch), channel.clone());
            io.spawn(async move {
                let result = fetch.await;
                Fetched { channel, member, epoch, serial, local, result }
            });
            return;
        }
        let hub = Arc::clone(&self.hub);
        let result = self.hub.subscribe_recovering(self.app(), &self.conn, &channel, member, from, |joined| {
            recovery::queue_joined(&hub, &conn, &channel, joined, invalid);
        });
        match result {
            Ok(()) => {
                // Most sockets hold one subscription: room for exactly one, not Vec's first 4.
                if self.subscriptions.capacity() == 0 {
                    self.subscriptions.reserve_exact(1);
                }
                tap::subscription(self.app(), "subscribe", self.conn.socket_id.as_str(), channel.as_str());
                self.subscriptions.push(Subscription { channel, user_id });
            }
            Err(e) => refuse(io, self.tap(), name, 400, &e.to_string()),
        }
    }

    /// The presence member of a subscribe: from `channel_data`, or the signed-in user.
    fn presence_member(&self, channel_data: Option<&str>) -> Result<PresenceMember, String> {
        let Some(data) = channel_data else {
            return match &self.user {
                Some(u) => Ok(PresenceMember { user_id: u.id.to_string(), user_info: None }),
                None => Err("Presence subscriptions need channel_data".into()),
            };
        };
        let member = parse_presence_member(data).map_err(|e| e.to_string())?;
        let info_len = member.user_info.as_ref().map_or(0, |i| i.get().len());
        if info_len > self.app().config.max_presence_user_info_bytes {
            return Err(format!(
                "user_info is {info_len} bytes, more than the {} allowed",
                self.app().config.max_presence_user_info_bytes
            ));
        }
        Ok(member)
    }

    fn unsubscribe(&mut self, name: &str) {
        if let Some(waiting) = self.recovering.as_mut() {
            waiting.retain(|c| c.as_str() != name);
        }
        if let Some(i) = self.subscriptions.iter().position(|s| s.channel.as_str() == name) {
            let sub = self.subscriptions.swap_remove(i);
            self.hub.unsubscribe(self.app(), &self.conn, &sub.channel);
            tap::subscription(self.app(), "unsubscribe", self.conn.socket_id.as_str(), sub.channel.as_str());
        }
    }

    fn sign_in(&mut self, auth: &str, user_data: &str, io: &mut Io<'_, Fetched>) {
        let cfg = &self.app().config;
        if !cfg.enable_user_authentication {
            return io.reply(frame(server_msg::error(None, "User authentication is disabled for this app")));
        }
        let sock = self.conn.socket_id.as_str();
        if let Err(e) = socket_auth::verify_signin(&cfg.key, &cfg.secret, sock, user_data, auth) {
            return io.reply(frame(server_msg::error(Some(CloseCode::Unauthorized.code()), &e.to_string())));
        }
        let mut user = match parse_user_data(user_data) {
            Ok(u) => u,
            Err(e) => return io.reply(frame(server_msg::error(None, &e.to_string()))),
        };
        let truncated = user.watchlist.len() > MAX_WATCHLIST;
        user.watchlist.truncate(MAX_WATCHLIST);
        match self.hub.sign_in(self.app(), &self.conn, &user) {
            Ok((online, offline)) => {
                io.reply(frame(server_msg::signin_success(user_data)));
                if truncated {
                    let msg = format!("Watchlist limit exceeded; accepted: {}", user.watchlist.join(","));
                    io.reply(frame(server_msg::error(Some(CloseCode::WatchlistLimit.code()), &msg)));
                }
                if !user.watchlist.is_empty() {
                    let on: Vec<&str> = online.iter().map(String::as_str).collect();
                    let off: Vec<&str> = offline.iter().map(String::as_str).collect();
                    io.reply(frame(server_msg::watchlist_events(&[("online", &on), ("offline", &off)])));
                }
                if self.user.is_none() {
                    self.user = Some(Box::new(SignedIn { id: user.id.into(), watchlist: user.watchlist }));
                }
            }
            Err(e) => io.reply(frame(server_msg::error(None, &e.to_string()))),
        }
    }

    fn client_event(
        &mut self,
        event: String,
        channel: &str,
        data: Box<serde_json::value::RawValue>,
        io: &mut Io<'_, Fetched>,
    ) {
        let cfg = &self.app().config;
        let (app, conn) = (self.slot.app(), &self.conn);
        let reject = |io: &mut Io<'_, Fetched>, msg: &str| {
            tap::error(app, conn.socket_id.as_str(), Some(channel), Some(CloseCode::ClientEventRateLimit.code()), msg);
            io.reply(frame(server_msg::error(Some(CloseCode::ClientEventRateLimit.code()), msg)));
        };
        if !cfg.enable_client_messages {
            return reject(io, "Client events are not enabled for this app");
        }
        let Some(sub) = self.subscriptions.iter().find(|s| s.channel.as_str() == channel) else {
            return reject(io, &format!("Client event rejected: not subscribed to {channel:?}"));
        };
        if !sub.channel.allows_client_events() {
            return reject(io, "Client events are only allowed on private and presence channels");
        }
        if event.len() > cfg.max_event_name_length {
            return reject(io, "Client event name is too long");
        }
        if data.get().len() > cfg.max_event_data_bytes {
            return reject(io, "Client event data is too large");
        }
        let per_second = cfg.max_client_events_per_second;
        let budget = self.client_events.get_or_insert_with(|| Box::new(TokenBucket::per_second(per_second)));
        if budget.take(1, io.now).is_err() {
            return reject(io, "Client event rejected due to rate limit");
        }
        let publication = Publication::new(sub.channel.clone(), event, PublicationData::Json(data))
            .excluding(Some(self.conn.socket_id.as_str()))
            .with_user_id(sub.user_id.as_deref());
        tap::client_event(self.app(), self.conn.socket_id.as_str(), channel, &publication.event);
        self.hub.publish_client_event(self.app(), publication);
    }
}

/// Refuses a subscription: a channel-scoped `pusher:subscription_error` (what laravel-echo's
/// `.error()` listens to) and a `pusher:error` for clients that only watch the connection.
fn refuse(io: &mut Io<'_, Fetched>, (app, socket_id): (&App, &str), channel: &str, status: u16, msg: &str) {
    tap::error(app, socket_id, Some(channel), Some(status), msg);
    io.reply(frame(server_msg::subscription_error(channel, status, msg)));
    io.reply(frame(server_msg::error(None, msg)));
}

/// A Pusher JSON message as a complete WebSocket text frame.
fn frame(json: Bytes) -> Bytes {
    ws::encode_text(&json)
}

/// The close frame for a Pusher close code.
pub(crate) fn close(code: CloseCode) -> Bytes {
    ws::encode_close(code.code(), code.reason())
}
