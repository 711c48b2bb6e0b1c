//! Cross-node: subscribers on node B (`--server`), publishes on node A (`--publish-to`), the
//! two nodes sharing a Redis; latency per delivery, measured exactly as `fanout` measures it.
//!
//! Each step is a `fanout` step (warm-up, measured window, drain); only the publishers point
//! at the other node, so every delivery crosses Redis. The server readings (`--server-pid`) are
//! node B's, the one doing the fan-out.

use std::net::SocketAddr;
use std::rc::Rc;

use crate::report::Record;
use crate::scenario::fanout::{self, FanoutOpts};
use crate::scenario::{Ctx, MAX_SOCKETS_PER_PROCESS};
use crate::target::Target;

/// Runs the steps with publishers on `publish_to`; returns every step record.
pub async fn run(ctx: &Ctx, opts: &FanoutOpts, publish_to: SocketAddr) -> Vec<Record> {
    let refused = if !publish_to.ip().is_loopback() {
        Some("--publish-to must be a loopback address: benchmarks stay on 127.0.0.0/8".to_owned())
    } else if opts.subs > MAX_SOCKETS_PER_PROCESS {
        Some(format!("--subs above {MAX_SOCKETS_PER_PROCESS} needs several generator processes"))
    } else {
        None
    };
    if let Some(note) = refused {
        let mut r = ctx.record(opts.scenario);
        r.note = Some(note);
        r.emit();
        return vec![r];
    }
    let node_a = Rc::new(Target { server: publish_to, ..Target::clone(&ctx.target) });
    let (mut fleet, mut pool) = match fanout::open(ctx, opts, &node_a).await {
        Ok(opened) => opened,
        Err(r) => return vec![r],
    };
    let mut records = Vec::new();
    for (k, &rate) in opts.rates.iter().enumerate() {
        let mut r = fanout::step(ctx, opts, &fleet, &mut pool, k as u32, rate).await;
        // The comparison table prints the note of cross-node records: make it the result.
        let fmt = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v}"));
        let summary = format!(
            "publishes on {publish_to}, {} subscribers on {}: p50 {} ms, p99 {} ms, ratio {}",
            opts.subs,
            ctx.target.server,
            fmt(r.p50_ms),
            fmt(r.p99_ms),
            fmt(r.ratio)
        );
        r.note = Some(match r.note.take() {
            Some(n) => format!("{summary}; {n}"),
            None => summary,
        });
        let stop = !(r.ratio.is_some_and(|x| x >= opts.stop_ratio) && r.p99_ms.is_some_and(|p| p <= opts.stop_p99_ms));
        r.emit();
        records.push(r);
        if stop {
            break;
        }
    }
    drop(pool);
    fleet.close();
    records
}
