//! Signed-in users: the hub's sign-in, sign-out and termination, and the index behind them
//! (which connections each user has, and who watches whom).
//!
//! A user is online while at least one connection is signed in as them (Pusher's watchlist docs).
//! Watchers are connections whose `user_data.watchlist` names the user; they get
//! `online`/`offline` events when the user's first connection signs in or last one leaves.

use std::collections::HashMap;
use std::sync::Arc;

use herald_protocol::pusher::server_msg;
use herald_protocol::pusher::socket_auth::UserData;
use herald_protocol::ws;

use super::{Hub, SignInError};
use crate::app::App;
use crate::conn::{Conn, ConnId};
use crate::events::{Event, EventKind};
use crate::outbox::CloseRequest;

impl Hub {
    /// Signs `conn` in as `user`, registers its watchlist and tells watchers the user is online.
    ///
    /// Returns the initial watchlist statuses `(online, offline)` for the connection.
    ///
    /// # Errors
    /// [`SignInError::OtherUser`] when the connection is bound to another user already.
    pub fn sign_in(
        &self,
        app: &App,
        conn: &Arc<Conn>,
        user: &UserData,
    ) -> Result<(Vec<String>, Vec<String>), SignInError> {
        if !conn.bind_user(&user.id) {
            return Err(SignInError::OtherUser);
        }
        let mut users = self.state(app).users.lock();
        if users.sign_in(&user.id, conn) {
            notify_watchers(users.watchers_of(&user.id), "online", &user.id);
            self.report(app, EventKind::UserOnline, || Event::UserOnline { user_id: user.id.as_str().into() });
        }
        users.watch(&user.watchlist, conn);
        let (online, offline) = user.watchlist.iter().cloned().partition(|id| users.is_online(id));
        Ok((online, offline))
    }

    /// Forgets a signed-in connection (on disconnect); tells watchers when the user went offline.
    pub fn sign_out(&self, app: &App, conn: &Conn, user_id: &str, watchlist: &[String]) {
        let mut users = self.state(app).users.lock();
        users.unwatch(watchlist, conn.id);
        if users.sign_out(user_id, conn.id) {
            notify_watchers(users.watchers_of(user_id), "offline", user_id);
            self.report(app, EventKind::UserOffline, || Event::UserOffline { user_id: user_id.into() });
        }
    }

    /// Asks every signed-in connection of `user_id` to close as terminated; returns how many.
    pub fn terminate_user(&self, app: &App, user_id: &str) -> usize {
        let users = self.state(app).users.lock();
        let conns = users.connections(user_id);
        for c in conns {
            c.outbox.request_close(CloseRequest::Terminated);
        }
        conns.len()
    }
}

/// Tells the connections watching a user that it went `online` or `offline`.
fn notify_watchers(watchers: &[Arc<Conn>], status: &str, user_id: &str) {
    if watchers.is_empty() {
        return;
    }
    let frame = ws::encode_text(&server_msg::watchlist_events(&[(status, &[user_id])]));
    for w in watchers {
        let _ = w.outbox.push(frame.clone());
    }
}

/// The user index of one app.
#[derive(Debug, Default)]
pub(crate) struct UserIndex {
    /// User id -> its signed-in connections.
    sessions: HashMap<Box<str>, Vec<Arc<Conn>>>,
    /// Watched user id -> connections watching it.
    watchers: HashMap<Box<str>, Vec<Arc<Conn>>>,
}

impl UserIndex {
    /// Records a signed-in connection; true when the user just came online.
    pub(crate) fn sign_in(&mut self, user_id: &str, conn: &Arc<Conn>) -> bool {
        let conns = self.sessions.entry(user_id.into()).or_default();
        let came_online = conns.is_empty();
        if !conns.iter().any(|c| c.id == conn.id) {
            conns.push(Arc::clone(conn));
        }
        came_online
    }

    /// Forgets a connection; true when its user just went offline.
    pub(crate) fn sign_out(&mut self, user_id: &str, conn: ConnId) -> bool {
        let Some(conns) = self.sessions.get_mut(user_id) else { return false };
        conns.retain(|c| c.id != conn);
        if conns.is_empty() {
            self.sessions.remove(user_id);
            return true;
        }
        false
    }

    /// Every signed-in user.
    pub(crate) fn user_ids(&self) -> Vec<Box<str>> {
        self.sessions.keys().cloned().collect()
    }

    /// Whether the user has a signed-in connection.
    pub(crate) fn is_online(&self, user_id: &str) -> bool {
        self.sessions.contains_key(user_id)
    }

    /// The user's signed-in connections.
    pub(crate) fn connections(&self, user_id: &str) -> &[Arc<Conn>] {
        self.sessions.get(user_id).map_or(&[], Vec::as_slice)
    }

    /// Registers `conn` as a watcher of each id in `watchlist`.
    pub(crate) fn watch(&mut self, watchlist: &[String], conn: &Arc<Conn>) {
        for id in watchlist {
            let w = self.watchers.entry(id.as_str().into()).or_default();
            if !w.iter().any(|c| c.id == conn.id) {
                w.push(Arc::clone(conn));
            }
        }
    }

    /// Removes `conn` from the watchers of each id in `watchlist`.
    pub(crate) fn unwatch(&mut self, watchlist: &[String], conn: ConnId) {
        for id in watchlist {
            if let Some(w) = self.watchers.get_mut(id.as_str()) {
                w.retain(|c| c.id != conn);
                if w.is_empty() {
                    self.watchers.remove(id.as_str());
                }
            }
        }
    }

    /// Connections watching `user_id`.
    pub(crate) fn watchers_of(&self, user_id: &str) -> &[Arc<Conn>] {
        self.watchers.get(user_id).map_or(&[], Vec::as_slice)
    }
}
