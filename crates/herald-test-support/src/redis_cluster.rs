//! A real Redis Cluster per test: `shards` redis-server children in cluster mode (masters only,
//! no replicas) on 127.0.0.1, joined with `redis-cli --cluster create`.
//!
//! Redis Cluster needs TCP (a client port and a cluster bus port per server); redis-server takes
//! port numbers, not port 0. Each pair is one the kernel just handed out for 127.0.0.1:0 and
//! released; a server that loses the race to another process fails to start and is retried on
//! new ports.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::WAIT;
use crate::process::TempDir;

/// Tries per server before giving up on finding free ports.
const PORT_TRIES: usize = 5;

/// The children of one Redis Cluster; killed (and their directories removed) on drop.
pub struct RedisCluster {
    nodes: Vec<(Child, u16)>,
    _dir: TempDir,
}

impl RedisCluster {
    /// Starts `shards` masters, covers the 16384 slots between them, and returns once every
    /// node reports `cluster_state:ok`.
    pub fn start(shards: usize) -> Self {
        let dir = TempDir::new("redis-cluster");
        let mut nodes = Vec::new();
        for i in 0..shards {
            let node_dir = dir.path(&format!("n{i}"));
            std::fs::create_dir_all(&node_dir).unwrap();
            let started = (0..PORT_TRIES).find_map(|_| start_node(&node_dir));
            nodes.push(started.expect("redis-server starts in cluster mode (scripts/install-test-deps)"));
        }
        let cluster = Self { nodes, _dir: dir };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for a in cluster.addresses() {
            create.arg(a);
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is installed (scripts/install-test-deps)");
        assert!(out.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&out.stdout));
        cluster.await_ok();
        cluster
    }

    /// `host:port` of every master.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|(_, p)| format!("127.0.0.1:{p}")).collect()
    }

    /// `redis://127.0.0.1:port` of every master (the seed list a cluster client takes).
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|(_, p)| format!("redis://127.0.0.1:{p}")).collect()
    }

    /// Runs `redis-cli -c` against the first node and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &self.nodes[0].1.to_string()])
            .args(args)
            .output()
            .expect("redis-cli is installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until every node has agreed on the slots (gossip takes a moment after `create`).
    fn await_ok(&self) {
        // Counted in polls rather than read off a clock: tests may pause tokio's clock.
        let polls = WAIT.as_millis() / 50;
        for (_, port) in &self.nodes {
            for poll in 0.. {
                let out = Command::new("redis-cli").args(["-p", &port.to_string(), "cluster", "info"]).output();
                if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok")) {
                    break;
                }
                assert!(poll < polls, "redis cluster node {port} never reached cluster_state:ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (child, _) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port the kernel considers free on 127.0.0.1 right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

/// Starts one cluster-mode server in `dir`; `None` when it did not get ready (its ports taken).
fn start_node(dir: &std::path::Path) -> Option<(Child, u16)> {
    let (port, bus) = (free_port(), free_port());
    let mut child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--cluster-enabled", "yes"])
        .args(["--cluster-port", &bus.to_string(), "--cluster-config-file", "nodes.conf"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/install-test-deps)");
    let Some(out) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.to_ascii_lowercase().contains("ready to accept connections") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(WAIT).is_ok() {
        return Some((child, port));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
