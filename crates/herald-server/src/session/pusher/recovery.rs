//! Recovery on a Pusher subscribe: the acknowledgement carries the channel's history position,
//! then come the publications the client missed, or `pusher:recovery_failed` when they are no
//! longer held. On several nodes, a node that does not hold the gap asks the backend's shared
//! history first and subscribes once it has answered.
//!
//! Everything queued here is queued under the channel's lock, inside the hub's `on_joined`:
//! no later publication can overtake the replay, and none is in it twice.

use std::sync::Arc;

use bytes::Bytes;
use herald_core::backend::FetchError;
use herald_core::history::RecoverError;
use herald_core::hub::Joined;
use herald_core::{Conn, Hub, Position, Publication, Wire};
use herald_protocol::pusher::channel_name::ChannelName;
use herald_protocol::pusher::server_msg;
use herald_protocol::pusher::socket_auth::PresenceMember;

use super::{Io, Pusher, Subscription, frame, refuse};

/// A recovering subscribe that this node's history could not serve, and what the backend's
/// shared history (Redis) answered for it.
pub(crate) struct Fetched {
    pub(super) channel: ChannelName,
    pub(super) member: Option<PresenceMember>,
    /// The client's position.
    pub(super) epoch: Box<str>,
    pub(super) serial: u64,
    /// Why this node's history could not serve it.
    pub(super) local: RecoverError,
    pub(super) result: Result<Vec<Arc<Publication>>, FetchError>,
}

/// On cache channels, queues the cached event or `pusher:cache_miss` after the acknowledgement.
pub(super) fn replay_cached(conn: &Conn, channel: &ChannelName, cached: &Option<Arc<Publication>>, subscription: u64) {
    if channel.kind().cache {
        let replay = match cached {
            Some(p) => p.frame(Wire::Pusher, subscription).clone(),
            None => frame(server_msg::cache_miss(channel.as_str())),
        };
        let _ = conn.outbox.push(replay);
    }
}

/// The acknowledgement of a subscription, with the members on presence channels.
fn ack(channel: &ChannelName, joined: &Joined<'_>) -> Bytes {
    match joined.presence {
        Some(p) => server_msg::presence_subscription_succeeded(channel.as_str(), p.iter()),
        None => server_msg::subscription_succeeded(channel.as_str()),
    }
}

/// Queues the acknowledgement at the channel's position and `pusher:recovery_failed`, then what
/// a plain subscribe gets (the cached event). The subscription stands.
fn queue_failed(conn: &Conn, channel: &ChannelName, joined: &Joined<'_>, at: (&str, u64), e: RecoverError) {
    let _ = conn.outbox.push(frame(server_msg::with_position(&ack(channel, joined), at.0, at.1)));
    let _ = conn.outbox.push(frame(server_msg::recovery_failed(channel.as_str(), e.reason(), at.0, at.1)));
    replay_cached(conn, channel, &joined.cached, joined.subscription);
}

/// Queues what a subscription served by this node's own history answers: the acknowledgement
/// (with the position on channels with history), then the replay the client asked for, its
/// failure, or the cached event. `invalid`: the client sent a `recover` field herald cannot read.
pub(super) fn queue_joined(hub: &Hub, conn: &Conn, channel: &ChannelName, mut joined: Joined<'_>, invalid: bool) {
    let Some(history) = joined.history.take() else {
        // No history here: a recovery request changes nothing.
        let _ = conn.outbox.push(frame(ack(channel, &joined)));
        return replay_cached(conn, channel, &joined.cached, joined.subscription);
    };
    let at = (&*history.epoch, history.serial);
    // The hub counted the recoveries it served or refused; an unreadable request it never saw.
    let replay = match history.replay {
        None if invalid => {
            hub.history_budget().count_recovery(Err(RecoverError::Invalid));
            Some(Err(RecoverError::Invalid))
        }
        other => other,
    };
    match replay {
        Some(Err(e)) => queue_failed(conn, channel, &joined, at, e),
        Some(Ok(publications)) => {
            let _ = conn.outbox.push(frame(server_msg::with_position(&ack(channel, &joined), at.0, at.1)));
            // The replay ends with the newest publication: the cached event is in it or was
            // seen already.
            for p in publications.iter().filter(|p| p.admits(conn)) {
                let _ = conn.outbox.push(p.frame(Wire::Pusher, joined.subscription).clone());
            }
        }
        None => {
            let _ = conn.outbox.push(frame(server_msg::with_position(&ack(channel, &joined), at.0, at.1)));
            replay_cached(conn, channel, &joined.cached, joined.subscription);
        }
    }
}

impl Pusher {
    /// Why this node's history cannot serve a recovery from `(epoch, serial)` when the backend's
    /// shared history may: it sequences the channel, and this node misses the epoch, has trimmed
    /// the gap, or has not read up to the client's serial yet. `None`: serve it here.
    pub(super) fn needs_shared_history(&self, channel: &ChannelName, epoch: &str, serial: u64) -> Option<RecoverError> {
        if !self.hub.backend().sequences(self.app(), channel) {
            return None;
        }
        match self.hub.history_after(self.app(), channel.as_str(), epoch, serial) {
            Err(e @ (RecoverError::UnknownEpoch | RecoverError::Gap | RecoverError::Ahead)) => Some(e),
            _ => None,
        }
    }

    /// Subscribes with what the backend's shared history answered. Under the channel's lock:
    /// the fetched publications, then those this node holds beyond them; the hub skips for this
    /// subscriber what it delivers later at or below the last one replayed (this node may not
    /// have read them yet), so nothing reaches it twice and nothing is missing.
    pub(super) fn join_fetched(&mut self, done: Fetched, io: &mut Io<'_, Fetched>) {
        let Fetched { channel, member, epoch, serial, local, result } = done;
        let user_id = member.as_ref().map(|m| Box::<str>::from(m.user_id.as_str()));
        let (conn, hub, app) = (Arc::clone(&self.conn), Arc::clone(&self.hub), Arc::clone(self.app()));
        let failed = match &result {
            Ok(_) => None,
            // Redis unreachable: the client learns what this node could not do.
            Err(FetchError::Unavailable(e)) => {
                tracing::warn!(channel = %channel.as_str(), error = %e, "recovery from the shared history failed");
                Some(local)
            }
            Err(FetchError::Recover(e)) => Some(*e),
        };
        let fetched = result.unwrap_or_default();
        let through = fetched.last().and_then(|p| p.position()).map_or(serial, |p| p.serial.max(serial));
        let replayed = failed.is_none().then(|| Position { epoch: Arc::from(&*epoch), serial: through });
        let result = self.hub.subscribe_replayed(&app, &self.conn, &channel, member, None, replayed, |joined| {
            let Some(history) = &joined.history else {
                let _ = conn.outbox.push(frame(ack(&channel, &joined)));
                return replay_cached(&conn, &channel, &joined.cached, joined.subscription);
            };
            let now = (&*history.epoch, history.serial);
            if let Some(e) = failed {
                hub.history_budget().count_recovery(Err(e));
                return queue_failed(&conn, &channel, &joined, now, e);
            }
            // What this node holds beyond the fetched ones (still under the channel's lock, in
            // the hub's lock order). When it has not read up to them yet, it holds none, and
            // delivers the rest live.
            let here = *history.epoch == *epoch && history.serial > through;
            let rest = if here { hub.history_after(&app, channel.as_str(), &epoch, through) } else { Ok(Vec::new()) };
            // Trimmed here between the fetch and now (memory budget): a gap after all. And as on
            // one node, a replay the outbox cannot take would close the socket as a slow
            // consumer and the client would ask again: refused up front.
            let limits = hub.outbox_limits();
            let too_large = |rest: &Vec<Arc<Publication>>| {
                let bytes: usize = fetched.iter().chain(rest).map(|p| p.approx_bytes() + 64).sum();
                fetched.len() + rest.len() > limits.max_frames / 2 || bytes > limits.max_bytes / 2
            };
            let rest = match rest.and_then(|r| if too_large(&r) { Err(RecoverError::TooLarge) } else { Ok(r) }) {
                Ok(rest) => rest,
                Err(e) => {
                    hub.history_budget().count_recovery(Err(e));
                    return queue_failed(&conn, &channel, &joined, now, e);
                }
            };
            let at = if here { now } else { (&*epoch, through) };
            let _ = conn.outbox.push(frame(server_msg::with_position(&ack(&channel, &joined), at.0, at.1)));
            hub.history_budget().count_recovery(Ok(fetched.len() + rest.len()));
            for p in fetched.iter().chain(&rest).filter(|p| p.admits(&conn)) {
                let _ = conn.outbox.push(p.frame(Wire::Pusher, joined.subscription).clone());
            }
        });
        match result {
            Ok(()) => self.subscriptions.push(Subscription { channel, user_id }),
            Err(e) => refuse(io, self.tap(), channel.as_str(), 400, &e.to_string()),
        }
    }
}
