//! Connection rate: open N subscribers as fast as the in-flight bound allows (no pacing) and
//! report connections per second and the time each took from TCP connect to confirmed
//! subscription.

use std::rc::Rc;

use crate::fleet::{Fleet, RampLimits};
use crate::report::Record;
use crate::scenario::{Ctx, Window, round2};

/// Runs the scenario for `conns` connections and emits one record.
pub async fn run(ctx: &Ctx, conns: usize) -> Record {
    let mut fleet = Fleet::new(Rc::clone(&ctx.target));
    let window = Window::open(ctx);
    let ramp = fleet.grow(conns, RampLimits { in_flight: ctx.ramp.in_flight, rate: None }).await;
    let end = window.close(ctx);
    let mut r = ctx.record("connect");
    r.step = Some(format!("{conns}"));
    r.subs = Some(ramp.opened as u64);
    r.connect_s = Some(round2(ramp.seconds));
    r.connects_per_s = Some(round2(ramp.opened as f64 / ramp.seconds.max(1e-6)));
    r.p50_ms = Some(ramp.open_time.p50_ms);
    r.p90_ms = Some(ramp.open_time.p90_ms);
    r.p99_ms = Some(ramp.open_time.p99_ms);
    r.max_ms = Some(ramp.open_time.max_ms);
    r.server_cpu_pct = end.server_cpu_pct.map(round2);
    r.gen_cpu_pct = Some(round2(end.gen_cpu_pct));
    r.rss_kb = end.server_rss_kb;
    r.failed = Some(ramp.failed as u64);
    r.note = ramp.first_error;
    r.emit();
    fleet.close();
    r
}
