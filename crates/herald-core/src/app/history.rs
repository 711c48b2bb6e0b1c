//! Which channels of an app keep a history (`[[apps.history]]`), and how much of it.
//!
//! Off unless configured: a channel matched by no entry keeps nothing and its frames are
//! unchanged byte for byte.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Most publications one channel may hold.
pub const MAX_MESSAGES_LIMIT: usize = 10_000;
/// Longest a publication may be held: one day.
pub const MAX_AGE_LIMIT_SECS: u64 = 86_400;

/// One history entry of an app (`[[apps.history]]`); the first entry whose pattern matches a
/// channel decides its history.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// An exact channel name, `prefix*`, `*suffix` or `*` (every channel).
    pub channels: String,
    /// Most publications held per channel.
    pub max_messages: usize,
    /// Seconds a publication is held.
    pub max_age_secs: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self { channels: String::new(), max_messages: 100, max_age_secs: 300 }
    }
}

/// How much of one channel's publications is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryPolicy {
    /// Most publications held.
    pub max_messages: usize,
    /// Longest a publication is held.
    pub max_age: Duration,
}

impl HistoryConfig {
    /// Whether the entry's pattern matches `channel`.
    pub fn matches(&self, channel: &str) -> bool {
        let p = self.channels.as_str();
        if p == "*" {
            true
        } else if let Some(prefix) = p.strip_suffix('*') {
            channel.starts_with(prefix)
        } else if let Some(suffix) = p.strip_prefix('*') {
            channel.ends_with(suffix)
        } else {
            channel == p
        }
    }

    /// The policy this entry gives its channels.
    pub fn policy(&self) -> HistoryPolicy {
        HistoryPolicy { max_messages: self.max_messages, max_age: Duration::from_secs(self.max_age_secs) }
    }

    /// Checks the entry; the error names the field.
    ///
    /// # Errors
    /// `(field, problem)` for the first bad value.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let p = self.channels.as_str();
        let inner = p.strip_suffix('*').or_else(|| p.strip_prefix('*')).unwrap_or(p);
        if p.is_empty() || inner.contains('*') {
            return Err(("channels", "must be a channel name, prefix*, *suffix or *"));
        }
        if self.max_messages == 0 || self.max_messages > MAX_MESSAGES_LIMIT {
            return Err(("max_messages", "must be between 1 and 10000"));
        }
        if self.max_age_secs == 0 || self.max_age_secs > MAX_AGE_LIMIT_SECS {
            return Err(("max_age_secs", "must be between 1 and 86400 (one day)"));
        }
        Ok(())
    }
}

/// The policy of `channel` under `entries`: the first match, or none (no history).
pub fn policy_for(entries: &[HistoryConfig], channel: &str) -> Option<HistoryPolicy> {
    entries.iter().find(|e| e.matches(channel)).map(HistoryConfig::policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(channels: &str) -> HistoryConfig {
        HistoryConfig { channels: channels.into(), ..HistoryConfig::default() }
    }

    #[test]
    fn patterns_match_exact_prefix_suffix_and_all() {
        assert!(entry("news").matches("news") && !entry("news").matches("news2"));
        assert!(entry("private-*").matches("private-a") && !entry("private-*").matches("a"));
        assert!(entry("*-feed").matches("x-feed") && !entry("*-feed").matches("feed-x"));
        assert!(entry("*").matches("anything"));
    }

    #[test]
    fn first_matching_entry_wins() {
        let mut a = entry("chat-*");
        a.max_messages = 5;
        let entries = [a, entry("*")];
        assert_eq!(policy_for(&entries, "chat-1").map(|p| p.max_messages), Some(5));
        assert_eq!(policy_for(&entries, "other").map(|p| p.max_messages), Some(100));
        assert_eq!(policy_for(&entries[..1], "other"), None);
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(entry("").validate(), Err(("channels", "must be a channel name, prefix*, *suffix or *")));
        assert!(entry("a*b*").validate().is_err());
        let mut e = entry("a");
        e.max_messages = 10_001;
        assert_eq!(e.validate().map_err(|(f, _)| f), Err("max_messages"));
        let mut e = entry("a");
        e.max_age_secs = 0;
        assert_eq!(e.validate().map_err(|(f, _)| f), Err("max_age_secs"));
        assert!(entry("*").validate().is_ok());
    }
}
