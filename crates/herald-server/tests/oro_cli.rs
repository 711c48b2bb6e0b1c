//! The `herald` binary as Oro's supervisor runs it (O1, O13, O14): configuration from Oro's
//! environment, `gos:websocket:server`'s `--host/-a` and `--port/-p`, `--env` and the Oro log
//! levels, and a clear refusal to start without a host or a secret.

#![allow(clippy::unwrap_used)]

use herald_test_support::oro::client::Client;
use herald_test_support::oro::{SECRET, backend_query};
use herald_test_support::process::Herald;

/// `vars` plus the loopback host and a free port, as the whole environment (as Oro's supervisor
/// passes it).
fn environment<'a>(vars: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vars.to_vec();
    env.extend([("HERALD__SERVER__HOST", "127.0.0.1"), ("HERALD__SERVER__PORT", "0")]);
    env
}

/// Runs herald until its Oro listener is up; returns that address, then the log after a stop.
async fn run_oro(args: &[&str], vars: &[(&str, &str)]) -> (std::net::SocketAddr, String) {
    let mut herald = Herald::spawn_clean_env(args, &environment(vars), 2)
        .unwrap_or_else(|(code, stderr)| panic!("herald exited ({code:?}) before listening: {stderr}"));
    let addr = herald.labelled("oro, app oro");
    let mut c = Client::with_query(addr, &backend_query()).await;
    c.subscribe("oro/data/update").await;
    drop(c);
    let log = herald.kill();
    (addr, strip_ansi(&log))
}

/// The log without terminal colour sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn o13_host_and_port_flags_override_the_server_dsn() {
    let vars = [("ORO_SECRET", SECRET), ("ORO_WEBSOCKET_SERVER_DSN", "//0.0.0.0:8080")];
    let (addr, _) = run_oro(&["serve", "--profile", "oro", "-a", "127.0.0.1", "-p", "0"], &vars).await;
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 8080);
    let (addr, _) = run_oro(&["serve", "--profile", "oro", "--host", "127.0.0.1", "--port", "0"], &vars).await;
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
}

#[tokio::test]
async fn o1_server_dsn_alone_binds_the_listener() {
    let vars = [("ORO_SECRET", SECRET), ("ORO_WEBSOCKET_SERVER_DSN", "//127.0.0.1:0")];
    let (addr, _) = run_oro(&["serve", "--profile", "oro"], &vars).await;
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
}

#[tokio::test]
async fn o13_log_levels_follow_oro_prod_and_dev() {
    let vars = [("ORO_SECRET", SECRET)];
    let base = ["serve", "--profile", "oro", "-a", "127.0.0.1", "-p", "0"];
    let with = |extra: &[&'static str]| base.iter().copied().chain(extra.iter().copied()).collect::<Vec<_>>();
    // prod default: WARNING and up (the missing database is a warning).
    let (_, log) = run_oro(&with(&["--env=prod"]), &vars).await;
    assert!(log.contains(" WARN ") && log.contains("no ORO_DB_DSN"), "{log}");
    assert!(!log.contains(" INFO "), "{log}");
    // -v: the profile's notices (its allowed origins).
    let (_, log) = run_oro(&with(&["--env=prod", "-v"]), &vars).await;
    assert!(log.contains("allowed origins"), "{log}");
    // -vvv: debug, e.g. each authenticated session.
    let (_, log) = run_oro(&with(&["-vvv"]), &vars).await;
    assert!(log.contains(" DEBUG ") && log.contains("authenticated"), "{log}");
    // dev default: INFO.
    let (_, log) = run_oro(&with(&["--env", "dev"]), &vars).await;
    assert!(log.contains(" INFO ") && !log.contains(" DEBUG "), "{log}");
    // quiet: errors only.
    let (_, log) = run_oro(&with(&["-q"]), &vars).await;
    assert!(!log.contains(" WARN ") && !log.contains(" INFO "), "{log}");
}

async fn refused_start(args: &[&str], vars: &[(&str, &str)]) -> String {
    let (code, stderr) =
        Herald::spawn_clean_env(args, &environment(vars), 1).err().expect("herald must refuse to start");
    assert_eq!(code, Some(64), "config errors exit 64");
    stderr
}

#[tokio::test]
async fn o1_o14_no_host_or_no_secret_refuses_to_start() {
    let err =
        refused_start(&["serve", "--profile", "oro"], &[("ORO_SECRET", SECRET), ("ORO_WEBSOCKET_SERVER_DSN", ":8080")])
            .await;
    assert!(err.contains("ORO_WEBSOCKET_SERVER_DSN") && err.contains("no host"), "{err}");
    let err = refused_start(&["serve", "--profile", "oro"], &[]).await;
    assert!(err.contains("ORO_SECRET"), "{err}");
    let err =
        refused_start(&["serve", "--profile", "oro"], &[("ORO_SECRET", SECRET), ("ORO_DB_DSN", "mysql://u@db/oro")])
            .await;
    assert!(err.contains("ORO_DB_DSN"), "{err}");
}
