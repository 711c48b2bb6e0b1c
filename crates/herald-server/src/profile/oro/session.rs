//! One Oro connection, from WELCOME to the last frame: the owner task of its socket.
//!
//! Order, as GOS/Ratchet do it: origin check → 101 + WELCOME in one write (both in
//! `upgrade.rs`) → ticket check → on
//! failure the `HTTP/1.0 403 Forbidden` text frame and an application close → otherwise WAMP v1
//! with Oro's routes, per-user topics and publishing rules. Nothing is sent
//! between WELCOME and the client's first message unless the ticket fails. Messages the client
//! sends while its ticket is being checked wait in the socket and are handled after the check.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use herald_core::Conn;
use herald_core::app::ConnectionSlot;
use herald_core::outbox::CloseRequest;
use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::wamp::uri::MAX_URI_LEN;
use herald_protocol::wamp::v1::{self, CurieRule, V1ClientMsg, V1Publish};
use herald_protocol::wamp::{Prefixes, parse_v1};
use herald_protocol::ws::{self, Message};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Decision, Identity, Oro};
use crate::ws::socket::{Event, Socket};
use crate::ws::wamp1::{self, NO_SUCH_PROCEDURE, session_id};

/// Runs one Oro connection whose 101 and WELCOME the edge has written (`upgrade.rs`): the
/// ticket check, then the WAMP v1 session. `slot` is the app's connection place, held until
/// the end.
pub(crate) async fn run<S>(oro: Arc<Oro>, conn: Arc<Conn>, slot: ConnectionSlot, query: String, mut socket: Socket<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let identity = match oro.authenticate(&query).await {
        Ok(identity) => identity,
        Err(e) => {
            match &e {
                super::AuthError::Db(_) | super::AuthError::NoDatabase => {
                    tracing::warn!(error = %e, "oro: ticket refused")
                }
                _ => tracing::info!(error = %e, "oro: ticket refused"),
            }
            socket.queue(ws::encode_text(forbidden_text(now_unix()).as_bytes()));
            socket.close(oro.settings.application_close.frame(), &conn.outbox, false).await;
            oro.hub.disconnect(&conn);
            return;
        }
    };
    tracing::debug!(session = %session_id(&conn), ?identity, "oro: authenticated");
    let mut session = Session { oro, conn, identity, prefixes: Prefixes::new(CurieRule::Ratchet), topics: Vec::new() };
    let close = session.serve(&mut socket).await;
    session.leave();
    socket.close(close, &session.conn.outbox, false).await;
    drop(slot);
}

/// The text frame Oro sends on a bad ticket: a Symfony 403 `Response` as a string (what Oro's
/// `ClientEventListener` sends).
fn forbidden_text(now: i64) -> String {
    format!("HTTP/1.0 403 Forbidden\r\nCache-Control: no-cache, private\r\nDate:          {}\r\n\r\n", http_date(now))
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// RFC 7231 IMF-fixdate, e.g. `Mon, 23 Nov 2026 12:00:00 GMT`.
fn http_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = crate::civil_date::from_days(days);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month_name = MONTHS[usize::try_from(month.saturating_sub(1)).unwrap_or(0)];
    format!("{weekday}, {day:02} {month_name} {year} {:02}:{:02}:{:02} GMT", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// An authenticated Oro WAMP v1 session.
struct Session {
    oro: Arc<Oro>,
    conn: Arc<Conn>,
    identity: Identity,
    prefixes: Prefixes,
    topics: Vec<ChannelName>,
}

impl Session {
    /// Handles messages until the session ends; returns the close frame to send, if any.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(&mut self, socket: &mut Socket<S>) -> Option<Bytes> {
        loop {
            let event = std::future::poll_fn(|cx| socket.poll_event(cx, &self.conn.outbox)).await;
            let msg = match event {
                Event::Message(m) => m,
                Event::Violation(e) => return Some(ws::encode_close(e.close_code(), "")),
                Event::Gone => return None,
                Event::CloseRequested(CloseRequest::SlowConsumer) => {
                    return Some(ws::encode_close(1008, "slow consumer"));
                }
                Event::CloseRequested(CloseRequest::Code { .. }) => return Some(ws::encode_close(1001, "")),
            };
            match msg {
                Message::Text(text) => {
                    if let Err(code) = self.on_text(&text) {
                        return Some(ws::encode_close(code, ""));
                    }
                }
                // Ratchet's JSON decoding fails on binary input: 1007.
                Message::Binary(_) => return Some(ws::encode_close(1007, "")),
                Message::Ping(p) => socket.queue(ws::encode_pong(&p)),
                Message::Pong(_) => {}
                Message::Close(_) => return Some(ws::encode_close(1000, "")),
            }
        }
    }

    /// Handles one message; `Err(code)` closes the socket with that code.
    fn on_text(&mut self, text: &[u8]) -> Result<(), u16> {
        let msg = parse_v1(text).map_err(|e| e.v1_close_code())?;
        let Some(msg) = self.prefixes.apply(msg).map_err(|e| e.v1_close_code())? else {
            return Ok(());
        };
        // GOS's router throws on a topic without a route; Ratchet closes with 1007.
        let no_route = 1007;
        match msg {
            V1ClientMsg::Prefix { .. } => {}
            V1ClientMsg::Subscribe { topic } => match self.decide_subscribe(&topic) {
                (Decision::Allow, Some(channel)) => {
                    // WAMP v1 never answers SUBSCRIBE, and a second SUBSCRIBE is refused by the hub.
                    if self.oro.hub.subscribe(&self.oro.app, &self.conn, &channel, None, |_| {}).is_ok() {
                        self.topics.push(channel);
                    }
                }
                (Decision::Deny, _) => {
                    let text = format!("You are not allowed to subscribe on topic \"{topic}\".");
                    let _ = self.conn.outbox.push(ws::encode_text(text.as_bytes()));
                }
                (Decision::NoRoute, _) | (_, None) => return Err(no_route),
                (Decision::Ignore, _) => {}
            },
            V1ClientMsg::Unsubscribe { topic } => {
                if matches!(self.decide_subscribe(&topic), (Decision::NoRoute, _) | (_, None)) {
                    return Err(no_route);
                }
                if let Some(i) = self.topics.iter().position(|t| t.as_str() == topic) {
                    let channel = self.topics.swap_remove(i);
                    self.oro.hub.unsubscribe(&self.oro.app, &self.conn, &channel);
                }
            }
            V1ClientMsg::Publish(p) => {
                let channel = ChannelName::topic(&p.topic, MAX_URI_LEN).map_err(|_| no_route)?;
                match self.oro.policy.publish(&self.identity, &p.topic) {
                    Decision::Allow => self.publish(channel, p),
                    Decision::NoRoute => return Err(no_route),
                    Decision::Deny | Decision::Ignore => {}
                }
            }
            V1ClientMsg::Call { call_id, proc_uri, .. } => {
                if !self.oro.policy.routed(&proc_uri) {
                    return Err(no_route);
                }
                let desc = format!("no procedure {proc_uri}");
                let frame = v1::call_error(&call_id, NO_SUCH_PROCEDURE, &desc, None);
                let _ = self.conn.outbox.push(ws::encode_text(&frame));
            }
        }
        Ok(())
    }

    fn decide_subscribe(&self, topic: &str) -> (Decision, Option<ChannelName>) {
        let channel = ChannelName::topic(topic, MAX_URI_LEN).ok();
        (self.oro.policy.subscribe(&self.identity, topic), channel)
    }

    /// Broadcasts to the topic's subscribers with WAMP exclude/eligible (an empty
    /// eligible list means everybody, as in Ratchet).
    fn publish(&self, channel: ChannelName, p: V1Publish) {
        self.oro.hub.publish(&self.oro.app, wamp1::publication(channel, p, &self.conn));
    }

    fn leave(&mut self) {
        for channel in self.topics.drain(..) {
            self.oro.hub.unsubscribe(&self.oro.app, &self.conn, &channel);
        }
        self.oro.hub.disconnect(&self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_782_982_931), "Thu, 02 Jul 2026 09:02:11 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn forbidden_text_starts_like_symfony_response() {
        let t = forbidden_text(0);
        assert!(t.starts_with("HTTP/1.0 403 Forbidden\r\n"));
        assert!(t.ends_with("GMT\r\n\r\n"));
    }
}
