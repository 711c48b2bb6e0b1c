//! A real `redis-server` per test for the scale-out tests: a child process on a unix socket in a
//! fresh directory (no TCP port); herald nodes sharing it; `/health` of a node; and a plain RESP
//! client to do to Redis what an operator or another node would (append, trim, kill a client).

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
    let scale_out = ScaleOutSettings {
        redis_url: redis.url(),
        redis_cluster: Vec::new(),
        prefix: "test".into(),
        replay_window: Duration::from_secs(60),
    };
    Settings { scale_out: Some(scale_out), ..base }
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

/// `XADD stream * e payload` straight to `redis`, as any other node would; returns the entry id.
pub async fn redis_xadd(redis: &RedisServer, stream: &str, payload: &[u8]) -> String {
    let mut cli = RedisCli::connect(redis).await;
    match cli.cmd(&[b"XADD", stream.as_bytes(), b"*", b"e", payload]).await {
        Reply::Bulk(Some(id)) => String::from_utf8(id).unwrap(),
        other => panic!("XADD answered {other:?}"),
    }
}

/// One RESP2 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Status(String),
    /// `-ERR ...`.
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$n` (`None`: nil).
    Bulk(Option<Vec<u8>>),
    /// `*n` (`None`: nil).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a status or bulk answer.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A plain RESP client on the server's socket: commands written by hand, answers read with a
/// deadline. Pipelining (`send` several, then `read` as many) makes `MULTI`/`EXEC` possible.
pub struct RedisCli {
    stream: tokio::io::BufReader<tokio::net::UnixStream>,
}

impl RedisCli {
    /// Connects to `redis`.
    pub async fn connect(redis: &RedisServer) -> Self {
        let s = tokio::net::UnixStream::connect(redis.socket()).await.unwrap();
        Self { stream: tokio::io::BufReader::new(s) }
    }

    /// Writes one command without reading its answer.
    pub async fn send(&mut self, parts: &[&[u8]]) {
        use tokio::io::AsyncWriteExt;
        let mut cmd = format!("*{}\r\n", parts.len()).into_bytes();
        for part in parts {
            cmd.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
            cmd.extend_from_slice(part);
            cmd.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&cmd).await.unwrap();
    }

    /// Reads the next answer.
    pub async fn read(&mut self) -> Reply {
        tokio::time::timeout(WAIT, read_reply(&mut self.stream)).await.expect("redis answers")
    }

    /// Sends one command and returns its answer.
    pub async fn cmd(&mut self, parts: &[&[u8]]) -> Reply {
        self.send(parts).await;
        self.read().await
    }

    /// `CLIENT LIST`: the id of each connection named `name`.
    pub async fn client_ids(&mut self, name: &str) -> Vec<String> {
        let list = self.cmd(&[b"CLIENT", b"LIST"]).await.text().unwrap();
        let wanted = format!("name={name}");
        list.lines()
            .filter(|l| l.split(' ').any(|f| f == wanted))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")).map(str::to_owned))
            .collect()
    }

    /// `CLIENT LIST`: the names of the connections whose name starts with `prefix`.
    pub async fn client_names(&mut self, prefix: &str) -> Vec<String> {
        let list = self.cmd(&[b"CLIENT", b"LIST"]).await.text().unwrap();
        list.lines()
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("name=")))
            .filter(|n| n.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }
}

fn read_reply(
    s: &mut tokio::io::BufReader<tokio::net::UnixStream>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send + '_>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    Box::pin(async move {
        let mut line = Vec::new();
        s.read_until(b'\n', &mut line).await.unwrap();
        assert!(line.ends_with(b"\r\n"), "redis closed the connection: {line:?}");
        let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let n = || text.parse::<i64>().unwrap();
        match line[0] {
            b'+' => Reply::Status(text.clone()),
            b'-' => Reply::Error(text.clone()),
            b':' => Reply::Int(n()),
            b'$' if n() < 0 => Reply::Bulk(None),
            b'$' => {
                let mut data = vec![0; usize::try_from(n()).unwrap() + 2];
                s.read_exact(&mut data).await.unwrap();
                data.truncate(data.len() - 2);
                Reply::Bulk(Some(data))
            }
            b'*' if n() < 0 => Reply::Array(None),
            b'*' => {
                let mut items = Vec::new();
                for _ in 0..n() {
                    items.push(read_reply(s).await);
                }
                Reply::Array(Some(items))
            }
            other => panic!("not RESP2: {:?}", other as char),
        }
    })
}

/// The envelope of event `ev` with `data` on `channel` as another node (a fixed id) would write
/// it with sequence number `seq`: what the tests append to Redis behind the nodes' backs.
pub fn third_node_envelope(seq: u64, channel: &str, data: &str) -> Vec<u8> {
    use herald_protocol::cluster::Envelope;
    use herald_protocol::cluster::envelope::Data;
    use herald_protocol::pusher::channel_name::ChannelName;
    Envelope {
        node: 0x0123_4567_89ab_cdef,
        seq,
        id: seq,
        wamp: false,
        retain: false,
        channel: ChannelName::topic(channel, 200).unwrap(),
        event: "ev",
        exclude: None,
        user_id: None,
        filter: None,
        publisher: None,
        data: Data::Str(data),
        position: None,
    }
    .encode()
}
