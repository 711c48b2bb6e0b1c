//! An app's webhook endpoints as configured (`[[apps.webhooks]]`): where events go, which kinds,
//! which channels, and the checks a configuration must pass before herald starts.

use serde::{Deserialize, Serialize};

/// One webhook endpoint of an app (`[[apps.webhooks]]`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// The event names sent there; empty: Pusher's seven (`user_online` and `user_offline`,
    /// herald's own, only when listed).
    pub event_types: Vec<String>,
    /// Which channels' events are sent there.
    pub filter: WebhookFilter,
    /// Extra request headers (an API token of the receiver, say).
    pub headers: std::collections::BTreeMap<String, String>,
}

/// The channels a webhook endpoint hears about. Events without a channel (user events) pass
/// only when no channel filter is set.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookFilter {
    /// Only channels whose name starts with this.
    pub channel_name_starts_with: Option<String>,
    /// Only channels whose name ends with this.
    pub channel_name_ends_with: Option<String>,
}

impl WebhookConfig {
    /// The kinds sent to this endpoint.
    pub fn kinds(&self) -> Vec<crate::events::EventKind> {
        use crate::events::EventKind;
        if self.event_types.is_empty() {
            return EventKind::ALL
                .into_iter()
                .filter(|k| !matches!(k, EventKind::UserOnline | EventKind::UserOffline))
                .collect();
        }
        self.event_types.iter().filter_map(|n| EventKind::from_name(n)).collect()
    }

    /// The first invalid key (relative to the entry) and what is wrong with it.
    pub(super) fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        let rest = self.url.strip_prefix("http://").or_else(|| self.url.strip_prefix("https://"));
        let host = rest.and_then(|r| r.split(['/', '?', '#']).next()).unwrap_or("");
        if host.is_empty() || self.url.bytes().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
            return Err(("url", "must be an http:// or https:// URL with a host"));
        }
        if self.event_types.iter().any(|n| crate::events::EventKind::from_name(n).is_none()) {
            return Err((
                "event_types",
                "each must be one of channel_occupied, channel_vacated, member_added, member_removed, \
                 client_event, cache_miss, subscription_count, user_online, user_offline",
            ));
        }
        let token =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        for (name, value) in &self.headers {
            let ours = ["content-type", "content-length", "host", "x-pusher-key", "x-pusher-signature", "connection"];
            if !token(name) || ours.contains(&name.to_ascii_lowercase().as_str()) {
                return Err((
                    "headers",
                    "names must be HTTP header names other than Content-Type, Content-Length, Host, Connection and X-Pusher-*",
                ));
            }
            if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(("headers", "values must not hold control characters"));
            }
        }
        Ok(())
    }
}
