//! A private PostgreSQL cluster for the test process: `initdb` into a temporary directory,
//! `postgres` on a free loopback port, one fresh database (Oro's tables from
//! `tests/fixtures/oro/schema.sql`) per test.
//!
//! As root (CI), the cluster runs as the `postgres` user through `runuser`, since PostgreSQL
//! refuses to run as root. The server runs under a small shell that waits on its standard input:
//! when the test process exits, for whatever reason, the pipe closes, the shell stops PostgreSQL
//! and removes the directory, so no cluster outlives the tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use tokio_postgres::NoTls;

/// The cluster of this test process.
pub struct Cluster {
    /// PostgreSQL's port on 127.0.0.1.
    pub port: u16,
    /// Kept open: closing it stops the cluster.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

/// The directory holding PostgreSQL's programs (Debian puts them under /usr/lib/postgresql).
fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(Result::ok).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions.pop().filter(|d| d.join("initdb").exists()).expect("PostgreSQL is installed (apt-get install postgresql)")
}

/// `program` as the `postgres` user when running as root.
fn as_db_user(root: bool, program: &Path) -> Command {
    crate::sql::as_user(root, "postgres", program)
}

/// The process's cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start)
}

fn start() -> Cluster {
    let root = crate::sql::is_root();
    let bin = bin_dir();
    let dir = std::env::temp_dir().join(format!("herald-oro-pg-{}-{}", std::process::id(), super::rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    crate::sql::chown(root, "postgres", &dir);
    let init = as_db_user(root, &bin.join("initdb"))
        .arg("-D")
        .arg(&dir)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
        .output()
        .expect("initdb runs");
    assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
    let port = crate::process::free_port();
    let script = r#"
        "$1" -D "$2" -p "$3" -k "$2" -c listen_addresses=127.0.0.1 -c fsync=off -c log_min_messages=log &
        pid=$!
        read _ignored
        kill -INT "$pid" 2>/dev/null
        wait "$pid"
        rm -rf "$2"
    "#;
    let mut child = as_db_user(root, Path::new("sh"))
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(bin.join("postgres"))
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("postgres starts");
    let stderr = child.stderr.take().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    // Keep draining the log after start-up, or PostgreSQL blocks on a full pipe.
    std::thread::spawn(move || {
        let mut ready = Some(ready_tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("ready to accept connections")
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(());
            }
            if std::env::var_os("HERALD_TEST_PG_LOG").is_some() {
                eprintln!("postgres: {line}");
            }
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(60)).expect("postgres ready within 60 s");
    let stdin = child.stdin.take().unwrap();
    Cluster { port, _stdin: Mutex::new(stdin), _child: Mutex::new(child) }
}

impl Cluster {
    /// The URL of database `db`, in the form Oro's `ORO_DB_DSN` has.
    pub fn dsn(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable&charset=utf8&serverVersion=15", self.port)
    }

    /// A new database holding Oro's fixture tables; returns its name.
    pub async fn database(&self) -> String {
        let name = format!("oro_{}", super::rand_suffix());
        let admin = self.connect("postgres").await;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        let db = self.connect(&name).await;
        let schema = std::fs::read_to_string(super::fixture("schema.sql")).unwrap();
        db.batch_execute(&schema).await.unwrap();
        name
    }

    /// A new empty database; returns its name.
    pub async fn empty_database(&self, prefix: &str) -> String {
        let name = format!("{prefix}_{}", super::rand_suffix());
        self.connect("postgres").await.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        name
    }

    /// A client connected to database `db`.
    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let conf = format!("host=127.0.0.1 port={} user=postgres dbname={db}", self.port);
        let (client, conn) = tokio_postgres::connect(&conf, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }
}
