//! The kernel's floor for fan-out on this machine: no server at all, only a loop that writes one
//! pre-built frame to each of N loopback sockets per "publish", on its own thread pinned to the
//! server's CPU, while the generator reads the other ends exactly as it reads a server's.
//!
//! Every server in the comparison pays at least this per delivery when each write carries one
//! frame (low publish rates), so a fan-out p99 can be judged against it: what a server adds above
//! the floor is its own; what the floor itself costs is the loopback TCP path of the kernel.
//!
//! Each frame is raw bytes, not a WebSocket frame: `[send time µs: u64 LE][phase: u32 LE]`
//! padded to `--frame` bytes; the send time is the start of the round, like a publish's.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::rc::Rc;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::clock;
use crate::error::BenchError;
use crate::report::Record;
use crate::scenario::{Ctx, pause, round2};
use crate::stats::{Deliveries, Percentiles};
use crate::ws_client::tcp_connect;

/// Options of a floor run.
#[derive(Clone, Debug)]
pub struct FloorOpts {
    /// Receiving sockets.
    pub conns: usize,
    /// Rounds per second (one frame to every socket per round), one step each.
    pub rates: Vec<f64>,
    /// Bytes per frame (≈ a server's frame for the fan-out payload).
    pub frame: usize,
    /// The CPU the writing thread pins itself to (the server's CPU).
    pub writer_cpu: usize,
    /// Warm-up seconds per step.
    pub warmup_s: f64,
    /// Measured seconds per step.
    pub duration_s: f64,
}

/// What the writing thread did in one phase.
#[derive(Clone, Copy, Debug, Default)]
struct WriterPhase {
    writes: u64,
    rounds: u64,
    cpu_s: f64,
    wall_s: f64,
}

/// Runs every step; returns their records.
pub async fn run(ctx: &Ctx, opts: &FloorOpts) -> Vec<Record> {
    // No protocol is spoken: the frames are raw bytes.
    let record = || Record { protocol: None, tls: false, ..ctx.record("write_floor") };
    let fail = |e: BenchError| {
        let mut r = record();
        r.note = Some(format!("setup: {e}"));
        r.emit();
        vec![r]
    };
    let deliveries = Rc::new(Deliveries::default());
    let writers = match connect(ctx, opts, &deliveries).await {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let mut writers = Some(writers);
    let mut records = Vec::new();
    for (k, &rate) in opts.rates.iter().enumerate() {
        let (warm, measured) = (2 * k as u32, 2 * k as u32 + 1);
        let Some(socks) = writers.take() else { break };
        let (tx, rx) = oneshot::channel();
        let o = opts.clone();
        std::thread::spawn(move || {
            let mut socks = socks;
            pin_to(o.writer_cpu);
            let _ = write_rounds(&mut socks, &o, rate, o.warmup_s, warm);
            let result = write_rounds(&mut socks, &o, rate, o.duration_s, measured);
            let _ = tx.send((socks, result));
        });
        let Ok((socks, result)) = rx.await else {
            return fail(BenchError::Timeout);
        };
        writers = Some(socks);
        let mut r = record();
        r.step = Some(format!("{}x{rate}/s", opts.conns));
        r.subs = Some(opts.conns as u64);
        r.payload = Some(opts.frame as u64);
        r.rate_target = Some(rate);
        match result {
            Ok(w) => {
                let expected = w.writes;
                let until = clock::now_us() + 10_000_000;
                while deliveries.count(measured) < expected && clock::now_us() < until {
                    pause(0.02).await;
                }
                let phase = deliveries.snapshot(measured);
                let pct = Percentiles::of(&phase.latency);
                r.rate_achieved = Some(round2(w.rounds as f64 / w.wall_s.max(1e-6)));
                r.p50_ms = Some(pct.p50_ms);
                r.p90_ms = Some(pct.p90_ms);
                r.p99_ms = Some(pct.p99_ms);
                r.max_ms = Some(pct.max_ms);
                r.delivered_per_s = Some(round2(w.writes as f64 / w.wall_s.max(1e-6)));
                r.ratio = (expected > 0).then(|| (phase.count as f64 / expected as f64 * 1e4).round() / 1e4);
                r.server_cpu_pct = Some(round2(w.cpu_s * 100.0 / w.wall_s.max(1e-6)));
                r.server_us_per_delivery = (w.writes > 0).then(|| round2(w.cpu_s * 1e6 / w.writes as f64));
            }
            Err(e) => r.note = Some(format!("write: {e}")),
        }
        r.emit();
        records.push(r);
    }
    records
}

/// Opens `conns` loopback connections: the accepted ends (blocking, for the writer) are
/// returned; each connecting end gets a reader task that records every frame's latency.
async fn connect(ctx: &Ctx, opts: &FloorOpts, deliveries: &Rc<Deliveries>) -> Result<Vec<StdTcpStream>, BenchError> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    let mut accepted = Vec::with_capacity(opts.conns);
    for i in 0..opts.conns {
        let (client, server) = tokio::join!(tcp_connect(addr, ctx.target.source_for(i)), listener.accept());
        let client = client?;
        let (server, _) = server?;
        server.set_nodelay(true)?;
        let server = server.into_std()?;
        server.set_nonblocking(false)?;
        accepted.push(server);
        tokio::task::spawn_local(read_frames(client, opts.frame, Rc::clone(deliveries)));
    }
    Ok(accepted)
}

/// Reads fixed-size frames until the connection ends, recording each one's latency.
async fn read_frames(mut conn: TcpStream, frame: usize, deliveries: Rc<Deliveries>) {
    let mut buf = vec![0u8; frame];
    while conn.read_exact(&mut buf).await.is_ok() {
        let now = clock::now_us();
        let (Some(sent), Some(phase)) = (
            buf.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes),
            buf.get(8..12).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes),
        ) else {
            return;
        };
        deliveries.record(phase, now.saturating_sub(sent));
    }
}

/// Writes `rate` rounds per second for `seconds`; every round writes the frame to every socket.
fn write_rounds(
    socks: &mut [StdTcpStream],
    opts: &FloorOpts,
    rate: f64,
    seconds: f64,
    phase: u32,
) -> std::io::Result<WriterPhase> {
    let mut frame = vec![b'x'; opts.frame.max(12)];
    frame[8..12].copy_from_slice(&phase.to_le_bytes());
    let interval = 1e6 / rate.max(1e-3);
    let start = clock::now_us();
    let end = start + (seconds * 1e6) as u64;
    let cpu0 = thread_cpu_s();
    let mut out = WriterPhase::default();
    loop {
        let due = start + (out.rounds as f64 * interval) as u64;
        if due >= end {
            break;
        }
        let now = clock::now_us();
        if due > now {
            std::thread::sleep(Duration::from_micros(due - now));
        }
        frame[..8].copy_from_slice(&clock::now_us().to_le_bytes());
        for s in socks.iter_mut() {
            s.write_all(&frame)?;
            out.writes += 1;
        }
        out.rounds += 1;
    }
    out.cpu_s = thread_cpu_s() - cpu0;
    out.wall_s = (clock::now_us() - start) as f64 / 1e6;
    Ok(out)
}

/// CPU time of the calling thread, seconds.
fn thread_cpu_s() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

/// Pins the calling thread to `cpu` (best effort: an unknown CPU leaves it where it is).
fn pin_to(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        eprintln!("write-floor: could not pin the writer to CPU {cpu}: {e}");
    }
}
