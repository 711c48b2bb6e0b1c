//! WAMP roles: per-URI permissions for subscribe, publish, register and call, configured the way
//! Crossbar configures them (`uri`, `match`, `allow`, `disclose`).
//!
//! A session carries one role, given by its authentication (or the app's anonymous role). The
//! most specific permission that matches a URI decides: an exact permission over any prefix, a
//! longer prefix over a shorter one, and wildcards last. No matching permission denies.

use herald_protocol::wamp::uri::MatchPolicy;
use serde::{Deserialize, Serialize};

use super::Action;

/// The role every session without credentials gets by default: it may subscribe to public
/// channels, which is what an anonymous Pusher client may do, and nothing else.
pub const ANONYMOUS: &str = "anonymous";
/// The role that may do everything a WAMP session could do before roles existed: subscribe,
/// publish, register and call on any URI except Pusher's signed channels. For trusted networks.
pub const TRUSTED: &str = "trusted";

/// The actions a permission allows (`allow = { subscribe = true, ... }`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Allow {
    /// Receive events of matching topics.
    pub subscribe: bool,
    /// Send events to matching topics.
    pub publish: bool,
    /// Offer matching procedures.
    pub register: bool,
    /// Call matching procedures.
    pub call: bool,
}

impl Allow {
    fn allows(self, action: Action) -> bool {
        match action {
            Action::Subscribe => self.subscribe,
            Action::Publish => self.publish,
            Action::Register => self.register,
            Action::Call => self.call,
        }
    }
}

/// Whether the session's identity is disclosed to the other side (`disclose = { caller = true }`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Disclose {
    /// Callees see the caller's session, authid and authrole in INVOCATION details.
    pub caller: bool,
    /// Subscribers see the publisher's session, authid and authrole in EVENT details.
    pub publisher: bool,
}

/// One permission of a role.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// The URI or URI pattern; with `match = "prefix"`, `""` matches every URI.
    pub uri: String,
    /// `exact` (default), `prefix` or `wildcard`.
    #[serde(rename = "match", default = "exact")]
    pub policy: String,
    /// What a matching request may do.
    #[serde(default)]
    pub allow: Allow,
    /// Whose identity is disclosed for matching requests.
    #[serde(default)]
    pub disclose: Disclose,
}

fn exact() -> String {
    "exact".to_owned()
}

/// A named role (`[[apps.wamp_roles]]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// The name principals and `wamp_anonymous_role` refer to.
    pub name: String,
    /// Its permissions; the most specific match decides.
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

/// What a role decides for one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Whether the permission that allowed it discloses the caller or publisher.
    pub disclose: bool,
    /// Whether the grant names the URI explicitly (a configured permission rather than a
    /// built-in role): only such grants open Pusher's private and presence channels.
    pub explicit: bool,
}

impl Role {
    /// Checks the role; returns the offending field, relative to the role.
    ///
    /// # Errors
    /// The field that is not valid, e.g. `permissions[2].match`.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("name".to_owned());
        }
        for (i, p) in self.permissions.iter().enumerate() {
            let Some(policy) = MatchPolicy::from_name(&p.policy) else {
                return Err(format!("permissions[{i}].match"));
            };
            if p.uri.is_empty() && policy != MatchPolicy::Prefix {
                return Err(format!("permissions[{i}].uri"));
            }
        }
        Ok(())
    }

    /// What this role decides for `action` on `uri`.
    #[must_use]
    pub fn decide(&self, action: Action, uri: &str) -> Grant {
        // Rank: exact beats every prefix, a longer prefix beats a shorter, wildcards come last.
        let rank = |p: &Permission| -> Option<(u8, usize)> {
            let policy = MatchPolicy::from_name(&p.policy)?;
            let specificity = match policy {
                MatchPolicy::Exact => 2,
                MatchPolicy::Prefix => 1,
                MatchPolicy::Wildcard => 0,
            };
            policy.matches(&p.uri, uri).then_some((specificity, p.uri.len()))
        };
        let best = self.permissions.iter().filter_map(|p| rank(p).map(|r| (r, p))).max_by_key(|(r, _)| *r);
        best.map_or_else(Grant::default, |(_, p)| {
            let allowed = p.allow.allows(action);
            let disclose = match action {
                Action::Call => p.disclose.caller,
                Action::Publish => p.disclose.publisher,
                Action::Subscribe | Action::Register => false,
            };
            Grant { allowed, disclose: allowed && disclose, explicit: allowed }
        })
    }
}

/// The built-in role named `name`, when no configured role has that name.
#[must_use]
pub fn builtin(name: &str) -> Option<Builtin> {
    match name {
        ANONYMOUS => Some(Builtin::Anonymous),
        TRUSTED => Some(Builtin::Trusted),
        _ => None,
    }
}

/// The two roles that exist without configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// Subscribe to public channels only.
    Anonymous,
    /// Everything but Pusher's signed channels.
    Trusted,
}

impl Builtin {
    /// What this built-in role decides; neither ever opens a signed Pusher channel.
    #[must_use]
    pub fn decide(self, action: Action) -> Grant {
        let allowed = match self {
            Builtin::Anonymous => action == Action::Subscribe,
            Builtin::Trusted => true,
        };
        Grant { allowed, disclose: false, explicit: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(uri: &str, policy: &str, allow: Allow) -> Permission {
        Permission { uri: uri.into(), policy: policy.into(), allow, disclose: Disclose::default() }
    }

    const SUB: Allow = Allow { subscribe: true, publish: false, register: false, call: false };
    const PUB: Allow = Allow { subscribe: true, publish: true, register: false, call: false };

    #[test]
    fn the_longer_prefix_decides() {
        let role = Role {
            name: "user".into(),
            permissions: vec![perm("com.example.", "prefix", SUB), perm("com.example.open.", "prefix", PUB)],
        };
        assert!(role.decide(Action::Publish, "com.example.open.chat").allowed);
        assert!(!role.decide(Action::Publish, "com.example.other").allowed);
        assert!(role.decide(Action::Subscribe, "com.example.other").allowed);
        assert!(!role.decide(Action::Subscribe, "org.other").allowed);
    }

    #[test]
    fn exact_beats_prefix_and_prefix_beats_wildcard() {
        let role = Role {
            name: "r".into(),
            permissions: vec![
                perm("com..chat", "wildcard", PUB),
                perm("com.", "prefix", SUB),
                perm("com.secret.chat", "exact", Allow::default()),
            ],
        };
        assert!(!role.decide(Action::Publish, "com.a.chat").allowed, "prefix is more specific than wildcard");
        assert!(!role.decide(Action::Subscribe, "com.secret.chat").allowed);
        assert!(role.decide(Action::Subscribe, "com.a.chat").allowed);
    }

    #[test]
    fn an_empty_prefix_matches_everything_and_other_empty_uris_are_invalid() {
        let all = Role { name: "all".into(), permissions: vec![perm("", "prefix", PUB)] };
        assert!(all.validate().is_ok());
        assert!(all.decide(Action::Publish, "anything").allowed);
        let bad = Role { name: "bad".into(), permissions: vec![perm("", "exact", PUB)] };
        assert_eq!(bad.validate(), Err("permissions[0].uri".to_owned()));
        let bad = Role { name: "bad".into(), permissions: vec![perm("x", "regex", PUB)] };
        assert_eq!(bad.validate(), Err("permissions[0].match".to_owned()));
    }

    #[test]
    fn builtin_anonymous_only_subscribes() {
        assert!(Builtin::Anonymous.decide(Action::Subscribe).allowed);
        for a in [Action::Publish, Action::Register, Action::Call] {
            assert!(!Builtin::Anonymous.decide(a).allowed);
            assert!(Builtin::Trusted.decide(a).allowed);
        }
    }
}
