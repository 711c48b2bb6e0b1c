//! A real `redis-server` per test, on a unix socket in a fresh directory (no TCP port), and
//! two herald nodes sharing it; plus signed HTTP publishes and /health over raw HTTP.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald_server::config::{ScaleOutSettings, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest wait for redis-server to say it is ready.
const READY: Duration = Duration::from_secs(10);

/// A redis-server child on `<dir>/redis.sock`; killed (and its directory removed) on drop.
pub struct RedisServer {
    child: Option<Child>,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts redis-server in a new directory.
    pub fn start() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("herald-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Self { child: None, dir };
        r.restart();
        r
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
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
            .arg(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/install-test-deps)");
        let ready = wait_ready(&mut child);
        self.child = Some(child);
        assert!(ready, "redis-server in {} did not get ready", self.dir.display());
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
    rx.recv_timeout(READY).is_ok()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `PUBLISH channel payload` straight to `redis`, as any other node would (RESP written by hand);
/// returns how many subscriber connections received it.
pub async fn redis_publish(redis: &RedisServer, channel: &str, payload: &[u8]) -> i64 {
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
        tokio::time::timeout(crate::support::WAIT, s.read_exact(&mut byte)).await.expect("redis answers").unwrap();
        reply.push(byte[0]);
    }
    let text = String::from_utf8(reply).unwrap();
    text.trim_end().strip_prefix(':').and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("PUBLISH answered {text:?}"))
}

/// Test settings for a node of the cluster on `redis`.
/// The node has a metrics listener: `/health` is served there only.
pub fn node_settings(base: Settings, redis: &RedisServer) -> Settings {
    let base = crate::support::with_metrics(base);
    Settings { scale_out: Some(ScaleOutSettings { redis_url: redis.url(), prefix: "test".into() }), ..base }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// One HTTP/1.1 request (Connection: close); returns status and body.
pub async fn http(addr: SocketAddr, method: &str, target: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(crate::support::WAIT, s.read_to_end(&mut out)).await.expect("response in time").unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// A signed `POST /apps/{id}/events` with `event` (a JSON object with name, channel(s), data...).
pub async fn publish(addr: SocketAddr, app: (&str, &str, &str), event: serde_json::Value) -> (u16, String) {
    let body = event.to_string();
    let path = format!("/apps/{}/events", app.0);
    let q = herald_protocol::pusher::rest_sign::sign_request("POST", &path, &[], body.as_bytes(), app.1, app.2, now());
    http(addr, "POST", &format!("{path}?{q}"), &body).await
}

/// `GET /health`: status and JSON body.
pub async fn health(addr: SocketAddr) -> (u16, serde_json::Value) {
    let (status, body) = http(addr, "GET", "/health", "").await;
    (status, serde_json::from_str(&body).unwrap_or(serde_json::Value::Null))
}

/// Polls `/health` (on a metrics listener) until its status is `want` (the link state changes asynchronously).
pub async fn await_health(addr: SocketAddr, want: u16) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    loop {
        let (status, body) = health(addr).await;
        if status == want {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "/health stayed {status} {body}, wanted {want}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
