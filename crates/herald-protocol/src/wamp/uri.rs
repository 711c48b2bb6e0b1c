//! URI rules of WAMP v2 and the three subscription match policies. Pure string logic: no
//! subscription index lives here.
//!
//! WAMP v1 has no URI rules worth checking: a topic is any string, either an absolute URI or a
//! CURIE that [`Prefixes`](super::Prefixes) resolves, and Espo's browser client even uses `""`
//! as a keepalive topic. So only v2 URIs are validated.

use super::WampError;

/// Longest topic or procedure URI herald accepts, in bytes, from any WAMP client (v1 or v2,
/// and the EspoCRM and Oro profiles' v1 listeners). Neither WAMP version sets a limit; this one
/// bounds what one subscription or publication keeps in memory.
pub const MAX_URI_LEN: usize = 512;

/// How strictly v2 URI components are checked (WAMP2 "Identifiers / URIs").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UriRule {
    /// The MUST rule: a component contains no `.`, no `#` and no whitespace.
    #[default]
    Loose,
    /// The SHOULD rule: a component holds only `[0-9a-z_]`.
    Strict,
}

impl UriRule {
    fn allows_char(self, c: char) -> bool {
        match self {
            UriRule::Loose => c != '.' && c != '#' && !c.is_whitespace(),
            UriRule::Strict => c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
        }
    }
}

/// Which components of a URI may be empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Components {
    /// None (topics, procedures, realms, error URIs, exact subscriptions).
    NonEmpty,
    /// Only the last one, so `com.app.` is a valid prefix pattern that matches sub-topics of
    /// `com.app` but not `com.apple`. (WAMP2 leaves prefix patterns to the loose rule; a trailing
    /// dot is our extension and harmless: no published topic ends in one.)
    LastMayBeEmpty,
    /// Any of them (wildcard patterns, where an empty component matches any one component).
    AnyMayBeEmpty,
}

/// Whether `uri` follows `rule`. The empty string is never valid, even where empty components
/// are allowed: it names nothing.
#[must_use]
pub fn is_valid(uri: &str, rule: UriRule, components: Components) -> bool {
    if uri.is_empty() {
        return false;
    }
    let count = uri.split('.').count();
    uri.split('.').enumerate().all(|(i, part)| {
        let empty_ok = match components {
            Components::NonEmpty => false,
            Components::LastMayBeEmpty => i + 1 == count,
            Components::AnyMayBeEmpty => true,
        };
        (empty_ok || !part.is_empty()) && part.chars().all(|c| rule.allows_char(c))
    })
}

/// [`is_valid`] as a `Result`, for `?` in request checks.
///
/// # Errors
/// [`WampError::InvalidUri`] carrying `uri` when it breaks `rule`.
pub fn check(uri: &str, rule: UriRule, components: Components) -> Result<(), WampError> {
    if is_valid(uri, rule, components) { Ok(()) } else { Err(WampError::InvalidUri { uri: uri.to_owned() }) }
}

/// How a v2 subscription's topic selects published topics (`SUBSCRIBE.Options.match`,
/// WAMP advanced profile "Pattern-based Subscription"; the broker advertises
/// `pattern_based_subscription`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MatchPolicy {
    /// The published topic equals the subscription topic (the default).
    #[default]
    Exact,
    /// The published topic starts with the subscription topic, as a string:
    /// `com.myapp.topic.emergency` matches `com.myapp.topic.emergency-low` too.
    Prefix,
    /// Same number of components; an empty pattern component matches any one component:
    /// `com.myapp..userevent` matches `com.myapp.foo.userevent`.
    Wildcard,
}

impl MatchPolicy {
    /// The value of the `match` option that selects this policy.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            MatchPolicy::Exact => "exact",
            MatchPolicy::Prefix => "prefix",
            MatchPolicy::Wildcard => "wildcard",
        }
    }

    /// The policy named by a `match` option value, if it is one of the three.
    #[must_use]
    pub fn from_name(name: &str) -> Option<MatchPolicy> {
        match name {
            "exact" => Some(MatchPolicy::Exact),
            "prefix" => Some(MatchPolicy::Prefix),
            "wildcard" => Some(MatchPolicy::Wildcard),
            _ => None,
        }
    }

    /// Which empty components a subscription topic under this policy may have.
    #[must_use]
    pub fn components(self) -> Components {
        match self {
            MatchPolicy::Exact => Components::NonEmpty,
            MatchPolicy::Prefix => Components::LastMayBeEmpty,
            MatchPolicy::Wildcard => Components::AnyMayBeEmpty,
        }
    }

    /// Checks a subscription topic under this policy.
    ///
    /// # Errors
    /// [`WampError::InvalidUri`] when `pattern` breaks `rule` for this policy.
    pub fn check_pattern(self, pattern: &str, rule: UriRule) -> Result<(), WampError> {
        check(pattern, rule, self.components())
    }

    /// Whether an event published to `topic` reaches a subscription on `pattern`.
    #[must_use]
    pub fn matches(self, pattern: &str, topic: &str) -> bool {
        match self {
            MatchPolicy::Exact => pattern == topic,
            MatchPolicy::Prefix => topic.starts_with(pattern),
            MatchPolicy::Wildcard => {
                let mut want = pattern.split('.');
                let mut got = topic.split('.');
                loop {
                    match (want.next(), got.next()) {
                        (None, None) => return true,
                        (Some(w), Some(g)) if w.is_empty() || w == g => {}
                        _ => return false,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
