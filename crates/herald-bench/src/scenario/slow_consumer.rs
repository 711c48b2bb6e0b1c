//! Slow consumers: the latency of N subscribers that read, measured once alone and once with K
//! subscribers on the same channel that never read, and the server's RSS in both windows.
//!
//! Issue 5 asks that non-reading subscribers cost the others no more than twice their baseline
//! p99 and that the server's memory stay bounded. The stalled subscribers connect and subscribe
//! like the others, then are never read again: the server's outbox for each fills and it should
//! close them. At the end each stalled socket is read to its end, to count how it was closed.

use std::time::Duration;

use crate::error::BenchError;
use crate::fleet;
use crate::scenario::fanout::{self, FanoutOpts};
use crate::scenario::{Ctx, round2};
use crate::ws_client::WsConn;

/// Longest time spent reading one stalled socket to its end.
const STALLED_READ: Duration = Duration::from_secs(10);

/// Options of a slow-consumer run.
#[derive(Clone, Debug)]
pub struct SlowConsumerOpts {
    /// Stalled subscribers added for the second window.
    pub stalled: usize,
    /// Publish rate of both windows, per second.
    pub rate: f64,
    /// Subscribers that read, payload, window lengths and publishers.
    pub fanout: FanoutOpts,
}

/// How one stalled subscriber ended.
enum End {
    /// The server sent a Close frame with this code.
    Closed(Option<u16>),
    /// The server closed the TCP connection without a Close frame.
    Eof,
    /// Still open after [`STALLED_READ`] (the server never gave up on it).
    Open,
}

/// Runs the two windows and emits three records: `baseline`, `stalled`, `summary`.
pub async fn run(ctx: &Ctx, opts: &SlowConsumerOpts) {
    let fo = &opts.fanout;
    // A failure to open is reported (and emitted) by `open` as this scenario's record.
    let Ok((mut fleet, mut pool)) = fanout::open(ctx, fo, &ctx.target).await else {
        return;
    };
    let base_rss = ctx.server_sample().map(|s| s.rss_kb);
    let mut base = fanout::step(ctx, fo, &fleet, &mut pool, 0, opts.rate).await;
    base.scenario = "slow_consumer".into();
    base.step = Some(format!("baseline: {} readers x {}/s", fo.subs, opts.rate));
    base.emit();

    let mut stalled = Vec::new();
    for i in 0..opts.stalled {
        match fleet::open(&ctx.target, fo.subs + i).await {
            Ok(c) => stalled.push(c),
            Err(e) => return failure(ctx, format!("stalled subscriber {i}: {e}")),
        }
    }
    let mut loaded = fanout::step(ctx, fo, &fleet, &mut pool, 1, opts.rate).await;
    loaded.scenario = "slow_consumer".into();
    loaded.step = Some(format!("{} readers + {} stalled x {}/s", fo.subs, opts.stalled, opts.rate));
    loaded.emit();

    let mut ends = (0usize, 0usize, 0usize, 0usize);
    for conn in stalled {
        match read_to_end(conn).await {
            End::Closed(Some(4100)) => ends.0 += 1,
            End::Closed(_) => ends.1 += 1,
            End::Eof => ends.2 += 1,
            End::Open => ends.3 += 1,
        }
    }
    drop(pool);
    fleet.close();

    let mut r = ctx.record("slow_consumer");
    r.step = Some("summary".into());
    r.subs = Some(fo.subs as u64);
    r.payload = Some(fo.payload as u64);
    r.rate_target = Some(opts.rate);
    r.p99_ms = loaded.p99_ms;
    r.rss_base_kb = base_rss;
    r.rss_kb = loaded.rss_kb;
    let ratio = base.p99_ms.zip(loaded.p99_ms).map(|(b, l)| round2(l / b.max(1e-3)));
    r.note = Some(format!(
        "p99 {} -> {} ms (x{}, bound x2); delivery ratio {} -> {}; server RSS {} -> {} -> {} KB \
         (before, baseline window, stalled window); {} stalled: {} closed 4100, {} other close, \
         {} EOF, {} still open",
        show(base.p99_ms),
        show(loaded.p99_ms),
        show(ratio),
        show(base.ratio),
        show(loaded.ratio),
        show(base_rss),
        show(base.rss_kb),
        show(loaded.rss_kb),
        opts.stalled,
        ends.0,
        ends.1,
        ends.2,
        ends.3
    ));
    r.emit();
}

fn show<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "?".to_owned(), |v| v.to_string())
}

fn failure(ctx: &Ctx, note: String) {
    let mut r = ctx.record("slow_consumer");
    r.note = Some(note);
    r.emit();
}

/// Reads what the kernel holds for a stalled socket until the server's close shows.
async fn read_to_end(mut conn: WsConn) -> End {
    let read = async {
        loop {
            match conn.next_data().await {
                Ok(_) => {}
                Err(BenchError::CloseFrame(code)) => return End::Closed(code),
                Err(_) => return End::Eof,
            }
        }
    };
    tokio::time::timeout(STALLED_READ, read).await.unwrap_or(End::Open)
}
