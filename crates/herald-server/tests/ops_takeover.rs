//! Zero-downtime restart: a second herald binds the same port with SO_REUSEPORT and asks the
//! first to drain; clients told to reconnect (4200) land on the successor, and a client
//! connecting at any moment never meets a closed port.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::StreamExt;
use herald_test_support::process::{Herald, TempDir};
use herald_test_support::{WAIT, next_json};
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 10;

async fn pusher(
    addr: std::net::SocketAddr,
) -> (tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>, String) {
    let url = format!("ws://{addr}/app/key?protocol=7&client=js&version=8.4.0");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("upgrade");
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["event"], "pusher:connection_established");
    let data: serde_json::Value = serde_json::from_str(hello["data"].as_str().unwrap()).unwrap();
    (ws, data["socket_id"].as_str().unwrap().to_owned())
}

/// The node part of a socket id (`prefix.n`): it differs between two processes.
fn node(socket_id: &str) -> &str {
    socket_id.split('.').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successor_takes_over_while_clients_reconnect() {
    let dir = TempDir::new("takeover");
    let pid_file = dir.path("herald.pid");
    let cfg = dir.write(
        "herald.toml",
        &format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\nshutdown_grace = 5\nreuse_port = true\npid_file = \"{}\"\n\n\
             [[apps]]\nid = \"1\"\nkey = \"key\"\nsecret = \"takeover-test-secret-0123\"\n",
            pid_file.display()
        ),
    );
    let cfg = cfg.display().to_string();
    let mut first = Herald::spawn(&["serve", "-c", &cfg], 1).unwrap();
    let addr = first.addr();
    let port = addr.port().to_string();
    let mut clients = Vec::new();
    let mut first_node = String::new();
    for _ in 0..CLIENTS {
        let (ws, id) = pusher(addr).await;
        first_node = node(&id).to_owned();
        clients.push(ws);
    }

    // Connect continuously through the whole takeover, counting refusals.
    let done = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let probes = Arc::new(AtomicUsize::new(0));
    let prober = tokio::spawn({
        let (done, refused, probes) = (Arc::clone(&done), Arc::clone(&refused), Arc::clone(&probes));
        async move {
            while !done.load(Ordering::Relaxed) {
                match tokio::net::TcpStream::connect(addr).await {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                probes.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }
    });

    let mut second = Herald::spawn(&["serve", "-c", &cfg, "--port", &port, "--takeover"], 1).unwrap();
    assert_eq!(second.addr(), addr, "same port");

    // Every client of the first process is told to reconnect now, and does so to the successor.
    let mut reconnects = Vec::new();
    for mut ws in clients {
        reconnects.push(tokio::spawn(async move {
            let code = loop {
                match tokio::time::timeout(WAIT, ws.next()).await.expect("close in time") {
                    Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    other => panic!("no close frame: {other:?}"),
                }
            };
            drop(ws);
            (code, pusher(addr).await.1)
        }));
    }
    for r in reconnects {
        let (code, new_id) = r.await.unwrap();
        assert_eq!(code, Some(4200));
        assert_ne!(node(&new_id), first_node, "reconnected to the successor");
    }
    assert_eq!(first.wait(WAIT), Some(0), "the predecessor drained and exited: {}", first.stderr());
    done.store(true, Ordering::Relaxed);
    prober.await.unwrap();
    assert!(probes.load(Ordering::Relaxed) > 0);
    assert_eq!(refused.load(Ordering::Relaxed), 0, "a client met a closed port");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap().trim(), second.pid().to_string());
    second.signal(rustix::process::Signal::TERM);
    assert_eq!(second.wait(WAIT), Some(0));
}
