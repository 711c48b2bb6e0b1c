//! The handshake's steps without sockets: HELLO details in, CHALLENGE / WELCOME / ABORT out.

use herald_core::authorize::principal::{MethodConfig, Principal, WampAuthConfig};
use herald_core::authorize::role::{Allow, Disclose, Permission, Role};
use herald_core::{App, AppConfig};
use herald_protocol::wamp::auth;
use herald_protocol::wamp::v2::{Dict, Value};

use super::*;

fn app(auth: WampAuthConfig) -> App {
    let role = Role {
        name: "backend".into(),
        permissions: vec![Permission {
            uri: "com.".into(),
            policy: "prefix".into(),
            allow: Allow { subscribe: true, publish: true, register: true, call: true },
            disclose: Disclose::default(),
        }],
    };
    App::new(AppConfig {
        id: "realm1".into(),
        wamp: true,
        wamp_roles: vec![role],
        wamp_auth: auth,
        ..AppConfig::default()
    })
}

fn principal(role: &str) -> Principal {
    Principal { role: role.into(), ..Principal::default() }
}

fn method(authid: &str, p: Principal) -> Option<MethodConfig> {
    Some(MethodConfig { principals: [(authid.to_owned(), p)].into_iter().collect(), ..MethodConfig::default() })
}

fn cx(app: &App) -> Context<'_> {
    Context { app, session: 42, random: [7; 32], now: std::time::UNIX_EPOCH }
}

fn hello_details(methods: &[&str], authid: Option<&str>) -> Dict {
    let list = methods.iter().map(|m| Value::Str((*m).to_owned())).collect::<Vec<_>>();
    let mut d = Dict::new().with("authmethods", Value::List(list));
    if let Some(id) = authid {
        d.insert("authid", id);
    }
    d
}

fn aborted(step: &Step) -> Option<(&'static str, &str)> {
    match step {
        Step::Abort(r) => Some((r.reason, r.message.as_str())),
        _ => None,
    }
}

#[test]
fn no_credentials_get_the_anonymous_role() {
    let app = app(WampAuthConfig::default());
    let Step::Welcome(id) = hello(&cx(&app), &Dict::new()) else { panic!("expected WELCOME") };
    assert_eq!((id.authrole.as_str(), id.authmethod, id.authid.as_str()), ("anonymous", "anonymous", "42"));
    assert!(decide(id.role, &app, Action::Subscribe, "orders").allowed);
    assert!(!decide(id.role, &app, Action::Publish, "orders").allowed);
}

#[test]
fn a_realm_without_anonymous_role_or_offered_method_aborts() {
    let cfg = WampAuthConfig {
        ticket: method("alice", Principal { ticket: Some("t0ken".into()), ..principal("backend") }),
        ..WampAuthConfig::default()
    };
    let mut a = app(cfg);
    a.config.wamp_anonymous_role = String::new();
    assert_eq!(aborted(&hello(&cx(&a), &Dict::new())).map(|a| a.0), Some(NO_AUTH_METHOD));
    assert_eq!(
        aborted(&hello(&cx(&a), &hello_details(&["wampcra"], Some("alice")))).map(|a| a.0),
        Some(NO_AUTH_METHOD)
    );
}

#[test]
fn ticket_right_wrong_and_unknown() {
    let cfg = WampAuthConfig {
        ticket: method("alice", Principal { ticket: Some("t0ken".into()), ..principal("backend") }),
        ..WampAuthConfig::default()
    };
    let app = app(cfg);
    let Step::Challenge("ticket", _, pending) = hello(&cx(&app), &hello_details(&["ticket"], Some("alice"))) else {
        panic!("expected a ticket CHALLENGE")
    };
    let Step::Welcome(id) = authenticate(&cx(&app), pending, "t0ken") else { panic!("expected WELCOME") };
    assert_eq!((id.authid.as_str(), id.authrole.as_str(), id.authprovider), ("alice", "backend", "static"));

    let Step::Challenge(_, _, pending) = hello(&cx(&app), &hello_details(&["ticket"], Some("alice"))) else { panic!() };
    assert_eq!(
        aborted(&authenticate(&cx(&app), pending, "guess")),
        Some((NOT_AUTHORIZED, "ticket in static WAMP-Ticket authentication is invalid"))
    );
    assert_eq!(
        aborted(&hello(&cx(&app), &hello_details(&["ticket"], Some("mallory")))),
        Some((NOT_AUTHORIZED, "no principal with authid \"mallory\" exists"))
    );
}

#[test]
fn wampcra_salted_answer_made_as_autobahn_makes_it_is_accepted_once() {
    let p = Principal {
        secret: Some("secret123".into()),
        salt: Some("salt123".into()),
        iterations: Some(1000),
        keylen: Some(32),
        ..principal("backend")
    };
    let app = app(WampAuthConfig { wampcra: method("bob", p), ..WampAuthConfig::default() });
    let Step::Challenge("wampcra", extra, pending) = hello(&cx(&app), &hello_details(&["wampcra"], Some("bob"))) else {
        panic!("expected a wampcra CHALLENGE")
    };
    assert_eq!(extra.get("salt").and_then(Value::as_str), Some("salt123"));
    let challenge = extra.get("challenge").and_then(Value::as_str).unwrap_or_default().to_owned();
    let salt = auth::CraSalt { salt: "salt123".into(), iterations: 1000, keylen: 32 };
    let signature = auth::cra_sign(&auth::cra_key("secret123", Some(&salt)), &challenge);
    assert!(matches!(authenticate(&cx(&app), pending, &signature), Step::Welcome(_)));

    // The same answer to a new challenge (another nonce) is refused: no replay.
    let mut other = cx(&app);
    other.random = [8; 32];
    let Step::Challenge(_, _, pending) = hello(&other, &hello_details(&["wampcra"], Some("bob"))) else { panic!() };
    assert_eq!(
        aborted(&authenticate(&other, pending, &signature)),
        Some((NOT_AUTHORIZED, "WAMP-CRA client signature is invalid"))
    );
}

#[test]
fn cryptosign_needs_a_pubkey_and_an_authorized_key() {
    const PUBKEY: &str = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8";
    let cfg = WampAuthConfig {
        cryptosign: method("carol", Principal { authorized_keys: vec!["11".repeat(32)], ..principal("backend") }),
        ..WampAuthConfig::default()
    };
    let app = app(cfg);
    assert_eq!(
        aborted(&hello(&cx(&app), &hello_details(&["cryptosign"], Some("carol")))).map(|a| a.0),
        Some(NOT_AUTHORIZED)
    );
    let mut d = hello_details(&["cryptosign"], Some("carol"));
    d.insert("authextra", Dict::new().with("pubkey", PUBKEY));
    let Step::Challenge("cryptosign", extra, pending) = hello(&cx(&app), &d) else { panic!("expected CHALLENGE") };
    assert_eq!(extra.get("challenge").and_then(Value::as_str).map(str::len), Some(64));
    // Garbage is refused as a bad signature.
    assert_eq!(
        aborted(&authenticate(&cx(&app), pending, "00")),
        Some((NOT_AUTHORIZED, "signed message has invalid signature"))
    );
}

#[test]
fn dynamic_verdicts_map_to_crossbar_reasons() {
    let cfg = WampAuthConfig {
        ticket: Some(MethodConfig { dynamic: Some("http://127.0.0.1:9/auth".into()), ..MethodConfig::default() }),
        ..WampAuthConfig::default()
    };
    let app = app(cfg);
    let Step::Challenge(_, _, pending) = hello(&cx(&app), &hello_details(&["ticket"], Some("dyn"))) else { panic!() };
    let Step::Ask(body, pending) = authenticate(&cx(&app), pending, "tkt") else { panic!("expected a question") };
    assert_eq!(body["ticket"], "tkt");
    assert_eq!(body["realm"], "realm1");
    assert_eq!(
        aborted(&answered(&cx(&app), pending, Verdict::Unavailable)),
        Some((AUTHENTICATION_FAILED, "authenticator unavailable"))
    );
    let accepted = |role: &str| {
        let mut m = serde_json::Map::new();
        m.insert("role".into(), role.into());
        Verdict::Accepted(m)
    };
    let pending = Pending::Ticket { authid: "dyn".into(), principal: None };
    let Step::Welcome(id) = answered(&cx(&app), pending, accepted("backend")) else { panic!() };
    assert_eq!((id.authprovider, id.authrole.as_str()), ("dynamic", "backend"));
    let pending = Pending::Ticket { authid: "dyn".into(), principal: None };
    assert_eq!(aborted(&answered(&cx(&app), pending, accepted("nope"))).map(|a| a.0), Some(NOT_AUTHORIZED));
    let pending = Pending::Ticket { authid: "dyn".into(), principal: None };
    assert_eq!(aborted(&answered(&cx(&app), pending, Verdict::Refused)).map(|a| a.0), Some(NOT_AUTHORIZED));
}

#[test]
fn timestamps_are_iso8601_utc() {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_594_102_123);
    assert_eq!(iso8601(t), "2026-12-06T21:55:02.123Z");
    assert_eq!(iso8601(std::time::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
}
