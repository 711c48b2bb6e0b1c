//! The `herald` binary as Oro's supervisor runs it (O1, O13, O14): configuration from Oro's
//! environment, `gos:websocket:server`'s `--host/-a` and `--port/-p`, `--env` and the Oro log
//! levels, and a clear refusal to start without a host or a secret.

#![allow(clippy::unwrap_used)]

mod oro_support;

use std::process::Stdio;

use oro_support::client::Client;
use oro_support::{SECRET, WAIT, backend_query};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

fn herald(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.env_clear().args(args).envs(vars.iter().copied());
    cmd.env("HERALD__SERVER__HOST", "127.0.0.1").env("HERALD__SERVER__PORT", "0");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

/// Runs herald until its Oro listener is up; returns that address, then the log after a stop.
async fn run_oro(args: &[&str], vars: &[(&str, &str)]) -> (std::net::SocketAddr, String) {
    let mut child = herald(args, vars).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("herald listening on ").and_then(|r| r.strip_suffix(" (oro, app oro)")) {
                return rest.parse().unwrap();
            }
        }
        panic!("herald exited before listening");
    })
    .await
    .expect("listening line");
    let mut c = Client::with_query(addr, &backend_query()).await;
    c.subscribe("oro/data/update").await;
    drop(c);
    child.start_kill().unwrap();
    let _ = child.wait().await;
    let mut log = String::new();
    child.stderr.take().unwrap().read_to_string(&mut log).await.unwrap();
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
    let out = tokio::time::timeout(WAIT, herald(args, vars).output()).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(64), "config errors exit 64");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn o1_o14_no_host_or_no_secret_refuses_to_start() {
    let err = refused_start(&["serve", "--profile", "oro"], &[("ORO_SECRET", SECRET), ("ORO_WEBSOCKET_SERVER_DSN", ":8080")]).await;
    assert!(err.contains("ORO_WEBSOCKET_SERVER_DSN") && err.contains("no host"), "{err}");
    let err = refused_start(&["serve", "--profile", "oro"], &[]).await;
    assert!(err.contains("ORO_SECRET"), "{err}");
    let err = refused_start(&["serve", "--profile", "oro"], &[("ORO_SECRET", SECRET), ("ORO_DB_DSN", "mysql://u@db/oro")]).await;
    assert!(err.contains("ORO_DB_DSN"), "{err}");
}
