//! The herald binary as operators run it: exit codes, `config check`, signals (drain, second
//! signal, SIGHUP certificate reload), `herald restart`, JSON logs without secrets, fd limits.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use herald_test_support::http::{http, http_on, parse_metrics, signed_publish};
use herald_test_support::process::{Herald, TempDir, free_port, herald_bin};
use herald_test_support::tls::{make_certs, peer_cn, tls_connect};
use herald_test_support::{WAIT, next_json, subscribe};
use rustix::process::Signal;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "app-secret-DO-NOT-LOG";
const PASS: &str = "s3cret-pass";

fn config(dir: &TempDir, server_extra: &str) -> String {
    let text = format!(
        "[server]\nhost = \"127.0.0.1\"\nport = 0\nshutdown_grace = 5\n{server_extra}\n\n\
         [[apps]]\nid = \"1\"\nkey = \"key\"\nsecret = \"{SECRET}\"\n"
    );
    dir.write("herald.toml", &text).display().to_string()
}

fn tls_lines(dir: &TempDir, key: &str, pass: &str) -> String {
    format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_passphrase = \"{pass}\"",
        dir.path("leaf.pem").display(),
        dir.path(key).display()
    )
}

async fn pusher(
    addr: std::net::SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("ws://{addr}/app/key?protocol=7&client=js&version=8.4.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
    assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established");
    ws
}

async fn close_code<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("close in time") {
            Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

#[test]
fn config_check_prints_the_config_redacted_and_checks_the_certificates() {
    let dir = TempDir::new("check");
    make_certs(&dir.0);
    let cfg = config(&dir, &tls_lines(&dir, "leaf-enc.key", PASS));
    let out = Command::new(herald_bin()).args(["config", "check", "-c", &cfg]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("tls_passphrase = \"<redacted>\""), "{stdout}");
    assert!(stdout.contains("secret = \"<redacted>\""), "{stdout}");
    assert!(!stdout.contains(SECRET) && !stdout.contains(PASS), "{stdout}");

    let cfg = config(&dir, &tls_lines(&dir, "leaf-enc.key", "not-it"));
    let out = Command::new(herald_bin()).args(["config", "check", "-c", &cfg]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong tls_passphrase"));
}

#[test]
fn bad_certificates_exit_64_and_a_taken_port_exits_69_with_nothing_listening() {
    let dir = TempDir::new("exits");
    make_certs(&dir.0);
    let cfg = config(&dir, &tls_lines(&dir, "other.key", ""));
    let (code, stderr) = Herald::spawn(&["serve", "-c", &cfg], 1).err().expect("refused");
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("does not match the certificate"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let cfg = config(&dir, "");
    let (code, stderr) = Herald::spawn(&["serve", "-c", &cfg, "--port", &port], 1).err().expect("refused");
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")) && stderr.contains("in use"), "{stderr}");

    // The metrics port is taken: the main port must not stay bound either.
    let cfg = config(&dir, &format!("metrics_port = {port}"));
    let main_port = free_port().to_string();
    let (code, _) = Herald::spawn(&["serve", "-c", &cfg, "--port", &main_port], 1).err().expect("refused");
    assert_eq!(code, Some(69));
    assert!(std::net::TcpStream::connect(format!("127.0.0.1:{main_port}")).is_err(), "nothing half-started");
}

#[tokio::test]
async fn sigterm_drains_with_4200_and_exits_0_and_a_second_signal_exits_at_once() {
    let dir = TempDir::new("sigterm");
    let cfg = config(&dir, "");
    let mut h = Herald::spawn(&["serve", "-c", &cfg], 1).unwrap();
    let mut ws = pusher(h.addr()).await;
    // Without certificates a SIGHUP (`systemctl reload`) reloads the (unchanged) apps, harmlessly.
    h.signal(Signal::HUP);
    h.wait_log("SIGHUP: apps reloaded");
    h.signal(Signal::TERM);
    assert_eq!(close_code(&mut ws).await, Some(4200));
    drop(ws);
    assert_eq!(h.wait(WAIT), Some(0));

    // An HTTP request that never finishes its headers keeps the drain waiting (a drain lets
    // requests in flight finish first); a second signal ends it at once.
    let text = std::fs::read_to_string(&cfg).unwrap().replace("shutdown_grace = 5", "shutdown_grace = 60");
    std::fs::write(&cfg, text).unwrap();
    let mut h = Herald::spawn(&["serve", "-c", &cfg], 1).unwrap();
    let mut slow = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut slow, b"GET /up HTTP/1.1\r\n").await.unwrap();
    // The request is being read once a second connection is answered (one accept loop).
    assert_eq!(http(h.addr(), "GET", "/up").await.0, 200);
    h.signal(Signal::TERM);
    h.wait_log("shutdown signal received");
    h.signal(Signal::INT);
    assert_eq!(h.wait(Duration::from_secs(5)), Some(130), "{}", h.stderr());
    assert!(!h.stderr().contains("closing sessions"), "the first drain was still waiting for HTTP");
    drop(slow);
}

#[tokio::test]
async fn signals_sent_the_moment_the_ports_are_announced_are_handled_not_fatal() {
    // A supervisor may reload or stop herald as soon as it has printed its ports. Until a
    // handler exists, SIGHUP and SIGTERM take their default action: the process dies, undrained.
    let dir = TempDir::new("early-signals");
    let cfg = config(&dir, "");
    for round in 0..10 {
        let mut h = Herald::spawn(&["serve", "-c", &cfg], 1).unwrap();
        h.signal(Signal::HUP);
        assert_eq!(http(h.addr(), "GET", "/up").await.0, 200, "round {round}: SIGHUP killed herald");
        let mut h2 = Herald::spawn(&["serve", "-c", &cfg], 1).unwrap();
        h2.signal(Signal::TERM);
        assert_eq!(h2.wait(WAIT), Some(0), "round {round}: SIGTERM was not drained: {}", h2.stderr());
        h.signal(Signal::TERM);
        assert_eq!(h.wait(WAIT), Some(0), "round {round}: {}", h.stderr());
    }
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let dir = TempDir::new("sighup");
    make_certs(&dir.0);
    std::fs::copy(dir.path("leaf.pem"), dir.path("live.pem")).unwrap();
    std::fs::copy(dir.path("leaf.key"), dir.path("live.key")).unwrap();
    let lines =
        format!("tls_cert = \"{}\"\ntls_key = \"{}\"", dir.path("live.pem").display(), dir.path("live.key").display());
    let cfg = config(&dir, &lines);
    let h = Herald::spawn(&["serve", "-c", &cfg], 1).unwrap();
    let ca = dir.path("ca.pem");
    let tls = tls_connect(h.addr(), &ca).await;
    assert_eq!(peer_cn(&tls), "herald leaf one");
    let url = format!("wss://127.0.0.1:{}/app/key?protocol=7", h.addr().port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established");
    subscribe(&mut ws, "c").await;

    // A broken file first: the reload fails and the old certificate stays.
    std::fs::write(dir.path("live.key"), "garbage").unwrap();
    h.signal(Signal::HUP);
    h.wait_log("keeping the previous certificate");
    assert_eq!(peer_cn(&tls_connect(h.addr(), &ca).await), "herald leaf one");

    std::fs::copy(dir.path("leaf2.pem"), dir.path("live.pem")).unwrap();
    std::fs::copy(dir.path("leaf2.key"), dir.path("live.key")).unwrap();
    h.signal(Signal::HUP);
    h.wait_log("certificate reloaded");
    assert_eq!(peer_cn(&tls_connect(h.addr(), &ca).await), "herald leaf two");

    // The connection made before the reload still works.
    let (target, body) = signed_publish("1", "key", SECRET, "c", "after reload", "", "");
    let status = http_on(tls_connect(h.addr(), &ca).await, "POST", &target, &[], &body).await.0;
    assert_eq!(status, 200);
    assert_eq!(next_json(&mut ws).await["data"], "after reload");
}

#[tokio::test]
async fn herald_restart_drains_the_running_instance() {
    let dir = TempDir::new("restart");
    let pid_file = dir.path("herald.pid");
    let cfg = config(&dir, &format!("pid_file = \"{}\"", pid_file.display()));
    let mut h = Herald::spawn(&["serve", "-c", &cfg], 1).unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap().trim(), h.pid().to_string());
    let mut ws = pusher(h.addr()).await;

    // A second plain start is refused while the first runs.
    let (code, stderr) = Herald::spawn(&["serve", "-c", &cfg], 1).err().expect("refused");
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("already running"), "{stderr}");

    let restart = std::thread::spawn({
        let cfg = cfg.clone();
        move || Command::new(herald_bin()).args(["restart", "-c", &cfg]).output().unwrap()
    });
    assert_eq!(close_code(&mut ws).await, Some(4200));
    drop(ws);
    let out = restart.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("drained and exited"));
    assert_eq!(h.wait(WAIT), Some(0));
    assert!(!pid_file.exists(), "the pid file is removed on exit");

    let out = Command::new(herald_bin()).args(["restart", "-c", &cfg]).output().unwrap();
    assert_eq!(out.status.code(), Some(69), "nothing to restart");
}

#[tokio::test]
async fn json_logs_carry_no_secrets_and_report_the_fd_limit() {
    let dir = TempDir::new("logs");
    make_certs(&dir.0);
    let cfg = config(&dir, &tls_lines(&dir, "leaf-enc.key", PASS));
    let mut h = Herald::spawn(&["serve", "-c", &cfg, "-vvv", "--log-format", "json"], 1).unwrap();
    let ca = dir.path("ca.pem");
    let url = format!("wss://127.0.0.1:{}/app/key?protocol=7", h.addr().port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls_connect(h.addr(), &ca).await).await.unwrap();
    assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established");
    // A private channel with a forged signature, and a publish signed with the wrong secret.
    use futures_util::SinkExt;
    let sub = serde_json::json!({"event":"pusher:subscribe","data":{"channel":"private-x","auth":"key:00"}});
    ws.send(Message::text(sub.to_string())).await.unwrap();
    let _ = next_json(&mut ws).await;
    let (target, body) = signed_publish("1", "key", "wrong", "c", "x", "", "");
    let code = http_on(tls_connect(h.addr(), &ca).await, "POST", &target, &[], &body).await.0;
    assert_eq!(code, 401);
    drop(ws);
    h.signal(Signal::TERM);
    assert_eq!(h.wait(WAIT), Some(0));
    let logs = h.stderr();
    for line in logs.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    assert!(!logs.contains(SECRET), "the app secret leaked into the logs");
    assert!(!logs.contains(PASS), "the TLS passphrase leaked into the logs");
    assert!(logs.contains("open-file limit"), "the fd limits are logged");
}

#[tokio::test]
async fn the_separate_metrics_port_is_printed_and_scrapable() {
    let dir = TempDir::new("metrics");
    let cfg = config(&dir, "metrics_port = 0");
    let h = Herald::spawn(&["serve", "-c", &cfg], 2).unwrap();
    let metrics = h.labelled("metrics");
    let (code, text) = http(metrics, "GET", "/metrics").await;
    assert_eq!(code, 200);
    let m = parse_metrics(&text);
    assert!(m["process_max_fds"] >= 1024.0);
    assert_eq!(http(metrics, "GET", "/ready").await.0, 200);
}
