//! One Oro connection after its 101 + WELCOME: the WAMP v1 policy that makes a session behave
//! like GosWebSocketBundle's server as Oro configures it.
//!
//! Order, as GOS/Ratchet do it: WELCOME went out with the 101 (the edge wrote both in one
//! write) → ticket check → on failure the `HTTP/1.0 403 Forbidden` text frame and an
//! application close → otherwise WAMP v1 with Oro's routes, per-user topics and publishing
//! rules. Nothing is sent between WELCOME and the client's first message unless the ticket
//! fails. Messages the client sends while its ticket is being checked wait in the socket (the
//! session does not read) and are handled after the check. GOS has no keep-alive.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use herald_core::Conn;
use herald_core::app::ConnectionSlot;
use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::wamp::uri::MAX_URI_LEN;
use herald_protocol::wamp::v1::{self, CallId, V1Publish};
use herald_protocol::ws;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{AuthError, Decision, Identity, Oro};
use crate::session::close::CloseReason;
use crate::session::driver::{self, Flow, Io};
use crate::session::keepalive::Plan;
use crate::session::wamp1::{NO_SUCH_PROCEDURE, Policy, V1, Wamp1, malformed};
use crate::ws::socket::Socket;

/// Runs the session of a connection whose 101 + WELCOME the edge has written; `query` carries
/// the ticket.
pub(crate) async fn run<S>(oro: Arc<Oro>, conn: Arc<Conn>, slot: ConnectionSlot, query: String, socket: Socket<S>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let session = V1::on(Arc::clone(&oro.hub), conn, slot);
    let policy = OroPolicy { oro, query: Some(query), identity: None };
    driver::Session::new(socket, Wamp1::new(session, policy)).await;
}

/// The Oro policy of one session.
pub(crate) struct OroPolicy {
    oro: Arc<Oro>,
    /// The upgrade's query, until the ticket check takes it.
    query: Option<String>,
    /// Who the ticket says the session is; `None` while it is checked.
    identity: Option<Identity>,
}

impl OroPolicy {
    fn decide_subscribe(&self, topic: &str) -> (Decision, Option<ChannelName>) {
        let Some(identity) = &self.identity else { return (Decision::Ignore, None) };
        (self.oro.policy.subscribe(identity, topic), ChannelName::topic(topic, MAX_URI_LEN).ok())
    }
}

impl Policy for OroPolicy {
    type Done = Result<Identity, AuthError>;

    fn keepalive(&self, _session: &V1) -> Plan {
        Plan::Off
    }

    fn ready(&self) -> bool {
        self.identity.is_some()
    }

    fn open(&mut self, _session: &mut V1, io: &mut Io<'_, Self::Done>) -> Flow {
        let oro = Arc::clone(&self.oro);
        let query = self.query.take().unwrap_or_default();
        io.spawn(async move { oro.authenticate(&query).await });
        Flow::Continue
    }

    fn on_done(&mut self, session: &mut V1, done: Self::Done, io: &mut Io<'_, Self::Done>) -> Flow {
        match done {
            Ok(identity) => {
                tracing::debug!(session = %session.session_id(), ?identity, "oro: authenticated");
                self.identity = Some(identity);
                Flow::Continue
            }
            Err(e) => {
                match &e {
                    AuthError::Db(_) | AuthError::NoDatabase => tracing::warn!(error = %e, "oro: ticket refused"),
                    _ => tracing::info!(error = %e, "oro: ticket refused"),
                }
                io.reply(ws::encode_text(forbidden_text(now_unix()).as_bytes()));
                Flow::Close(CloseReason::Protocol(self.oro.settings.application_close.frame()))
            }
        }
    }

    fn subscribe(&mut self, session: &mut V1, topic: String, _io: &mut Io<'_, Self::Done>) -> Flow {
        match self.decide_subscribe(&topic) {
            (Decision::Allow, Some(channel)) => session.join(channel),
            (Decision::Deny, _) => {
                let text = format!("You are not allowed to subscribe on topic \"{topic}\".");
                let _ = session.conn.outbox.push(ws::encode_text(text.as_bytes()));
            }
            // GOS's router throws on a topic without a route; Ratchet closes with 1007.
            (Decision::NoRoute, _) | (_, None) => return malformed(),
            (Decision::Ignore, _) => {}
        }
        Flow::Continue
    }

    fn unsubscribe(&mut self, session: &mut V1, topic: &str, _io: &mut Io<'_, Self::Done>) -> Flow {
        if matches!(self.decide_subscribe(topic), (Decision::NoRoute, _) | (_, None)) {
            return malformed();
        }
        session.part(topic);
        Flow::Continue
    }

    fn publish(&mut self, session: &mut V1, p: V1Publish, _io: &mut Io<'_, Self::Done>) -> Flow {
        let Some(identity) = &self.identity else { return Flow::Continue };
        let Ok(channel) = ChannelName::topic(&p.topic, MAX_URI_LEN) else { return malformed() };
        match self.oro.policy.publish(identity, &p.topic) {
            // Broadcast with WAMP exclude/eligible (an empty eligible list means everybody, as
            // in Ratchet).
            Decision::Allow => session.publish(channel, p),
            Decision::NoRoute => return malformed(),
            Decision::Deny | Decision::Ignore => {}
        }
        Flow::Continue
    }

    fn call(&mut self, session: &mut V1, call_id: &CallId, proc_uri: &str, _io: &mut Io<'_, Self::Done>) -> Flow {
        if !self.oro.policy.routed(proc_uri) {
            return malformed();
        }
        let desc = format!("no procedure {proc_uri}");
        let _ = session.conn.outbox.push(ws::encode_text(&v1::call_error(call_id, NO_SUCH_PROCEDURE, &desc, None)));
        Flow::Continue
    }
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
