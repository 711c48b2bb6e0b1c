//! A real `redis-server` per test for the scale-out tests: a child process on a unix socket in a
//! fresh directory (no TCP port); herald nodes sharing it; `/health` of a node.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_server::config::{ScaleOutSettings, Settings};
use serde_json::Value;

use crate::WAIT;
use crate::http::http;
use crate::process::TempDir;

/// A redis-server child on `<dir>/redis.sock`; killed (and its directory removed) on drop.
pub struct RedisServer {
    child: Option<Child>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts redis-server in a new directory, and returns once it accepts connections.
    pub fn start() -> Self {
        let mut r = Self { child: None, dir: TempDir::new("redis") };
        r.restart();
        r
    }

    /// The unix socket redis-server listens on.
    pub fn socket(&self) -> PathBuf {
        self.dir.path("redis.sock")
    }

    /// `redis+unix:///.../redis.sock`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Starts (again) on the same socket, and returns once it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(self.socket())
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/install-test-deps)");
        let ready = wait_ready(&mut child);
        self.child = Some(child);
        assert!(ready, "redis-server in {} did not get ready", self.dir.0.display());
    }

    /// SIGKILLs the server (the socket file stays, as after a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads redis-server's log until it accepts connections, then keeps draining it in a thread.
fn wait_ready(child: &mut Child) -> bool {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            // "Ready to accept connections" (7.2+) or "ready to accept connections at ..." (7.0).
            if line.to_ascii_lowercase().contains("ready to accept connections") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(WAIT).is_ok()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `base` as a node of the cluster on `redis`, with a metrics listener (`/health` is served
/// there only).
pub fn node_settings(base: Settings, redis: &RedisServer) -> Settings {
    let base = crate::inproc::with_metrics(base);
    Settings { scale_out: Some(ScaleOutSettings { redis_url: redis.url(), prefix: "test".into() }), ..base }
}

/// `GET /health`: status and JSON body (`Null` when the body is not JSON).
pub async fn health(addr: SocketAddr) -> (u16, Value) {
    let (status, body) = http(addr, "GET", "/health").await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Polls `/health` (on a metrics listener) until its status is `want` (the link state changes
/// asynchronously and herald announces it nowhere else).
pub async fn await_health(addr: SocketAddr, want: u16) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = health(addr).await;
        if status == want {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "/health stayed {status} {body}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `PUBLISH channel payload` straight to `redis`, as any other node would (RESP written by hand);
/// returns how many subscriber connections received it.
pub async fn redis_publish(redis: &RedisServer, channel: &str, payload: &[u8]) -> i64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(redis.socket()).await.unwrap();
    let mut cmd = b"*3\r\n".to_vec();
    for part in [&b"PUBLISH"[..], channel.as_bytes(), payload] {
        cmd.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        cmd.extend_from_slice(part);
        cmd.extend_from_slice(b"\r\n");
    }
    s.write_all(&cmd).await.unwrap();
    // The answer is one integer: ":<receivers>\r\n".
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        tokio::time::timeout(WAIT, s.read_exact(&mut byte)).await.expect("redis answers").unwrap();
        reply.push(byte[0]);
    }
    let text = String::from_utf8(reply).unwrap();
    text.trim_end()
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("PUBLISH answered {text:?}"))
}
