//! WAMP authentication settings of an app (`[apps.wamp_auth]`): which methods a realm accepts,
//! their static principals and the optional dynamic authenticator (the app's backend, asked
//! over HTTP).
//!
//! Only the settings live here; the challenge and signature checks are in
//! `herald_protocol::wamp::auth`, and the HTTP request to a dynamic authenticator is made by the
//! server.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[apps.wamp_auth]`: one optional table per method. A method without a table is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WampAuthConfig {
    /// WAMP-Ticket: the client sends a shared secret in clear text (use TLS).
    pub ticket: Option<MethodConfig>,
    /// WAMP-CRA: HMAC-SHA256 over a challenge, with an optionally PBKDF2-salted secret.
    pub wampcra: Option<MethodConfig>,
    /// WAMP-Cryptosign: an Ed25519 signature over a random challenge.
    pub cryptosign: Option<MethodConfig>,
    /// Longest wait for AUTHENTICATE after CHALLENGE, in milliseconds (default 10000).
    pub challenge_timeout_ms: Option<u64>,
}

/// One authentication method: static principals, a dynamic authenticator, or both (static
/// principals are tried first).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MethodConfig {
    /// authid -> principal.
    pub principals: BTreeMap<String, Principal>,
    /// URL the app's backend answers authentication requests on (`http://` or `https://`).
    pub dynamic: Option<String>,
    /// Longest wait for the dynamic authenticator, in milliseconds.
    pub dynamic_timeout_ms: Option<u64>,
}

/// One static principal. Which secret fields apply depends on the method.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Principal {
    /// The role the session gets.
    pub role: String,
    /// ticket: the expected ticket.
    pub ticket: Option<String>,
    /// wampcra: the shared secret.
    pub secret: Option<String>,
    /// wampcra, salted: the PBKDF2 salt.
    pub salt: Option<String>,
    /// wampcra, salted: PBKDF2 iterations (autobahn's default is 1000).
    pub iterations: Option<u32>,
    /// wampcra, salted: derived key length in bytes (autobahn's default is 32).
    pub keylen: Option<u32>,
    /// cryptosign: the Ed25519 public keys (hex) this principal may sign with.
    pub authorized_keys: Vec<String>,
    /// Presence `user_info` when this principal joins a presence channel (a JSON text).
    pub user_info: Option<String>,
}

/// The authentication method names, as WAMP spells them.
pub const METHODS: [&str; 3] = ["ticket", "wampcra", "cryptosign"];

impl WampAuthConfig {
    /// The settings of method `name`, if the app accepts it.
    #[must_use]
    pub fn method(&self, name: &str) -> Option<&MethodConfig> {
        match name {
            "ticket" => self.ticket.as_ref(),
            "wampcra" => self.wampcra.as_ref(),
            "cryptosign" => self.cryptosign.as_ref(),
            _ => None,
        }
    }

    /// Checks every method; returns the offending key relative to `wamp_auth`.
    ///
    /// # Errors
    /// `(key, problem)` of the first invalid value.
    pub fn validate(&self) -> Result<(), (String, &'static str)> {
        if self.challenge_timeout_ms == Some(0) {
            return Err(("challenge_timeout_ms".to_owned(), "must be at least 1"));
        }
        for name in METHODS {
            let Some(m) = self.method(name) else { continue };
            if let Some(url) = &m.dynamic
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err((format!("{name}.dynamic"), "must be an http:// or https:// URL"));
            }
            if m.dynamic_timeout_ms == Some(0) {
                return Err((format!("{name}.dynamic_timeout_ms"), "must be at least 1"));
            }
            for (authid, p) in &m.principals {
                let key = |field: &str| format!("{name}.principals.{authid}.{field}");
                if p.role.is_empty() {
                    return Err((key("role"), "must name a role"));
                }
                let missing = match name {
                    "ticket" => p.ticket.as_deref().is_none_or(str::is_empty).then_some("ticket"),
                    "wampcra" => p.secret.as_deref().is_none_or(str::is_empty).then_some("secret"),
                    _ => p.authorized_keys.is_empty().then_some("authorized_keys"),
                };
                if let Some(field) = missing {
                    return Err((key(field), "is required for this method"));
                }
                let hex_key = |k: &String| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit());
                if !p.authorized_keys.iter().all(hex_key) {
                    return Err((key("authorized_keys"), "each key must be 64 hex digits (an Ed25519 public key)"));
                }
                if p.user_info.as_deref().is_some_and(|u| serde_json::from_str::<serde_json::Value>(u).is_err()) {
                    return Err((key("user_info"), "must be JSON text"));
                }
            }
        }
        Ok(())
    }

    /// Every role name a principal refers to, with the key that names it.
    pub fn role_refs(&self) -> impl Iterator<Item = (String, &str)> {
        METHODS.into_iter().filter_map(|n| self.method(n).map(|m| (n, m))).flat_map(|(n, m)| {
            m.principals.iter().map(move |(id, p)| (format!("{n}.principals.{id}.role"), p.role.as_str()))
        })
    }

    /// Whether any method is configured.
    #[must_use]
    pub fn any(&self) -> bool {
        METHODS.iter().any(|n| self.method(n).is_some())
    }
}
