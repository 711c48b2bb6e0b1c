//! A private MariaDB server per test: `mariadb-install-db` into a temporary directory,
//! `mariadbd` on a unix socket in it (`--skip-networking`: no port at all), root without a
//! password.
//!
//! As root (CI) the server runs as the `mysql` user through `runuser`. It runs under a small
//! shell that waits on its standard input: when the test process exits, for whatever reason, the
//! pipe closes, the shell stops MariaDB and removes the directory.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::time::Duration;

use mysql_async::prelude::Queryable;

use super::{as_user, chown, is_root};
use crate::WAIT;

/// A running MariaDB; stopped (and its directory removed) by [`MariaDb::stop`] or on drop.
pub struct MariaDb {
    dir: PathBuf,
    stdin: Option<ChildStdin>,
    child: Option<Child>,
}

impl MariaDb {
    /// Starts a fresh server and returns once it accepts connections.
    pub fn start() -> Self {
        let root = is_root();
        let dir =
            std::env::temp_dir().join(format!("herald-mariadb-{}-{}", std::process::id(), crate::oro::rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        chown(root, "mysql", &dir);
        let init = as_user(root, "mysql", Path::new("mariadb-install-db"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", dir.join("data").display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .expect("mariadb-install-db runs (scripts/install-test-deps installs mariadb-server)");
        assert!(init.status.success(), "mariadb-install-db: {}", String::from_utf8_lossy(&init.stderr));
        let script = r#"
            /usr/sbin/mariadbd --no-defaults --datadir="$1/data" --socket="$1/mysqld.sock" \
                --pid-file="$1/mysqld.pid" --log-error="$1/error.log" --skip-networking \
                --innodb-buffer-pool-size=16M --skip-log-bin &
            pid=$!
            read _ignored
            kill -TERM "$pid" 2>/dev/null
            wait "$pid"
            rm -rf "$1"
        "#;
        let mut child = as_user(root, "mysql", Path::new("sh"))
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd starts");
        let stdin = child.stdin.take();
        Self { dir, stdin, child: Some(child) }
    }

    /// The server's unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    /// `mysql://root@localhost/{db}?socket=…`: the URL herald's `[app_store]` takes.
    pub fn url(&self, db: &str) -> String {
        format!("mysql://root@localhost/{db}?socket={}", self.socket().display())
    }

    /// Waits (bounded) until the server answers, then creates database `db`.
    pub async fn database(&self, db: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let opts = mysql_async::Opts::from_url(&self.url("")).unwrap();
        let mut conn = loop {
            match mysql_async::Conn::new(opts.clone()).await {
                Ok(c) => break c,
                Err(e) => {
                    let log = std::fs::read_to_string(self.dir.join("data/../error.log")).unwrap_or_default();
                    assert!(tokio::time::Instant::now() < deadline, "MariaDB did not start: {e}\n{log}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        conn.query_drop(format!("CREATE DATABASE `{db}`")).await.unwrap();
        let _ = conn.disconnect().await;
    }

    /// Runs `sql` (several statements) in database `db`.
    pub async fn execute(&self, db: &str, sql: &str) {
        let mut conn = tokio::time::timeout(WAIT, mysql_async::Conn::from_url(self.url(db))).await.unwrap().unwrap();
        conn.query_drop(sql).await.unwrap();
        let _ = conn.disconnect().await;
    }

    /// Stops the server and waits until it has exited.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.stop();
    }
}
