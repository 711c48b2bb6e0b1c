//! What a WAMP v2 session may do: its role, the Pusher channels it opened with a channel
//! signature (`herald.pusher.authorize`), its presence member data, and its publish budget.
//! The session loop and the handlers in `wamp2.rs` ask here before they act.

use std::borrow::Cow;

use herald_core::authorize::Action;
use herald_core::authorize::role::Grant;
use herald_core::rate::TokenBucket;
use herald_protocol::pusher::channel_name::{Access, ChannelName};
use herald_protocol::pusher::socket_auth::{PresenceMember, parse_presence_member, verify_channel_auth};
use herald_protocol::wamp::uri::MAX_URI_LEN;
use herald_protocol::wamp::v2::{Dict, Id, Payload, V2Msg, Value, code, reason};
use tokio::time::Instant;

use super::handshake::{self, Identity, SessionRole};
use super::session::Session;

impl Session {
    /// Whether this session may act on `uri`: its role must allow it, and Pusher's signed
    /// channel kinds open only to an explicit permission of a configured role or to a channel
    /// signature; then the app's authorizer (a drop-in profile's rules) has the last word.
    /// The role's grant when allowed (its `disclose` is the caller's to use), else `None`.
    pub(super) fn allowed(&self, action: Action, uri: &str) -> Option<Grant> {
        let grant = self.decide(action, uri);
        let pusher_signed = ChannelName::topic(uri, MAX_URI_LEN).is_ok_and(|c| c.kind().access != Access::Public);
        let hub_name = matches!(action, Action::Subscribe | Action::Publish);
        let ok = if hub_name && pusher_signed {
            grant.explicit
                || (action == Action::Subscribe && self.signed_channels().iter().any(|(c, _)| c.as_str() == uri))
        } else {
            grant.allowed
        };
        (ok && self.app().authorizer().authorize(&self.conn, action, uri)).then_some(grant)
    }

    /// What the session's role decides for `action` on `uri`.
    fn decide(&self, action: Action, uri: &str) -> Grant {
        handshake::decide(self.role(), self.app(), action, uri)
    }

    /// The session's role: its identity's, or the app's anonymous role.
    pub(super) fn role(&self) -> SessionRole {
        self.identity().map_or_else(|| handshake::anonymous_role(self.app()), |i| i.role)
    }

    /// Calls with a timeout in flight.
    pub(super) fn timed_calls(&self) -> &[(u64, Instant)] {
        self.extras.as_ref().map_or(&[], |e| &e.timed_calls)
    }

    /// The authenticated identity, if the session has one.
    pub(super) fn identity(&self) -> Option<&Identity> {
        self.extras.as_ref().and_then(|e| e.identity.as_ref())
    }

    /// Pusher channels this session opened with their signatures.
    pub(super) fn signed_channels(&self) -> &[(ChannelName, Option<String>)] {
        self.extras.as_ref().map_or(&[], |e| &e.signed_channels)
    }

    /// The session's authid (its session id when anonymous).
    pub(super) fn authid(&self) -> Cow<'_, str> {
        self.identity().map_or_else(|| self.conn.session.to_string().into(), |i| i.authid.as_str().into())
    }

    /// The session's authrole.
    pub(super) fn authrole(&self) -> &str {
        self.identity().map_or(self.app().config.wamp_anonymous_role.as_str(), |i| i.authrole.as_str())
    }

    /// Whether a prefix or wildcard subscription on `pattern` may be made. It receives every
    /// matching topic without a check per topic, so neither the role nor the app's authorizer
    /// may refuse any topic under its literal part (before the first empty component).
    pub(super) fn pattern_allowed(&self, pattern: &str) -> bool {
        let literal = pattern.find("..").map_or(pattern, |i| &pattern[..=i]);
        let literal = if pattern.starts_with('.') { "" } else { literal };
        let role_ok = match self.role() {
            SessionRole::Builtin(b) => b.decide(Action::Subscribe).allowed,
            SessionRole::Configured(i) => {
                self.app().config.wamp_roles.get(i as usize).is_some_and(|r| r.allows_pattern(literal))
            }
        };
        role_ok && self.app().authorizer().authorize_pattern(&self.conn, literal)
    }

    /// ERROR `wamp.error.not_authorized` with the text Crossbar gives.
    pub(super) fn refuse(&self, request_type: u64, request: u64, verb: &str, kind: &str, uri: &str) {
        self.send(&V2Msg::Error {
            request_type,
            request: Id::saturating(request),
            details: Dict::new(),
            error: reason::NOT_AUTHORIZED.to_owned(),
            payload: Payload {
                args: Some(vec![Value::Str(format!("session not authorized to {verb} {kind} '{uri}'"))]),
                kwargs: None,
            },
        });
    }

    /// Takes one publish from `wamp_max_publishes_per_second`; false when it is spent.
    pub(super) fn charge_publish(&mut self) -> bool {
        let per_second = self.app().config.wamp_max_publishes_per_second;
        if per_second == 0 {
            return true;
        }
        let extras = self.extras.get_or_insert_with(Box::default);
        let budget = extras.publish_budget.get_or_insert_with(|| TokenBucket::per_second(per_second));
        budget.take(1, Instant::now()).is_ok()
    }

    /// The presence member this session joins `channel` as: from the signed `channel_data`, or
    /// for a role grant the principal's authid and `user_info`. `None` for other channels.
    pub(super) fn presence_member(&self, channel: &ChannelName) -> Result<Option<PresenceMember>, &'static str> {
        if !matches!(channel.kind().access, Access::Presence) {
            return Ok(None);
        }
        let signed = self.signed_channels().iter().find(|(c, _)| c == channel).and_then(|(_, d)| d.as_deref());
        let member = match signed {
            Some(data) => parse_presence_member(data),
            None => {
                let info = self.identity().and_then(|i| i.user_info.as_deref()).unwrap_or("null");
                let data = serde_json::json!({ "user_id": self.authid(), "user_info": serde_json::from_str::<serde_json::Value>(info).unwrap_or_default() });
                parse_presence_member(&data.to_string())
            }
        };
        member.map(Some).map_err(|_| reason::INVALID_ARGUMENT)
    }

    /// `herald.pusher.authorize(channel, auth, channel_data?)`: opens a Pusher private or
    /// presence channel to this session with the signature the app's auth endpoint gives a
    /// Pusher client for this session's socket id.
    pub(super) fn authorize_channel(&mut self, request: u64, payload: &Payload) {
        let args = payload.args.as_deref().unwrap_or_default();
        let text = |i: usize| args.get(i).and_then(Value::as_str);
        let (Some(channel), Some(auth)) = (text(0), text(1)) else {
            return self.error(code::CALL, request, reason::INVALID_ARGUMENT);
        };
        let data = text(2);
        let Ok(name) = ChannelName::topic(channel, MAX_URI_LEN) else {
            return self.error(code::CALL, request, reason::INVALID_ARGUMENT);
        };
        let presence = matches!(name.kind().access, Access::Presence);
        let cfg = &self.app().config;
        let checked = verify_channel_auth(
            &cfg.key,
            &cfg.secret,
            self.conn.socket_id.as_str(),
            channel,
            data.filter(|_| presence),
            auth,
        );
        if checked.is_err() || (presence && data.is_none()) {
            return self.refuse(code::CALL, request, "subscribe", "channel", channel);
        }
        let signed = &mut self.extras.get_or_insert_with(Box::default).signed_channels;
        if !signed.iter().any(|(c, _)| c == &name) {
            signed.push((name, data.filter(|_| presence).map(str::to_owned)));
        }
        self.send(&V2Msg::Result {
            request: Id::saturating(request),
            details: Dict::new(),
            payload: Payload { args: Some(vec![Value::Bool(true)]), kwargs: None },
        });
    }
}
