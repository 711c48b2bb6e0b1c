//! Who may subscribe, publish, register and call: the authorization hook of WAMP sessions.
//!
//! Each app has one [`Authorizer`]: allow-all by default, a rule list from the config, or one a
//! drop-in profile (EspoCRM, Oro) installs. Adapters ask it before acting and answer a denial
//! the way their protocol does (WAMP v2 ERROR `wamp.error.not_authorized`, WAMP v1 silence or
//! CALLERROR).

pub mod principal;
pub mod role;

use herald_protocol::wamp::uri::MatchPolicy;
use serde::{Deserialize, Serialize};

use crate::conn::Conn;

/// What a session asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Receive events of a topic.
    Subscribe,
    /// Send an event to a topic.
    Publish,
    /// Offer a procedure.
    Register,
    /// Call a procedure.
    Call,
}

/// Decides whether a session may perform an action on a URI.
pub trait Authorizer: Send + Sync + std::fmt::Debug + 'static {
    /// True when `conn` may perform `action` on `uri`.
    fn authorize(&self, conn: &Conn, action: Action, uri: &str) -> bool;

    /// Whether Pusher subscriptions are checked too (with [`Action::Subscribe`] and the channel
    /// name). Off by default: `wamp_rules` speak of WAMP URIs, and Pusher guards its channels
    /// with its own signatures. A drop-in profile's rules are about its topics whatever the
    /// protocol, so its authorizer turns this on.
    fn covers_pusher(&self) -> bool {
        false
    }

    /// Whether a prefix or wildcard subscription whose topics all start with `literal` may be
    /// made: it then receives every matching topic without a check per topic, so no topic
    /// under `literal` may be one the authorizer would refuse on its own. By default, only
    /// authorizers that do not judge Pusher channels (whose rules are topic by topic) admit it
    /// when `literal` itself is allowed.
    fn authorize_pattern(&self, conn: &Conn, literal: &str) -> bool {
        !self.covers_pusher() && self.authorize(conn, Action::Subscribe, literal)
    }
}

/// Everyone may do everything (the default, like Crossbar's anonymous role in its own realm).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn authorize(&self, _conn: &Conn, _action: Action, _uri: &str) -> bool {
        true
    }
}

/// One rule of a `wamp_rules` list.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// `subscribe`, `publish`, `register`, `call`, or `*` for any.
    pub action: String,
    /// The URI, or `*` for any.
    pub uri: String,
    /// `exact` (default), `prefix` or `wildcard`.
    #[serde(rename = "match", default = "exact")]
    pub policy: String,
    /// Whether a matching request is allowed.
    pub allow: bool,
}

fn exact() -> String {
    "exact".to_owned()
}

impl Rule {
    /// Checks the rule's fields; returns the offending field name.
    ///
    /// # Errors
    /// The name of the field that is not valid.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.action != "*" && action_named(&self.action).is_none() {
            return Err("action");
        }
        if MatchPolicy::from_name(&self.policy).is_none() {
            return Err("match");
        }
        if self.uri.is_empty() {
            return Err("uri");
        }
        Ok(())
    }

    fn matches(&self, action: Action, uri: &str) -> bool {
        let action_ok = self.action == "*" || action_named(&self.action) == Some(action);
        let policy = MatchPolicy::from_name(&self.policy).unwrap_or(MatchPolicy::Exact);
        action_ok && (self.uri == "*" || policy.matches(&self.uri, uri))
    }
}

fn action_named(name: &str) -> Option<Action> {
    match name {
        "subscribe" => Some(Action::Subscribe),
        "publish" => Some(Action::Publish),
        "register" => Some(Action::Register),
        "call" => Some(Action::Call),
        _ => None,
    }
}

/// The first matching rule decides; no match denies.
#[derive(Clone, Debug, Default)]
pub struct RuleList {
    rules: Vec<Rule>,
}

impl RuleList {
    /// A rule list (validate the rules first).
    pub fn new(rules: Vec<Rule>) -> Self {
        Self { rules }
    }
}

impl Authorizer for RuleList {
    fn authorize(&self, _conn: &Conn, action: Action, uri: &str) -> bool {
        self.rules.iter().find(|r| r.matches(action, uri)).is_some_and(|r| r.allow)
    }

    /// The literal prefix must be allowed, and no rule may refuse a subscription to a URI
    /// under it (which the pattern would otherwise deliver).
    fn authorize_pattern(&self, conn: &Conn, literal: &str) -> bool {
        let refuses_under = |r: &Rule| {
            !r.allow
                && matches!(action_named(&r.action), Some(Action::Subscribe) | None)
                && (r.uri == "*" || r.uri.starts_with(literal))
        };
        self.authorize(conn, Action::Subscribe, literal) && !self.rules.iter().any(refuses_under)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::ConnIds;
    use crate::outbox::OutboxLimits;
    use crate::wire::Wire;

    fn rule(action: &str, uri: &str, policy: &str, allow: bool) -> Rule {
        Rule { action: action.into(), uri: uri.into(), policy: policy.into(), allow }
    }

    #[test]
    fn first_matching_rule_decides_and_nothing_matching_denies() {
        let (id, sid) = ConnIds::new().next();
        let conn = Conn::new(id, sid, Wire::WampV1, OutboxLimits::default());
        let list = RuleList::new(vec![
            rule("subscribe", "com.app.secret", "exact", false),
            rule("subscribe", "com.app.", "prefix", true),
            rule("*", "com.public", "exact", true),
        ]);
        assert!(!list.authorize(&conn, Action::Subscribe, "com.app.secret"));
        assert!(list.authorize(&conn, Action::Subscribe, "com.app.news"));
        assert!(!list.authorize(&conn, Action::Publish, "com.app.news"));
        assert!(list.authorize(&conn, Action::Call, "com.public"));
        assert!(!list.authorize(&conn, Action::Call, "other"));
    }

    #[test]
    fn invalid_rules_name_their_field() {
        assert_eq!(rule("read", "x", "exact", true).validate(), Err("action"));
        assert_eq!(rule("call", "x", "regex", true).validate(), Err("match"));
        assert_eq!(rule("call", "", "exact", true).validate(), Err("uri"));
    }
}
