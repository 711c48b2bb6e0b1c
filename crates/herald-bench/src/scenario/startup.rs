//! Start-up time: how long a server command takes from spawn until it answers an HTTP request
//! on its port. The command is started (and stopped) by the generator, several times; the
//! median is reported.
//!
//! The probe connects every millisecond and sends `GET /` (with `--tls` after a TLS handshake,
//! which is then part of answering); any HTTP status line counts as accepting (Crossbar answers
//! `/` with its own page, Pusher servers with 200). The command runs in its own process group
//! so a server with worker processes is stopped whole, with SIGTERM first and SIGKILL if it
//! lingers.
#![allow(clippy::disallowed_types, reason = "it times real server processes; nothing here runs on paused time")]

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::report::Record;
use crate::scenario::{Ctx, pause, round2};

/// Longest a server may take to start before the run is given up.
const START_LIMIT: Duration = Duration::from_secs(60);
/// Longest a server may take to exit after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(15);

/// Options of the start-up scenario.
#[derive(Clone, Debug)]
pub struct StartupOpts {
    /// How many times to start the server.
    pub runs: usize,
    /// The command; `{port}` in any argument is replaced by the target's port.
    pub command: Vec<String>,
}

/// Runs the scenario and emits one record with the median start-up time.
pub async fn run(ctx: &Ctx, opts: &StartupOpts) -> Record {
    let mut r = ctx.record("startup");
    let mut times = Vec::new();
    let mut note = None;
    for _ in 0..opts.runs.max(1) {
        match once(ctx, &opts.command).await {
            Ok(ms) => times.push(ms),
            Err(e) => {
                note = Some(e);
                break;
            }
        }
        // Let the port and the old process's sockets go before the next start.
        pause(0.5).await;
    }
    times.sort_by(f64::total_cmp);
    r.step = Some(format!("median of {}", times.len()));
    r.startup_ms = times.get(times.len() / 2).copied().map(round2);
    r.max_ms = times.last().copied().map(round2);
    r.note = note;
    r.emit();
    r
}

/// Starts the command once, waits for it to answer, stops it; returns the start-up in ms.
async fn once(ctx: &Ctx, command: &[String]) -> Result<f64, String> {
    let port = ctx.target.server.port().to_string();
    let args: Vec<String> = command.iter().map(|a| a.replace("{port}", &port)).collect();
    let (program, rest) = args.split_first().ok_or("no command given")?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn {program}: {e}"))?;
    let outcome = loop {
        if answers(ctx).await {
            break Ok(started.elapsed().as_secs_f64() * 1e3);
        }
        if started.elapsed() > START_LIMIT {
            break Err(format!("{program} did not answer within {START_LIMIT:?}"));
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("{program} exited with {status} before answering"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    stop(&mut child).await;
    outcome
}

/// Whether an HTTP request to the target (HTTPS with `--tls`) gets a status line back.
async fn answers(ctx: &Ctx) -> bool {
    let Ok(s) = TcpStream::connect(ctx.target.server).await else {
        return false;
    };
    match &ctx.target.tls {
        None => status_line(s, ctx).await,
        Some(tls) => match tokio::time::timeout(PROBE_LIMIT, tls.handshake(s, ctx.target.server)).await {
            Ok(Ok(s)) => status_line(s, ctx).await,
            _ => false,
        },
    }
}

/// Longest a probe waits for the TLS handshake or the answer.
const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// Sends `GET /` on `s` and checks that the answer starts with a status line.
async fn status_line<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, ctx: &Ctx) -> bool {
    let req = format!("GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", ctx.target.server);
    if s.write_all(req.as_bytes()).await.is_err() || s.flush().await.is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    let read = tokio::time::timeout(PROBE_LIMIT, s.read(&mut head)).await;
    matches!(read, Ok(Ok(n)) if head[..n].starts_with(b"HTTP/1."))
}

/// Stops the child's process group: SIGTERM, then SIGKILL after [`STOP_LIMIT`].
async fn stop(child: &mut Child) {
    let Some(pid) = child.id() else { return };
    let group = format!("-{pid}");
    let signal = |sig: &'static str| {
        let group = group.clone();
        async move {
            let _ = Command::new("kill").args([sig, "--", &group]).stderr(Stdio::null()).status().await;
        }
    };
    signal("-TERM").await;
    if tokio::time::timeout(STOP_LIMIT, child.wait()).await.is_err() {
        signal("-KILL").await;
        let _ = child.wait().await;
    }
}
