//! Fixtures of the Oro profile's tests: herald started from Oro's environment, raw WAMP v1
//! clients for the browser and backend roles, tickets and the backend publisher from php-cli,
//! and a private PostgreSQL cluster.

pub mod client;
pub mod pg;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use herald_core::Hub;
use herald_server::cli::ServeArgs;
use herald_server::config;

use crate::WAIT;
use crate::inproc::TestServer;
use crate::process::TempDir;

/// The `ORO_SECRET` of every test.
pub const SECRET: &str = "ThisTokenIsNotSoSecretChangeIt";
/// Stored password hash of the fixture user `admin` (tests/fixtures/oro/schema.sql).
pub const ADMIN_HASH: &str = "$2y$13$Qy8wS0dGVFh0b0pJYnZrUu3l4y0tQ0m3yQd7bYHq0tS4m5oJpN2a.";
/// Stored password hash of the fixture user `john` (tests/fixtures/oro/schema.sql).
pub const JOHN_HASH: &str = "$2y$13$bG9uZ2VyU2FsdFN0cmluZ0Ou0gJ1m4a7r3Gq5xW2pE8sK9dL6tZyC";

/// `tests/fixtures/oro/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/oro").join(name)
}

/// A ticket from `tests/fixtures/oro/ticket.php`: anonymous when `user` is `None`.
pub fn php_ticket(secret: &str, user: Option<(&str, &str)>, options: &[&str]) -> String {
    let mut cmd = Command::new("php");
    cmd.arg(fixture("ticket.php")).arg(secret);
    if let Some((name, hash)) = user {
        cmd.arg(name).arg(hash);
    }
    let out = cmd.args(options).output().expect("php-cli is installed (scripts/install-test-deps)");
    assert!(out.status.success(), "ticket.php failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The query string a client sends for `ticket` (`encodeURIComponent` / `http_build_query`).
pub fn ticket_query(ticket: &str) -> String {
    let encoded: String = ticket
        .bytes()
        .map(|b| match b {
            b'+' => "%2B".to_owned(),
            b'/' => "%2F".to_owned(),
            b'=' => "%3D".to_owned(),
            _ => (b as char).to_string(),
        })
        .collect();
    format!("?ticket={encoded}")
}

/// An anonymous (backend) ticket query for [`SECRET`].
pub fn backend_query() -> String {
    ticket_query(&php_ticket(SECRET, None, &[]))
}

/// Runs `tests/fixtures/oro/backend_client.php`; returns its stdout and success.
pub async fn php_backend(addr: SocketAddr, path: &str, topic: &str, payload: &str, count: usize) -> (bool, String) {
    let out = tokio::process::Command::new("php")
        .arg(fixture("backend_client.php"))
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(path)
        .arg(topic)
        .arg(payload)
        .arg(count.to_string())
        .output();
    let out = tokio::time::timeout(WAIT, out).await.expect("php within the wait").expect("php runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running herald with the Oro profile on.
pub struct OroServer {
    /// The Oro listener.
    pub addr: SocketAddr,
    /// The main (Pusher + WAMP v2) listener.
    pub main: SocketAddr,
    /// The server's hub.
    pub hub: Arc<Hub>,
    server: TestServer,
    _dir: Option<TempDir>,
}

/// A number unique within this process (and unlikely to repeat across processes).
pub fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    u64::from(t) * 1000 + N.fetch_add(1, Ordering::Relaxed)
}

impl OroServer {
    /// Starts herald as `herald serve --profile oro -a 127.0.0.1 -p 0 [--config file]` with
    /// `ORO_SECRET` plus `vars` as its environment; `oro_toml` is the `[oro]` section's body.
    pub async fn start(oro_toml: &str, vars: &[(&str, &str)]) -> Self {
        let dir = (!oro_toml.is_empty()).then(|| TempDir::new("oro"));
        let config = dir.as_ref().map(|d| d.write("herald.toml", &format!("[oro]\n{oro_toml}\n")));
        let args = ServeArgs {
            profile: Some("oro".into()),
            host: Some("127.0.0.1".into()),
            port: Some(0),
            config,
            ..ServeArgs::default()
        };
        let mut env: HashMap<String, String> =
            [("ORO_SECRET", SECRET), ("HERALD__SERVER__HOST", "127.0.0.1"), ("HERALD__SERVER__PORT", "0")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let settings = config::load(&args, &config::Env::from_pairs(env)).expect("valid config");
        let server = TestServer::start(settings).await;
        let listening = &server.listening;
        let addr = listening.iter().find(|(_, l)| l.as_deref().is_some_and(|l| l.starts_with("oro"))).unwrap().0;
        let main = listening[0].0;
        let hub = Arc::clone(&server.hub);
        Self { addr, main, hub, server, _dir: dir }
    }

    /// Drains the server and waits until it has stopped.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// Open connections of the Oro app.
    pub fn connections(&self) -> usize {
        self.hub.app_by_id("oro").map_or(0, |a| a.connection_count())
    }

    /// Subscribers of `topic` in the Oro app.
    pub fn subscribers(&self, topic: &str) -> usize {
        let app = self.hub.app_by_id("oro").unwrap();
        self.hub.channel(&app, topic).map_or(0, |c| c.subscription_count)
    }

    /// Waits until `cond` holds, polling the hub (bounded by [`WAIT`]).
    pub async fn until(&self, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !cond(self) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
