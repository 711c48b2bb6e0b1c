//! Oro's WebSocket route table (the bundles' `websocket_routing.yml`): which topics exist and
//! who may subscribe to them.
//!
//! A route is a channel pattern with `{param}` placeholders, each with a regex requirement,
//! matched against the whole topic (GOS PubSubRouter semantics). Oro's built-in routes come
//! first, then the `[[oro.routes]]` of the config file, and the first match wins.

use regex::Regex;
use serde::Deserialize;

/// The keepalive topic: the server publishes to it, clients' publishes are ignored.
pub(crate) const PING_TOPIC: &str = "oro/ping";

/// What kind of topic handler a route has, which decides subscription rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Access {
    /// `oro/ping`: anyone may subscribe; publishes are ignored, the server sends the pings.
    Ping,
    /// Any authenticated connection may subscribe (Oro `BroadcastTopic`).
    Broadcast,
    /// Only the user whose id is the route's `user_id` parameter (Oro `SecuredTopic`).
    Secured,
    /// Like `Secured`, but a `user_id` of `*` is open to everyone (Oro IMAP `SyncFailTopic`).
    SecuredOrAll,
}

/// A route as written in the config file (`[[oro.routes]]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteConfig {
    /// The channel pattern, e.g. `acme/chat/{user_id}`.
    pub(crate) channel: String,
    /// Who may subscribe; `broadcast` when absent.
    #[serde(default = "broadcast")]
    pub(crate) access: Access,
    /// Regex requirement per parameter; `[^/]+` when absent. For Oro's `wildcard: true`, add
    /// `|\*` to the requirement.
    #[serde(default)]
    pub(crate) requirements: std::collections::BTreeMap<String, String>,
}

fn broadcast() -> Access {
    Access::Broadcast
}

/// A route whose pattern or requirement cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// A `{` without `}`, an empty or repeated parameter name.
    #[error("route {0:?}: malformed placeholder")]
    Placeholder(String),
    /// A secured route without a `user_id` parameter.
    #[error("route {0:?}: a secured route needs a {{user_id}} parameter")]
    NoUserId(String),
    /// A requirement is not a valid regex.
    #[error("route {channel:?}: bad requirement: {source}")]
    Regex {
        /// The route.
        channel: String,
        /// The regex compiler's account.
        #[source]
        source: Box<regex::Error>,
    },
}

/// Oro platform's routes (`websocket_routing.yml` of the Sync, Email, EntityConfig, Reminder
/// and Imap bundles).
fn builtin() -> Vec<RouteConfig> {
    let route = |channel: &str, access, reqs: &[(&str, &str)]| RouteConfig {
        channel: channel.to_owned(),
        access,
        requirements: reqs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
    };
    vec![
        route(PING_TOPIC, Access::Ping, &[]),
        route("oro/data/update", Access::Broadcast, &[]),
        route("oro/maintenance", Access::Broadcast, &[]),
        route("oro/outdated_user_page", Access::Broadcast, &[]),
        route("oro/message_queue_heartbeat", Access::Broadcast, &[]),
        route(
            "oro/email_event/{user_id}/{organization_id}",
            Access::Secured,
            &[("user_id", r"\d+"), ("organization_id", r"\d+|\*")],
        ),
        route(
            "oro/attribute_import/{user_id}/{config_model_id}",
            Access::Secured,
            &[("user_id", r"\d+"), ("config_model_id", r"\d+")],
        ),
        route("oro/reminder_remind/{user_id}", Access::Secured, &[("user_id", r"\d+")]),
        route("oro/imap_sync_fail/{user_id}", Access::SecuredOrAll, &[("user_id", r"\d+|\*")]),
    ]
}

/// A topic that matched a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Matched<'t> {
    /// The route's handler kind.
    pub(crate) access: Access,
    /// The `user_id` parameter, for secured routes.
    pub(crate) user_id: Option<&'t str>,
}

/// The compiled route table.
#[derive(Debug)]
pub(crate) struct Routes {
    routes: Vec<(Regex, Access)>,
}

impl Routes {
    /// Oro's routes followed by `extra`.
    ///
    /// # Errors
    /// [`RouteError`] for the first route that does not compile.
    pub(crate) fn new(extra: &[RouteConfig]) -> Result<Self, RouteError> {
        let routes = builtin().iter().chain(extra).map(compile).collect::<Result<_, _>>()?;
        Ok(Self { routes })
    }

    /// The first route matching the whole topic.
    pub(crate) fn find<'t>(&self, topic: &'t str) -> Option<Matched<'t>> {
        self.routes.iter().find_map(|(re, access)| {
            let caps = re.captures(topic)?;
            Some(Matched { access: *access, user_id: caps.name("user_id").map(|m| m.as_str()) })
        })
    }
}

/// Whether a connection of user `user` (None = anonymous) may subscribe to a matched topic.
pub(crate) fn may_subscribe(matched: Matched<'_>, user: Option<i64>) -> bool {
    match matched.access {
        Access::Ping | Access::Broadcast => true,
        Access::SecuredOrAll if matched.user_id == Some("*") => true,
        Access::Secured | Access::SecuredOrAll => {
            let wanted = matched.user_id.and_then(|u| u.parse::<i64>().ok());
            user.is_some() && wanted == user
        }
    }
}

fn compile(route: &RouteConfig) -> Result<(Regex, Access), RouteError> {
    let bad = || RouteError::Placeholder(route.channel.clone());
    let mut pattern = String::from("^(?:");
    let mut names: Vec<&str> = Vec::new();
    let mut rest = route.channel.as_str();
    while let Some(open) = rest.find('{') {
        pattern.push_str(&regex::escape(&rest[..open]));
        let close = rest[open..].find('}').ok_or_else(bad)? + open;
        let name = &rest[open + 1..close];
        let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid || names.contains(&name) {
            return Err(bad());
        }
        names.push(name);
        let requirement = route.requirements.get(name).map_or("[^/]+", String::as_str);
        pattern.push_str(&format!("(?P<{name}>(?:{requirement}))"));
        rest = &rest[close + 1..];
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push_str(")$");
    if matches!(route.access, Access::Secured | Access::SecuredOrAll) && !names.contains(&"user_id") {
        return Err(RouteError::NoUserId(route.channel.clone()));
    }
    let re =
        Regex::new(&pattern).map_err(|e| RouteError::Regex { channel: route.channel.clone(), source: Box::new(e) })?;
    Ok((re, route.access))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oro_routes_match_whole_topics_only() {
        let r = Routes::new(&[]).unwrap();
        assert_eq!(r.find("oro/ping").map(|m| m.access), Some(Access::Ping));
        assert_eq!(r.find("oro/data/update").map(|m| m.access), Some(Access::Broadcast));
        assert!(r.find("oro/data/update/x").is_none());
        assert!(r.find("xoro/data/update").is_none());
        assert!(r.find("oro/unknown").is_none());
        let m = r.find("oro/email_event/7/1").unwrap();
        assert_eq!((m.access, m.user_id), (Access::Secured, Some("7")));
        assert!(r.find("oro/email_event/7/*").is_some(), "organization wildcard");
        assert!(r.find("oro/email_event/*/1").is_none(), "user_id must be digits");
        assert!(r.find("oro/email_event/7").is_none());
        assert_eq!(r.find("oro/imap_sync_fail/*").map(|m| m.access), Some(Access::SecuredOrAll));
        assert!(r.find("oro/reminder_remind/12").is_some());
        assert!(r.find("oro/attribute_import/3/4").is_some());
    }

    #[test]
    fn secured_topics_belong_to_their_user() {
        let r = Routes::new(&[]).unwrap();
        let mine = r.find("oro/email_event/7/1").unwrap();
        assert!(may_subscribe(mine, Some(7)));
        assert!(!may_subscribe(mine, Some(8)));
        assert!(!may_subscribe(mine, None), "anonymous never matches");
        assert!(may_subscribe(r.find("oro/imap_sync_fail/*").unwrap(), None));
        assert!(!may_subscribe(r.find("oro/imap_sync_fail/8").unwrap(), Some(7)));
        assert!(may_subscribe(r.find("oro/data/update").unwrap(), None));
    }

    #[test]
    fn config_routes_compile_and_validate() {
        let extra = RouteConfig {
            channel: "acme/chat/{user_id}/{room}".into(),
            access: Access::Secured,
            requirements: [("user_id".to_owned(), r"\d+".to_owned())].into(),
        };
        let r = Routes::new(std::slice::from_ref(&extra)).unwrap();
        assert_eq!(r.find("acme/chat/5/lobby").map(|m| m.user_id), Some(Some("5")));
        assert!(r.find("acme/chat/5/lobby/x").is_none());
        let bad =
            |channel: &str, access| RouteConfig { channel: channel.into(), access, requirements: Default::default() };
        assert!(matches!(Routes::new(&[bad("a/{x", Access::Broadcast)]), Err(RouteError::Placeholder(_))));
        assert!(matches!(Routes::new(&[bad("a/{x}/{x}", Access::Broadcast)]), Err(RouteError::Placeholder(_))));
        assert!(matches!(Routes::new(&[bad("a/{x}", Access::Secured)]), Err(RouteError::NoUserId(_))));
        let regex = RouteConfig { requirements: [("user_id".to_owned(), "(".to_owned())].into(), ..extra };
        assert!(matches!(Routes::new(&[regex]), Err(RouteError::Regex { .. })));
    }
}
