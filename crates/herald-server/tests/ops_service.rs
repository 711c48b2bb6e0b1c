//! The shipped supervisor entry (`deploy/supervisor/herald.conf`) under a real supervisord
//! (Debian's `supervisor`): herald starts, reports its open-file limit, and
//! `supervisorctl restart herald` drains it (clients get 4200) before supervisor starts it again.
//!
//! Skipped without supervisord, unless `HERALD_REQUIRE_OPS_TOOLS=1` (CI).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use herald_test_support::process::{TempDir, herald_bin};
use herald_test_support::{WAIT, next_json};
use tokio_tungstenite::tungstenite::Message;

struct Supervisord(Child);

impl Drop for Supervisord {
    fn drop(&mut self) {
        // SIGTERM lets supervisord stop its programs (herald drains); SIGKILL alone would leave
        // the herald child running as an orphan.
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for the `n`th "herald listening on" line in herald's log and returns its address.
async fn nth_listening(log: &Path, n: usize) -> std::net::SocketAddr {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let addrs: Vec<_> = text.lines().filter_map(|l| l.strip_prefix("herald listening on ")).collect();
        if let Some(a) = addrs.get(n - 1) {
            return a.trim().parse().unwrap();
        }
        assert!(tokio::time::Instant::now() < deadline, "herald did not start under supervisord:\n{text}");
        // supervisord writes the log; there is no event to wait on but the file growing.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn supervisor_runs_and_gracefully_restarts_herald() {
    let Some(bin) =
        ["/usr/bin/supervisord", "/usr/local/bin/supervisord"].iter().map(PathBuf::from).find(|p| p.exists())
    else {
        assert!(
            std::env::var_os("HERALD_REQUIRE_OPS_TOOLS").is_none(),
            "supervisor is required (apt-get install supervisor)"
        );
        eprintln!("skipped: supervisor is not installed");
        return;
    };
    let dir = TempDir::new("supervisor");
    let d = dir.0.display().to_string();
    let cfg = dir.write(
        "herald.toml",
        "[server]\nhost = \"127.0.0.1\"\nport = 0\nshutdown_grace = 5\n\n[[apps]]\nid = \"1\"\nkey = \"key\"\nsecret = \"service-test-secret-0123\"\n",
    );
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/supervisor/herald.conf"))
            .unwrap();
    for needle in ["/usr/local/bin/herald", "/etc/herald/herald.toml", "user=herald", "/var/log/herald/herald.log"] {
        assert!(shipped.contains(needle), "the shipped entry changed: {needle}");
    }
    let program = shipped
        .replace("/usr/local/bin/herald", &herald_bin().display().to_string())
        .replace("/etc/herald/herald.toml", &cfg.display().to_string())
        .replace("user=herald", "user=root")
        .replace("/var/log/herald/herald.log", &format!("{d}/herald.log"));
    dir.write("herald.conf", &program);
    let conf = dir.write(
        "supervisord.conf",
        &format!(
            "[unix_http_server]\nfile={d}/supervisor.sock\n\n[supervisord]\nnodaemon=true\nlogfile={d}/supervisord.log\n\
             pidfile={d}/supervisord.pid\nchildlogdir={d}\nminfds=4096\n\n\
             [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
             [supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n\n[include]\nfiles = {d}/herald.conf\n"
        ),
    );
    let conf = conf.display().to_string();
    let _sup = Supervisord(
        Command::new(&bin)
            .args(["-n", "-c", &conf])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start supervisord"),
    );
    let log = dir.path("herald.log");
    let addr = nth_listening(&log, 1).await;
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("\"open-file limit\"") || logs.contains("open-file limit"), "{logs}");

    let url = format!("ws://{addr}/app/key?protocol=7&client=js&version=8.4.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established");

    let ctl = std::thread::spawn({
        let conf = conf.clone();
        move || Command::new("supervisorctl").args(["-c", &conf, "restart", "herald"]).output().unwrap()
    });
    let code = loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("close in time") {
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(code, Some(4200), "supervisorctl restart drains first");
    drop(ws);
    let out = ctl.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let again = nth_listening(&log, 2).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{again}/app/key?protocol=7")).await.unwrap();
    assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established");
}
