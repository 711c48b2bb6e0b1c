//! Helpers for the operations tests: a herald child process, raw HTTP, signed publishes,
//! a test CA made with Debian's `openssl`, TLS clients, metrics parsing.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound on any single wait in these tests.
pub const WAIT: Duration = Duration::from_secs(15);

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("herald-ops-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A herald child process; killed on drop.
pub struct Herald {
    pub child: Child,
    /// Every "herald listening on ADDR (label)" line: (addr, label).
    pub listening: Vec<(SocketAddr, Option<String>)>,
    stderr: Arc<Mutex<String>>,
    stderr_lines: mpsc::Receiver<String>,
}

pub fn herald_bin() -> &'static str {
    env!("CARGO_BIN_EXE_herald")
}

impl Herald {
    /// Spawns `herald ARGS` and waits for its listening lines (stdout closes or the expected
    /// number arrive). Returns Err(exit status, stderr) when it exits first.
    pub fn spawn(args: &[&str], expect_listeners: usize) -> Result<Self, (Option<i32>, String)> {
        Self::spawn_env(args, &[], expect_listeners)
    }

    pub fn spawn_env(
        args: &[&str],
        env: &[(&str, &str)],
        expect_listeners: usize,
    ) -> Result<Self, (Option<i32>, String)> {
        let mut cmd = Command::new(herald_bin());
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env_remove("RUST_LOG")
            .env_remove("PUSHER_APP_ID")
            .env_remove("PUSHER_APP_KEY")
            .env_remove("PUSHER_APP_SECRET");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn herald");
        let stdout = child.stdout.take().unwrap();
        let stderr_pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (line_tx, stderr_lines) = mpsc::channel();
        let stderr_reader = {
            let stderr = Arc::clone(&stderr);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
                    let mut s = stderr.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                    let _ = line_tx.send(line);
                }
            })
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut listening = Vec::new();
        while listening.len() < expect_listeners {
            match rx.recv_timeout(WAIT) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("herald listening on ") {
                        let (addr, label) = match rest.split_once(' ') {
                            Some((a, l)) => (a, Some(l.trim_matches(['(', ')']).to_owned())),
                            None => (rest, None),
                        };
                        listening.push((addr.parse().unwrap(), label));
                    }
                }
                Err(_) => {
                    let status = wait_exit(&mut child, WAIT);
                    if status.is_none() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    // The pipe closes with the process: the reader has then seen every line.
                    let _ = stderr_reader.join();
                    let err = stderr.lock().unwrap().clone();
                    return Err((status, err));
                }
            }
        }
        Ok(Self { child, listening, stderr, stderr_lines })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listening[0].0
    }

    pub fn labelled(&self, label: &str) -> SocketAddr {
        self.listening.iter().find(|(_, l)| l.as_deref() == Some(label)).expect("listener").0
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_raw(self.pid()).unwrap(), sig).unwrap();
    }

    /// Waits for the process to exit; its exit code (None: killed by a signal, or still running).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        wait_exit(&mut self.child, timeout)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a stderr line contains `needle`; returns that line.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        if let Some(line) = self.stderr().lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?}; stderr:\n{}", self.stderr()),
            }
        }
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls a child for exit (the child is ours; there is no event to await from std).
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port that was free a moment ago (for programs that need a number, such as nginx).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP/1.1 request over any stream (Connection: close); returns status and body.
pub async fn http_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await.expect("response in time");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

pub async fn http(addr: SocketAddr, method: &str, target: &str) -> (u16, String) {
    http_on(TcpStream::connect(addr).await.unwrap(), method, target, &[], "").await
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `POST {sent_prefix}/apps/{id}/events`, signed over `{signed_prefix}/apps/{id}/events`.
pub fn signed_publish(
    app_id: &str,
    key: &str,
    secret: &str,
    channel: &str,
    data: &str,
    sent_prefix: &str,
    signed_prefix: &str,
) -> (String, String) {
    let body = serde_json::json!({"name": "ev", "channel": channel, "data": data}).to_string();
    let path = format!("/apps/{app_id}/events");
    let q = herald_protocol::pusher::rest_sign::sign_request(
        "POST",
        &format!("{signed_prefix}{path}"),
        &[],
        body.as_bytes(),
        key,
        secret,
        now(),
    );
    (format!("{sent_prefix}{path}?{q}"), body)
}

pub async fn publish(addr: SocketAddr, app: (&str, &str, &str), channel: &str, data: &str) -> u16 {
    let (target, body) = signed_publish(app.0, app.1, app.2, channel, data, "", "");
    http_on(TcpStream::connect(addr).await.unwrap(), "POST", &target, &[], &body).await.0
}

/// Parses the Prometheus text format into `series -> value` (`name{labels}` as written).
pub fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad metrics line {line:?}"));
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(out.insert(series.to_owned(), v).is_none(), "duplicate series {series}");
    }
    out
}

/// Runs `openssl ARGS` in `dir`, panicking with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (Debian package openssl)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test CA and leaf certificates for 127.0.0.1/localhost, made with openssl:
/// `ca.pem`, `leaf.pem`/`leaf.key`, `leaf2.pem`/`leaf2.key` (a second leaf, for reloads),
/// `other.key` (matches nothing), `leaf-enc.key` (PKCS#8, AES-256, passphrase `s3cret-pass`),
/// `leaf-legacy.key` (traditional OpenSSL encryption).
pub fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=herald test CA",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    for (name, cn) in [("leaf", "herald leaf one"), ("leaf2", "herald leaf two")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={cn}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
    }
    openssl(dir, &["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "other.key"]);
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "leaf.key",
            "-out",
            "leaf-enc.key",
            "-passout",
            "pass:s3cret-pass",
        ],
    );
    openssl(dir, &["ec", "-in", "leaf.key", "-out", "leaf-legacy.key", "-aes256", "-passout", "pass:s3cret-pass"]);
}

/// A TLS client trusting `ca.pem`.
pub async fn tls_connect(addr: SocketAddr, ca: &Path) -> tokio_rustls::client::TlsStream<TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
    tokio::time::timeout(WAIT, connector.connect(name, tcp)).await.expect("handshake in time").expect("handshake")
}

/// The subject CN of the certificate the server presented.
pub fn peer_cn(s: &tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let cert = s.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    // The CN is the last printable string in our tiny test certificates' subject; find it by
    // its known prefix instead of parsing ASN.1.
    let text = String::from_utf8_lossy(&cert).into_owned();
    ["herald leaf one", "herald leaf two"]
        .iter()
        .find(|cn| text.contains(**cn))
        .map(|s| (*s).to_owned())
        .unwrap_or_default()
}

/// The next text message of any WebSocket stream, as JSON.
pub async fn ws_json<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
) -> serde_json::Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.expect("message in time").expect("open").expect("no error") {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// Subscribes a Pusher client (any stream) to a public channel and waits for the ack.
pub async fn ws_subscribe<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    channel: &str,
) {
    use futures_util::SinkExt;
    let msg = serde_json::json!({"event":"pusher:subscribe","data":{"channel":channel}}).to_string();
    ws.send(tokio_tungstenite::tungstenite::Message::text(msg)).await.unwrap();
    assert_eq!(ws_json(ws).await["event"], "pusher_internal:subscription_succeeded");
}
