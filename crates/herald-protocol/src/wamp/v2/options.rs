//! The request checks a router applies after a message parsed: `Options` dictionaries it acts
//! on (SUBSCRIBE `match` and `get_retained`, PUBLISH exclusion, black/white lists and `retain`,
//! CALL `timeout`) and the URI rules. Failures here answer the one request with ERROR; the session stays up.

use super::msg::{Id, V2Msg};
use super::value::{Dict, Value};
use crate::wamp::WampError;
use crate::wamp::uri::{self, Components, MatchPolicy, UriRule};

/// What a router reads from `SUBSCRIBE.Options`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscribeOptions {
    /// `match`: `"exact"` (default), `"prefix"` or `"wildcard"` (advanced profile
    /// "Pattern-based Subscription").
    pub policy: MatchPolicy,
    /// `get_retained`: send the topic's retained event right after SUBSCRIBED (advanced
    /// profile "Event Retention"; default false).
    pub get_retained: bool,
}

impl SubscribeOptions {
    /// Reads the options; unknown keys are ignored.
    ///
    /// # Errors
    /// [`WampError::InvalidOption`] when `match` is not one of the three policy names, or
    /// `get_retained` is not a boolean.
    pub fn from_dict(options: &Dict) -> Result<SubscribeOptions, WampError> {
        let policy = match options.get("match") {
            None => MatchPolicy::Exact,
            Some(value) => value.as_str().and_then(MatchPolicy::from_name).ok_or(WampError::InvalidOption {
                option: "match",
                expected: "\"exact\", \"prefix\" or \"wildcard\"",
            })?,
        };
        let get_retained = bool_option(options, "get_retained")?.unwrap_or(false);
        Ok(SubscribeOptions { policy, get_retained })
    }
}

/// What a router reads from `PUBLISH.Options` (basic profile `acknowledge`; advanced profile
/// "Publisher Exclusion", "Subscriber Black- and Whitelisting" and "Event Retention", all
/// advertised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOptions {
    /// `acknowledge`: answer with PUBLISHED (default false).
    pub acknowledge: bool,
    /// `exclude_me`: the publisher does not receive its own event (default **true**).
    pub exclude_me: bool,
    /// `exclude`: session ids that must not receive the event.
    pub exclude: Vec<Id>,
    /// `exclude_authid`: authids that must not receive the event.
    pub exclude_authid: Vec<String>,
    /// `exclude_authrole`: authroles that must not receive the event.
    pub exclude_authrole: Vec<String>,
    /// `eligible`: when present, only these session ids may receive it. Unlike v1, a present
    /// but empty list admits nobody: the rule is "present means filter".
    pub eligible: Option<Vec<Id>>,
    /// `eligible_authid`: when present, only these authids may receive it.
    pub eligible_authid: Option<Vec<String>>,
    /// `eligible_authrole`: when present, only these authroles may receive it.
    pub eligible_authrole: Option<Vec<String>>,
    /// `retain`: keep the event as the topic's retained event (advanced profile "Event
    /// Retention"; default false).
    pub retain: bool,
}

impl Default for PublishOptions {
    fn default() -> PublishOptions {
        PublishOptions {
            acknowledge: false,
            exclude_me: true,
            exclude: Vec::new(),
            exclude_authid: Vec::new(),
            exclude_authrole: Vec::new(),
            eligible: None,
            eligible_authid: None,
            eligible_authrole: None,
            retain: false,
        }
    }
}

impl PublishOptions {
    /// Reads the options; unknown keys are ignored.
    ///
    /// # Errors
    /// [`WampError::InvalidOption`] when a known option has the wrong type (a list entry that
    /// is not an id or a string included).
    pub fn from_dict(options: &Dict) -> Result<PublishOptions, WampError> {
        let defaults = PublishOptions::default();
        Ok(PublishOptions {
            acknowledge: bool_option(options, "acknowledge")?.unwrap_or(defaults.acknowledge),
            exclude_me: bool_option(options, "exclude_me")?.unwrap_or(defaults.exclude_me),
            exclude: id_list(options, "exclude")?.unwrap_or_default(),
            exclude_authid: string_list(options, "exclude_authid")?.unwrap_or_default(),
            exclude_authrole: string_list(options, "exclude_authrole")?.unwrap_or_default(),
            eligible: id_list(options, "eligible")?,
            eligible_authid: string_list(options, "eligible_authid")?,
            eligible_authrole: string_list(options, "eligible_authrole")?,
            retain: bool_option(options, "retain")?.unwrap_or(defaults.retain),
        })
    }

    /// Whether a subscriber gets the event: every present whitelist contains it and no
    /// blacklist does (advanced profile, black/white listing rules 1–6), plus `exclude_me`.
    /// A subscriber without an authid or authrole fails the corresponding whitelist.
    #[must_use]
    pub fn admits(&self, publisher: Id, session: Id, authid: Option<&str>, authrole: Option<&str>) -> bool {
        if self.exclude_me && publisher == session {
            return false;
        }
        let listed = |list: &[String], name: Option<&str>| name.is_some_and(|n| list.iter().any(|s| s == n));
        let blacklisted = self.exclude.contains(&session)
            || listed(&self.exclude_authid, authid)
            || listed(&self.exclude_authrole, authrole);
        let whitelisted = self.eligible.as_ref().is_none_or(|ids| ids.contains(&session))
            && self.eligible_authid.as_ref().is_none_or(|l| listed(l, authid))
            && self.eligible_authrole.as_ref().is_none_or(|l| listed(l, authrole));
        !blacklisted && whitelisted
    }
}

/// What a router reads from `CALL.Options` (advanced profile "Call Timeouts", advertised as
/// `call_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallOptions {
    /// `timeout` in milliseconds; `None` when absent or 0 (no timeout). On expiry the dealer
    /// answers the caller with ERROR `wamp.error.timeout`.
    pub timeout_ms: Option<u64>,
}

impl CallOptions {
    /// Reads the options; unknown keys are ignored.
    ///
    /// # Errors
    /// [`WampError::InvalidOption`] when `timeout` is not a non-negative integer.
    pub fn from_dict(options: &Dict) -> Result<CallOptions, WampError> {
        let timeout_ms = match options.get("timeout") {
            None => None,
            Some(value) => {
                let ms = value.as_u64().ok_or(WampError::InvalidOption {
                    option: "timeout",
                    expected: "a non-negative integer (milliseconds)",
                })?;
                (ms > 0).then_some(ms)
            }
        };
        Ok(CallOptions { timeout_ms })
    }
}

impl V2Msg {
    /// Checks every URI a router must validate in a client message (WAMP2 "Incorrect URIs"):
    /// HELLO realm, ABORT/GOODBYE reason, ERROR error, PUBLISH topic, SUBSCRIBE topic under
    /// its `match` policy, CALL/REGISTER procedure. Other messages carry no URI.
    ///
    /// # Errors
    /// [`WampError::InvalidUri`] for the first bad URI (answer: ERROR `wamp.error.invalid_uri`,
    /// or ABORT for HELLO), [`WampError::InvalidOption`] for a bad SUBSCRIBE `match`.
    pub fn check_uris(&self, rule: UriRule) -> Result<(), WampError> {
        match self {
            V2Msg::Hello { realm: uri, .. }
            | V2Msg::Abort { reason: uri, .. }
            | V2Msg::Goodbye { reason: uri, .. }
            | V2Msg::Error { error: uri, .. }
            | V2Msg::Publish { topic: uri, .. }
            | V2Msg::Call { procedure: uri, .. }
            | V2Msg::Register { procedure: uri, .. } => uri::check(uri, rule, Components::NonEmpty),
            V2Msg::Subscribe { options, topic, .. } => {
                SubscribeOptions::from_dict(options)?.policy.check_pattern(topic, rule)
            }
            _ => Ok(()),
        }
    }
}

fn bool_option(options: &Dict, option: &'static str) -> Result<Option<bool>, WampError> {
    options
        .get(option)
        .map(|value| value.as_bool().ok_or(WampError::InvalidOption { option, expected: "a boolean" }))
        .transpose()
}

fn list_option<T>(
    options: &Dict,
    option: &'static str,
    expected: &'static str,
    entry: impl Fn(&Value) -> Option<T>,
) -> Result<Option<Vec<T>>, WampError> {
    let Some(value) = options.get(option) else {
        return Ok(None);
    };
    let items = value.as_list().ok_or(WampError::InvalidOption { option, expected })?;
    items
        .iter()
        .map(|item| entry(item).ok_or(WampError::InvalidOption { option, expected }))
        .collect::<Result<Vec<T>, WampError>>()
        .map(Some)
}

fn id_list(options: &Dict, option: &'static str) -> Result<Option<Vec<Id>>, WampError> {
    list_option(options, option, "a list of session ids", |v| v.as_u64().and_then(Id::new))
}

fn string_list(options: &Dict, option: &'static str) -> Result<Option<Vec<String>>, WampError> {
    list_option(options, option, "a list of strings", |v| v.as_str().map(str::to_owned))
}
