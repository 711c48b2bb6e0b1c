//! O11: Oro's PHP backend opens a connection per process, publishes once and exits without a
//! close handshake, hundreds of times a minute. herald must deliver every publish, keep no
//! state, no descriptor and no connection slot behind, and log nothing at warning or error
//! level for it. (Own test binary: it installs a global log capture.)

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::Mutex;

use herald_test_support::oro::client::Client;
use herald_test_support::oro::{OroServer, SECRET, php_backend, php_ticket, ticket_query};

static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn o11_hundreds_of_short_lived_backend_connections_leave_nothing_behind() {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(|| Capture)
        .try_init()
        .unwrap();
    let s = OroServer::start("", &[]).await;
    let query = ticket_query(&php_ticket(SECRET, None, &[]));
    let mut watcher = Client::with_query(s.addr, &query).await;
    watcher.subscribe("oro/data/update").await;
    let baseline = open_fds();

    const RAW: usize = 300;
    const PHP: usize = 20;
    let addr = s.addr;
    let mut batches = Vec::new();
    for batch in 0..10 {
        let query = query.clone();
        batches.push(tokio::spawn(async move {
            for i in 0..RAW / 10 {
                let mut c = Client::with_query(addr, &query).await;
                c.send(&format!(r#"[7,"oro/data/update",{{"n":{}}},[],[]]"#, batch * 1000 + i)).await;
                // Dropped: TCP closes with no WebSocket close frame, like an exiting PHP process.
            }
        }));
    }
    for b in batches {
        b.await.unwrap();
    }
    let path = format!("/ws{query}");
    for _ in 0..PHP {
        let (ok, out) = php_backend(s.addr, &path, "oro/data/update", r#"{"php":true}"#, 1).await;
        assert!(ok, "{out}");
    }
    for _ in 0..RAW + PHP {
        let event = watcher.json().await;
        assert_eq!(event[1], "oro/data/update");
    }
    drop(watcher);
    s.until("every connection to be released", |s| s.connections() == 0 && s.hub.connection_count() == 0).await;
    assert_eq!(s.subscribers("oro/data/update"), 0);
    let after = open_fds();
    // A leak would be one or two descriptors per connection; allow for a little runtime noise.
    assert!(after <= baseline + 8, "descriptors leaked: {baseline} before, {after} after");
    s.shutdown().await;

    let log = String::from_utf8_lossy(&LOG.lock().unwrap()).into_owned();
    let noise: Vec<&str> = log.lines().filter(|l| !l.contains("no ORO_DB_DSN")).collect();
    assert!(noise.is_empty(), "warnings or errors logged:\n{}", noise.join("\n"));
}
