//! herald as a child process: spawned with a clean environment, its `herald listening on ADDR
//! (label)` lines read from stdout, its log lines (stderr) kept and awaited; plus temporary
//! directories and exit waits.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::WAIT;

/// Prefixes of the variables herald reads as configuration (its own, and those of the servers it
/// replaces): a developer's shell must not configure the herald a test starts.
pub const CONFIG_PREFIXES: [&str; 5] = ["HERALD__", "PUSHER_", "REVERB_", "SOKETI_", "LARAVEL_WEBSOCKETS_"];

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new empty directory under the system's temporary directory; `tag` goes into its name.
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("herald-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` in the directory; returns its path.
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

/// The herald binary cargo built for these tests: `$CARGO_BIN_EXE_herald` when cargo sets it at
/// run time, else `herald` next to the test binary's `deps/` directory (where cargo puts it).
pub fn herald_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CARGO_BIN_EXE_herald") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut dir = exe.parent().expect("the test binary's directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("herald{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing: run the tests through `cargo test -p herald-server`", bin.display());
    bin
}

/// A herald child process; killed on drop.
pub struct Herald {
    /// The process.
    pub child: Child,
    /// Every "herald listening on ADDR (label)" line: (addr, label).
    pub listening: Vec<(SocketAddr, Option<String>)>,
    stderr: Arc<Mutex<String>>,
    stderr_lines: mpsc::Receiver<String>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Herald {
    /// Spawns `herald ARGS` and waits for `expect_listeners` listening lines. Returns Err(exit
    /// status, stderr) when stdout closes first, or when the lines do not come within [`WAIT`].
    pub fn spawn(args: &[&str], expect_listeners: usize) -> Result<Self, (Option<i32>, String)> {
        Self::spawn_env(args, &[], expect_listeners)
    }

    /// [`Herald::spawn`] with `env` added to the child's environment, which otherwise has no
    /// `RUST_LOG` and none of the variables herald reads as configuration ([`CONFIG_PREFIXES`]).
    pub fn spawn_env(
        args: &[&str],
        env: &[(&str, &str)],
        expect_listeners: usize,
    ) -> Result<Self, (Option<i32>, String)> {
        let mut cmd = Command::new(herald_bin());
        cmd.env_remove("RUST_LOG");
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(|n| CONFIG_PREFIXES.iter().any(|p| n.starts_with(p))) {
                cmd.env_remove(name);
            }
        }
        Self::spawn_cmd(cmd, args, env, expect_listeners)
    }

    /// [`Herald::spawn`] with `env` as the child's whole environment (as a supervisor that
    /// passes only chosen variables starts it).
    pub fn spawn_clean_env(
        args: &[&str],
        env: &[(&str, &str)],
        expect_listeners: usize,
    ) -> Result<Self, (Option<i32>, String)> {
        let mut cmd = Command::new(herald_bin());
        cmd.env_clear();
        Self::spawn_cmd(cmd, args, env, expect_listeners)
    }

    fn spawn_cmd(
        mut cmd: Command,
        args: &[&str],
        env: &[(&str, &str)],
        expect_listeners: usize,
    ) -> Result<Self, (Option<i32>, String)> {
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
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
        Ok(Self { child, listening, stderr, stderr_lines, stderr_reader: Some(stderr_reader) })
    }

    /// The first listener's address (the main one).
    pub fn addr(&self) -> SocketAddr {
        self.listening[0].0
    }

    /// The address of the listener printed with `(label)`.
    pub fn labelled(&self, label: &str) -> SocketAddr {
        self.listening.iter().find(|(_, l)| l.as_deref() == Some(label)).expect("listener").0
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid")
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: rustix::process::Signal) {
        rustix::process::kill_process(rustix::process::Pid::from_raw(self.pid()).unwrap(), sig).unwrap();
    }

    /// Waits for the process to exit; its exit code (None: killed by a signal, or still running).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        wait_exit(&mut self.child, timeout)
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILLs the process and returns everything it wrote to stderr.
    pub fn kill(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The pipe closes with the process: the reader has then seen every line.
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        self.stderr()
    }

    /// Waits until a stderr line contains `needle`; returns that line.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        if let Some(line) = self.stderr().lines().find(|l| l.contains(needle)) {
            return line.to_owned();
        }
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
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

/// Polls a child for exit (std offers no exit event to wait on with a deadline).
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port that was free a moment ago, for programs that need a number (nginx, PostgreSQL).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
