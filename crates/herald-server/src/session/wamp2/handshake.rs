//! Opening a WAMP v2 session: HELLO → (CHALLENGE → AUTHENTICATE) → WELCOME or ABORT.
//!
//! The steps are plain functions over the realm's settings and the client's messages; the
//! session loop does the I/O (sending the frames, asking a dynamic authenticator over HTTP and
//! feeding its answer back with [`answered`]). Refusals carry the reasons and messages Crossbar
//! gives, so clients written against Crossbar see what they expect.

use herald_core::App;
use herald_core::authorize::Action;
use herald_core::authorize::principal::{MethodConfig, Principal};
use herald_core::authorize::role::{self, Builtin, Grant};
use herald_protocol::wamp::auth::{self, CraChallenge, CraSalt, PublicKey};
use herald_protocol::wamp::v2::{Dict, Value};

/// WAMP's reason when no offered method is accepted.
pub(super) const NO_AUTH_METHOD: &str = "wamp.error.no_auth_method";
/// WAMP's reason for a refused identity.
pub(super) const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";
/// WAMP's reason when authentication could not be carried out.
pub(super) const AUTHENTICATION_FAILED: &str = "wamp.error.authentication_failed";

/// Which role a session holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SessionRole {
    /// `anonymous` or `trusted`.
    Builtin(Builtin),
    /// Index into the app's `wamp_roles` (u32: the role is in every session's state).
    Configured(u32),
}

/// Who an established session is.
#[derive(Debug)]
pub(super) struct Identity {
    pub(super) authid: String,
    pub(super) authrole: String,
    pub(super) authmethod: &'static str,
    pub(super) authprovider: &'static str,
    pub(super) role: SessionRole,
    /// Presence `user_info` (JSON text) for channels the role opens.
    pub(super) user_info: Option<String>,
}

/// What `role` decides for `action` on `uri` in `app`.
pub(super) fn decide(role: SessionRole, app: &App, action: Action, uri: &str) -> Grant {
    match role {
        SessionRole::Builtin(b) => b.decide(action),
        SessionRole::Configured(i) => {
            app.config.wamp_roles.get(i as usize).map_or_else(Grant::default, |r| r.decide(action, uri))
        }
    }
}

/// Resolves a role name of the app's config.
fn role_named(app: &App, name: &str) -> Option<SessionRole> {
    if let Some(i) = app.config.wamp_roles.iter().position(|r| r.name == name) {
        return u32::try_from(i).ok().map(SessionRole::Configured);
    }
    role::builtin(name).map(SessionRole::Builtin)
}

/// A refusal: ABORT with this reason and message.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) reason: &'static str,
    pub(super) message: String,
}

fn refuse(reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { reason, message: message.into() }
}

fn unknown(authid: &str) -> Refusal {
    refuse(NOT_AUTHORIZED, format!("no principal with authid \"{authid}\" exists"))
}

/// What the session loop does next.
#[derive(Debug)]
pub(super) enum Step {
    /// Send WELCOME: the session is open.
    Welcome(Identity),
    /// Send CHALLENGE(method, extra) and wait for AUTHENTICATE.
    Challenge(&'static str, Dict, Pending),
    /// Ask the dynamic authenticator (POST this JSON body), then call [`answered`].
    Ask(serde_json::Value, Pending),
    /// Send ABORT.
    Abort(Refusal),
}

/// A handshake waiting for the client's AUTHENTICATE or the authenticator's answer.
#[derive(Debug)]
pub(super) enum Pending {
    /// WAMP-Ticket with a static principal, or (None) checked by the dynamic authenticator.
    Ticket { authid: String, principal: Option<Principal> },
    /// WAMP-CRA, before the challenge (dynamic: the secret comes from the authenticator) or after it.
    Cra { authid: String, expect: Option<CraExpect> },
    /// WAMP-Cryptosign: the challenge sent and the key it must be signed with.
    Cryptosign { authid: Option<String>, key: PublicKey, challenge: [u8; 32] },
}

/// A WAMP-CRA challenge sent and what its answer must be.
#[derive(Debug)]
pub(super) struct CraExpect {
    key: Vec<u8>,
    challenge: String,
    role: SessionRole,
    authrole: String,
    provider: &'static str,
    user_info: Option<String>,
}

/// The randomness and session facts a step needs.
pub(super) struct Context<'a> {
    pub(super) app: &'a App,
    pub(super) session: u64,
    /// 32 fresh random bytes for this handshake's challenge.
    pub(super) random: [u8; 32],
    /// The current time (WAMP-CRA's `timestamp`).
    pub(super) now: std::time::SystemTime,
}

/// The app's anonymous role; a realm that admits no anonymous session never opens one, so
/// the fallback (nothing allowed but what `anonymous` allows) is never used in practice.
pub(super) fn anonymous_role(app: &App) -> SessionRole {
    role_named(app, &app.config.wamp_anonymous_role).unwrap_or(SessionRole::Builtin(Builtin::Anonymous))
}

/// The anonymous identity of a session, or the refusal when the app admits none.
pub(super) fn anonymous(app: &App, session: u64) -> Result<Identity, Refusal> {
    let name = app.config.wamp_anonymous_role.as_str();
    let role = role_named(app, name).filter(|_| !name.is_empty());
    let role = role.ok_or_else(|| refuse(NOT_AUTHORIZED, "this realm admits no anonymous sessions"))?;
    Ok(Identity {
        authid: session.to_string(),
        authrole: name.to_owned(),
        authmethod: "anonymous",
        authprovider: "static",
        role,
        user_info: None,
    })
}

fn identity(
    app: &App,
    authid: &str,
    method: &'static str,
    provider: &'static str,
    role_name: &str,
    user_info: Option<String>,
) -> Result<Identity, Refusal> {
    let role = role_named(app, role_name)
        .ok_or_else(|| refuse(NOT_AUTHORIZED, format!("authrole \"{role_name}\" does not exist in this realm")))?;
    Ok(Identity {
        authid: authid.to_owned(),
        authrole: role_name.to_owned(),
        authmethod: method,
        authprovider: provider,
        role,
        user_info,
    })
}

/// Handles HELLO's details: the first offered method the realm accepts decides.
pub(super) fn hello(cx: &Context<'_>, details: &Dict) -> Step {
    let offered: Vec<&str> = match details.get("authmethods") {
        None => vec!["anonymous"],
        Some(v) => v.as_list().unwrap_or_default().iter().filter_map(Value::as_str).collect(),
    };
    let authid = details.get("authid").and_then(Value::as_str).filter(|s| !s.is_empty());
    let authextra = details.get("authextra").and_then(Value::as_dict);
    let auth = &cx.app.config.wamp_auth;
    for method in offered {
        let step = match method {
            "anonymous" if !cx.app.config.wamp_anonymous_role.is_empty() => {
                anonymous(cx.app, cx.session).map_or_else(Step::Abort, Step::Welcome)
            }
            "ticket" => match auth.ticket.as_ref() {
                Some(m) => ticket(m, authid),
                None => continue,
            },
            "wampcra" => match auth.wampcra.as_ref() {
                Some(m) => cra(cx, m, authid),
                None => continue,
            },
            "cryptosign" => match auth.cryptosign.as_ref() {
                Some(_) => cryptosign(cx, authid, authextra),
                None => continue,
            },
            _ => continue,
        };
        return step;
    }
    Step::Abort(refuse(NO_AUTH_METHOD, "no authentication method offered is accepted by this realm"))
}

fn ticket(m: &MethodConfig, authid: Option<&str>) -> Step {
    let Some(authid) = authid else { return Step::Abort(refuse(NOT_AUTHORIZED, "WAMP-Ticket needs an authid")) };
    match m.principals.get(authid) {
        Some(p) => Step::Challenge(
            "ticket",
            Dict::new(),
            Pending::Ticket { authid: authid.to_owned(), principal: Some(p.clone()) },
        ),
        None if m.dynamic.is_some() => {
            Step::Challenge("ticket", Dict::new(), Pending::Ticket { authid: authid.to_owned(), principal: None })
        }
        None => Step::Abort(unknown(authid)),
    }
}

fn cra(cx: &Context<'_>, m: &MethodConfig, authid: Option<&str>) -> Step {
    let Some(authid) = authid else { return Step::Abort(refuse(NOT_AUTHORIZED, "WAMP-CRA needs an authid")) };
    match m.principals.get(authid) {
        Some(p) => cra_challenge(cx, authid, p, "static"),
        None if m.dynamic.is_some() => {
            let body = request_body(cx, "wampcra", Some(authid), None, None);
            Step::Ask(body, Pending::Cra { authid: authid.to_owned(), expect: None })
        }
        None => Step::Abort(unknown(authid)),
    }
}

fn cra_challenge(cx: &Context<'_>, authid: &str, p: &Principal, provider: &'static str) -> Step {
    let Some(role) = role_named(cx.app, &p.role) else {
        return Step::Abort(refuse(NOT_AUTHORIZED, format!("authrole \"{}\" does not exist in this realm", p.role)));
    };
    let salt = p.salt.as_ref().map(|s| CraSalt {
        salt: s.clone(),
        iterations: p.iterations.unwrap_or(1000),
        keylen: p.keylen.unwrap_or(32),
    });
    let nonce = hex::encode(&cx.random[..16]);
    let challenge = CraChallenge {
        authid,
        authrole: &p.role,
        authprovider: provider,
        nonce: &nonce,
        timestamp: &iso8601(cx.now),
        session: cx.session,
    }
    .to_json();
    let mut extra = Dict::new().with("challenge", challenge.as_str());
    if let Some(s) = &salt {
        extra.insert("salt", s.salt.as_str());
        extra.insert("iterations", u64::from(s.iterations));
        extra.insert("keylen", u64::from(s.keylen));
    }
    let key = auth::cra_key(p.secret.as_deref().unwrap_or_default(), salt.as_ref());
    let expect = CraExpect { key, challenge, role, authrole: p.role.clone(), provider, user_info: p.user_info.clone() };
    Step::Challenge("wampcra", extra, Pending::Cra { authid: authid.to_owned(), expect: Some(expect) })
}

fn cryptosign(cx: &Context<'_>, authid: Option<&str>, authextra: Option<&Dict>) -> Step {
    let pubkey = authextra.and_then(|e| e.get("pubkey")).and_then(Value::as_str);
    let Some(key) = pubkey.and_then(|k| PublicKey::from_hex(k).ok()) else {
        return Step::Abort(refuse(NOT_AUTHORIZED, "WAMP-Cryptosign needs authextra.pubkey (64 hex digits)"));
    };
    let extra = Dict::new().with("challenge", hex::encode(cx.random).as_str()).with("channel_binding", Value::Null);
    Step::Challenge(
        "cryptosign",
        extra,
        Pending::Cryptosign { authid: authid.map(str::to_owned), key, challenge: cx.random },
    )
}

/// Handles AUTHENTICATE for a pending handshake.
pub(super) fn authenticate(cx: &Context<'_>, pending: Pending, signature: &str) -> Step {
    match pending {
        Pending::Ticket { authid, principal: Some(p) } => {
            match auth::verify_ticket(p.ticket.as_deref().unwrap_or_default(), signature) {
                Ok(()) => welcome(identity(cx.app, &authid, "ticket", "static", &p.role, p.user_info)),
                Err(e) => Step::Abort(refuse(NOT_AUTHORIZED, e.to_string())),
            }
        }
        Pending::Ticket { authid, principal: None } => {
            let body = request_body(cx, "ticket", Some(&authid), None, Some(signature));
            Step::Ask(body, Pending::Ticket { authid, principal: None })
        }
        Pending::Cra { authid, expect: Some(e) } => match auth::verify_cra(&e.key, &e.challenge, signature) {
            Ok(()) => Step::Welcome(Identity {
                authid,
                authrole: e.authrole,
                authmethod: "wampcra",
                authprovider: e.provider,
                role: e.role,
                user_info: e.user_info,
            }),
            Err(err) => Step::Abort(refuse(NOT_AUTHORIZED, err.to_string())),
        },
        Pending::Cra { expect: None, .. } => {
            Step::Abort(refuse(AUTHENTICATION_FAILED, "AUTHENTICATE before CHALLENGE"))
        }
        Pending::Cryptosign { authid, key, challenge, .. } => {
            if let Err(e) = auth::verify_cryptosign(&key, &challenge, signature) {
                return Step::Abort(refuse(NOT_AUTHORIZED, e.to_string()));
            }
            cryptosign_principal(cx, authid, key, challenge)
        }
    }
}

/// After a valid Cryptosign signature: the principal that holds the key.
fn cryptosign_principal(cx: &Context<'_>, authid: Option<String>, key: PublicKey, challenge: [u8; 32]) -> Step {
    let Some(m) = cx.app.config.wamp_auth.cryptosign.as_ref() else {
        return Step::Abort(refuse(NOT_AUTHORIZED, "WAMP-Cryptosign is not accepted"));
    };
    let holds = |p: &Principal| p.authorized_keys.iter().any(|k| key.is(k));
    let found = match &authid {
        Some(id) => m.principals.get(id).map(|p| (id.clone(), p)),
        None => m.principals.iter().find(|(_, p)| holds(p)).map(|(id, p)| (id.clone(), p)),
    };
    match found {
        Some((id, p)) if holds(p) => {
            welcome(identity(cx.app, &id, "cryptosign", "static", &p.role, p.user_info.clone()))
        }
        Some(_) => Step::Abort(refuse(NOT_AUTHORIZED, "the public key is not authorized for this authid")),
        None if m.dynamic.is_some() => {
            let body = request_body(cx, "cryptosign", authid.as_deref(), Some(&key), None);
            Step::Ask(body, Pending::Cryptosign { authid, key, challenge })
        }
        None => Step::Abort(match authid {
            Some(id) => unknown(&id),
            None => refuse(NOT_AUTHORIZED, "no principal holds this public key"),
        }),
    }
}

fn welcome(identity: Result<Identity, Refusal>) -> Step {
    identity.map_or_else(Step::Abort, Step::Welcome)
}

/// The JSON body sent to a dynamic authenticator.
fn request_body(
    cx: &Context<'_>,
    method: &str,
    authid: Option<&str>,
    key: Option<&PublicKey>,
    ticket: Option<&str>,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "realm": cx.app.config.id,
        "authmethod": method,
        "authid": authid,
        "session": cx.session,
        "authextra": {},
    });
    if let Some(k) = key {
        body["authextra"] = serde_json::json!({ "pubkey": k.to_hex() });
    }
    if let Some(t) = ticket {
        body["ticket"] = serde_json::Value::from(t);
    }
    body
}

/// The dynamic authenticator's verdict, from its HTTP status and body.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// 200 with a JSON object.
    Accepted(serde_json::Map<String, serde_json::Value>),
    /// 401 or 403.
    Refused,
    /// Anything else, including no answer.
    Unavailable,
}

/// Continues a handshake with the authenticator's verdict.
pub(super) fn answered(cx: &Context<'_>, pending: Pending, verdict: Verdict) -> Step {
    let answer = match verdict {
        Verdict::Accepted(a) => a,
        Verdict::Refused => return Step::Abort(refuse(NOT_AUTHORIZED, "the authenticator refused these credentials")),
        Verdict::Unavailable => return Step::Abort(refuse(AUTHENTICATION_FAILED, "authenticator unavailable")),
    };
    let text = |k: &str| answer.get(k).and_then(serde_json::Value::as_str).map(str::to_owned);
    let number = |k: &str| answer.get(k).and_then(serde_json::Value::as_u64).and_then(|n| u32::try_from(n).ok());
    let Some(role_name) = text("role") else {
        return Step::Abort(refuse(AUTHENTICATION_FAILED, "the authenticator's answer names no role"));
    };
    let user_info = answer.get("user_info").map(ToString::to_string);
    match pending {
        Pending::Ticket { authid, .. } => {
            welcome(identity(cx.app, &authid, "ticket", "dynamic", &role_name, user_info))
        }
        Pending::Cra { authid, .. } => {
            let Some(secret) = text("secret") else {
                return Step::Abort(refuse(AUTHENTICATION_FAILED, "the authenticator's answer has no secret"));
            };
            let p = Principal {
                role: role_name,
                secret: Some(secret),
                salt: text("salt"),
                iterations: number("iterations"),
                keylen: number("keylen"),
                user_info,
                ..Principal::default()
            };
            cra_challenge(cx, &authid, &p, "dynamic")
        }
        Pending::Cryptosign { authid, key, .. } => {
            let keys = answer.get("authorized_keys").and_then(serde_json::Value::as_array);
            let holds = keys.is_some_and(|ks| ks.iter().filter_map(serde_json::Value::as_str).any(|k| key.is(k)));
            if !holds {
                return Step::Abort(refuse(NOT_AUTHORIZED, "the public key is not authorized for this authid"));
            }
            let id = authid.unwrap_or_else(|| key.to_hex());
            welcome(identity(cx.app, &id, "cryptosign", "dynamic", &role_name, user_info))
        }
    }
}

/// The dynamic authenticator's URL and time budget for a pending handshake.
pub(super) fn authenticator(app: &App, pending: &Pending) -> Option<(String, std::time::Duration)> {
    let auth = &app.config.wamp_auth;
    let m = match pending {
        Pending::Ticket { .. } => auth.ticket.as_ref(),
        Pending::Cra { .. } => auth.wampcra.as_ref(),
        Pending::Cryptosign { .. } => auth.cryptosign.as_ref(),
    }?;
    let url = m.dynamic.clone()?;
    Some((url, std::time::Duration::from_millis(m.dynamic_timeout_ms.unwrap_or(5000))))
}

/// `time` as ISO 8601 UTC with milliseconds (`2026-12-06T23:15:02.123Z`), as autobahn writes
/// WAMP-CRA timestamps.
pub(super) fn iso8601(time: std::time::SystemTime) -> String {
    let since = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::civil_date::from_days(days.cast_signed());
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests;
