//! The per-connection CURIE table of WAMP v1 (PREFIX) and the two ways of resolving a CURIE:
//! Ratchet's, which both target apps were built against, and the WAMP v1 spec's. Ratchet
//! resolves `p:x` to `prefixes[p] . '#' . x`, adding a `#` the spec does not.

use std::borrow::Cow;
use std::collections::HashMap;

use super::V1ClientMsg;
use crate::wamp::WampError;

/// How many PREFIX mappings one connection may hold by default. Neither Espo's nor Oro's
/// client sends any, so the limit only bounds what a hostile client can make us store.
pub const MAX_PREFIXES: usize = 64;

/// How `p:x` is expanded once `p` has been mapped by PREFIX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CurieRule {
    /// Ratchet 0.4 `WampConnection::getUri`: when the URI contains no `http://`-like scheme
    /// (`http`, any number of `s`, `://`, anywhere in the string) and has a `:`, split at every
    /// `:`, take the first two pieces `p` and `x`, and if `p` is mapped return
    /// `mapping + "#" + x`. A `#` is added even though mappings usually end in one, and
    /// anything after a second `:` is dropped.
    #[default]
    Ratchet,
    /// WAMP v1 spec: `p:rest` becomes `mapping + rest` (the mapping carries its own `#`).
    /// `p://...` is an absolute URI and left alone.
    Spec,
}

/// The CURIE prefixes one v1 connection has declared, and how they are resolved.
#[derive(Debug, Clone)]
pub struct Prefixes {
    /// Expansion rule, fixed per listener by configuration.
    rule: CurieRule,
    /// Maximum number of distinct prefixes.
    limit: usize,
    /// Prefix to URI; a later PREFIX for the same prefix replaces the mapping, as in PHP.
    map: HashMap<String, String>,
}

impl Default for Prefixes {
    fn default() -> Prefixes {
        Prefixes::new(CurieRule::default())
    }
}

impl Prefixes {
    /// An empty table using `rule`, holding at most [`MAX_PREFIXES`] prefixes.
    #[must_use]
    pub fn new(rule: CurieRule) -> Prefixes {
        Prefixes::with_limit(rule, MAX_PREFIXES)
    }

    /// An empty table using `rule`, holding at most `limit` prefixes.
    #[must_use]
    pub fn with_limit(rule: CurieRule, limit: usize) -> Prefixes {
        Prefixes { rule, limit, map: HashMap::new() }
    }

    /// The expansion rule in use.
    #[must_use]
    pub fn rule(&self) -> CurieRule {
        self.rule
    }

    /// Number of prefixes declared.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True before any PREFIX.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Records `[1, prefix, uri]`. Replacing an existing prefix always succeeds.
    ///
    /// # Errors
    /// [`WampError::TooManyPrefixes`] when a new prefix would exceed the limit.
    pub fn insert(&mut self, prefix: String, uri: String) -> Result<(), WampError> {
        if self.map.len() >= self.limit && !self.map.contains_key(&prefix) {
            return Err(WampError::TooManyPrefixes { limit: self.limit });
        }
        self.map.insert(prefix, uri);
        Ok(())
    }

    /// Expands `uri` if it is a CURIE with a declared prefix; otherwise returns it unchanged.
    #[must_use]
    pub fn resolve<'a>(&self, uri: &'a str) -> Cow<'a, str> {
        if self.map.is_empty() {
            return Cow::Borrowed(uri);
        }
        match self.rule {
            CurieRule::Ratchet => {
                if has_http_scheme(uri) {
                    return Cow::Borrowed(uri);
                }
                let mut pieces = uri.split(':');
                match (pieces.next(), pieces.next()) {
                    (Some(prefix), Some(action)) => match self.map.get(prefix) {
                        Some(base) => Cow::Owned(format!("{base}#{action}")),
                        None => Cow::Borrowed(uri),
                    },
                    _ => Cow::Borrowed(uri),
                }
            }
            CurieRule::Spec => match uri.split_once(':') {
                Some((prefix, rest)) if !rest.starts_with("//") => match self.map.get(prefix) {
                    Some(base) => Cow::Owned(format!("{base}{rest}")),
                    None => Cow::Borrowed(uri),
                },
                _ => Cow::Borrowed(uri),
            },
        }
    }

    /// Applies one parsed client message to the table: a PREFIX is recorded and consumed
    /// (`Ok(None)`); any other message comes back with its topic or procedure URI resolved,
    /// which is where Ratchet resolves them (CALL, SUBSCRIBE, UNSUBSCRIBE, PUBLISH).
    ///
    /// # Errors
    /// [`WampError::TooManyPrefixes`] from [`Prefixes::insert`].
    pub fn apply(&mut self, msg: V1ClientMsg) -> Result<Option<V1ClientMsg>, WampError> {
        if let V1ClientMsg::Prefix { prefix, uri } = msg {
            self.insert(prefix, uri)?;
            return Ok(None);
        }
        let resolve = |uri: String| match self.resolve(&uri) {
            Cow::Borrowed(_) => uri,
            Cow::Owned(resolved) => resolved,
        };
        Ok(Some(match msg {
            // Consumed above; kept so the match stays exhaustive.
            prefix @ V1ClientMsg::Prefix { .. } => prefix,
            V1ClientMsg::Call { call_id, proc_uri, args } => {
                V1ClientMsg::Call { call_id, proc_uri: resolve(proc_uri), args }
            }
            V1ClientMsg::Subscribe { topic } => V1ClientMsg::Subscribe { topic: resolve(topic) },
            V1ClientMsg::Unsubscribe { topic } => V1ClientMsg::Unsubscribe { topic: resolve(topic) },
            V1ClientMsg::Publish(mut publish) => {
                publish.topic = resolve(publish.topic);
                V1ClientMsg::Publish(publish)
            }
        }))
    }
}

/// Ratchet's `preg_match('/http(s*)\:\/\//', $uri)`: unanchored and case-sensitive.
fn has_http_scheme(uri: &str) -> bool {
    uri.match_indices("http").any(|(at, _)| uri[at + 4..].trim_start_matches('s').starts_with("://"))
}
