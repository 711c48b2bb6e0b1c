//! Idle memory: RSS per idle subscribed connection at growing connection counts.
//!
//! The server's RSS is read before any client connects, then after each point's subscribers
//! are open and have sat idle for the settle time: per connection = (RSS_N − RSS_0) ÷ N. Kernel
//! socket memory is not in any RSS; it is reported beside it from `/proc/net/sockstat`.

use crate::fleet::Fleet;
use crate::procfs;
use crate::report::Record;
use crate::scenario::{Ctx, pause, round2};

/// Options of the idle scenario.
#[derive(Clone, Debug)]
pub struct IdleOpts {
    /// Connection counts to measure at, ascending; the fleet grows from one to the next.
    pub points: Vec<usize>,
    /// Seconds to sit idle before reading RSS.
    pub settle_s: f64,
}

/// Runs the scenario, emitting one record per point.
pub async fn run(ctx: &Ctx, opts: &IdleOpts) -> Vec<Record> {
    let base = ctx.server_sample().map(|s| s.rss_kb);
    let mut fleet = Fleet::new(ctx.target.clone());
    let mut records = Vec::new();
    let mut points = opts.points.clone();
    points.sort_unstable();
    for n in points {
        let more = n.saturating_sub(fleet.len());
        let ramp = fleet.grow(more, ctx.ramp).await;
        pause(opts.settle_s).await;
        let open = fleet.len();
        let rss = ctx.server_sample().map(|s| s.rss_kb);
        let mut r = ctx.record("idle");
        r.step = Some(format!("{n}"));
        r.subs = Some(open as u64);
        r.rss_kb = rss;
        r.rss_base_kb = base;
        r.rss_kb_per_conn =
            base.zip(rss).filter(|_| open > 0).map(|(b, now)| round2((now as f64 - b as f64) / open as f64));
        r.tcp_mem_kb = procfs::tcp_mem_kb();
        r.connect_s = Some(round2(ramp.seconds));
        r.connects_per_s = Some(round2(ramp.opened as f64 / ramp.seconds.max(1e-6)));
        r.failed = Some((n - open.min(n)) as u64);
        r.note = ramp.first_error;
        r.emit();
        records.push(r);
        if open < n {
            break;
        }
    }
    fleet.close();
    records
}
