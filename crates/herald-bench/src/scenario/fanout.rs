//! Fan-out: N subscribers on one channel, publishes at stepped rates, latency per delivery.
//!
//! Each step publishes for a warm-up and then for the measured duration, each in its own
//! phase, then waits for the step's deliveries to drain before the next step starts. A step
//! reports latency percentiles of its measured phase, deliveries per second received during
//! the window, and the delivery ratio of its own publishes. The scenario stops at the first
//! step whose ratio, p99 or achieved publish rate falls past the limits.
//!
//! The `max` scenario is the same loop with rates derived from delivery targets (rate =
//! deliveries/s ÷ N); its summary is the step with the most deliveries/s that still delivered
//! everything within the p99 limit, and says why the scenario stopped.

use std::rc::Rc;

use crate::clock;
use crate::fleet::Fleet;
use crate::publisher::{self, Pacer, Publisher};
use crate::report::Record;
use crate::scenario::{Ctx, Window, pause, round2};
use crate::stats::Percentiles;
use crate::target::Target;

/// Options of a fan-out run.
#[derive(Clone, Debug)]
pub struct FanoutOpts {
    /// Subscribers on the channel.
    pub subs: usize,
    /// Publish rates per second, one step each, in order.
    pub rates: Vec<f64>,
    /// Payload bytes per event.
    pub payload: usize,
    /// Seconds of each step's warm-up.
    pub warmup_s: f64,
    /// Seconds of each step's measurement.
    pub duration_s: f64,
    /// Publishing connections (HTTP) or sessions (WAMP); HTTP needs a few to keep the rate when
    /// the server answers slowly.
    pub publishers: usize,
    /// Stop after a step whose p99 exceeds this, ms.
    pub stop_p99_ms: f64,
    /// Stop after a step whose delivery ratio is below this.
    pub stop_ratio: f64,
    /// Longest wait for a step's deliveries to arrive after its last publish, s.
    pub drain_s: f64,
    /// Scenario name in the records (`fanout` or `max`).
    pub scenario: &'static str,
}

/// Runs the steps; returns every step record.
pub async fn run(ctx: &Ctx, opts: &FanoutOpts) -> Vec<Record> {
    let (mut fleet, mut pool) = match open(ctx, opts, &ctx.target).await {
        Ok(opened) => opened,
        Err(r) => return vec![r],
    };
    let mut records = Vec::new();
    for (k, &rate) in opts.rates.iter().enumerate() {
        let r = step(ctx, opts, &fleet, &mut pool, k as u32, rate).await;
        let stop = !passed(opts, &r);
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

/// Opens the subscribers on the target and the publishers on `publish_to` (the same server, or
/// another node in `cross_node`), then lets the server settle for a second. A failure is
/// reported as the scenario's only record, already emitted.
pub async fn open(ctx: &Ctx, opts: &FanoutOpts, publish_to: &Rc<Target>) -> Result<(Fleet, Vec<Publisher>), Record> {
    let mut fleet = Fleet::new(Rc::clone(&ctx.target));
    let ramp = fleet.grow(opts.subs, ctx.ramp).await;
    if ramp.opened < opts.subs {
        let mut r = ctx.record(opts.scenario);
        r.step = Some("ramp".into());
        r.subs = Some(ramp.opened as u64);
        r.failed = Some(ramp.failed as u64);
        r.note = ramp.first_error.or(Some(format!("not every subscriber opened on {}", ctx.target.server)));
        r.emit();
        return Err(r);
    }
    match Publisher::open_pool(publish_to, opts.publishers).await {
        Ok(pool) => {
            pause(1.0).await;
            Ok((fleet, pool))
        }
        Err(e) => {
            let mut r = ctx.record(opts.scenario);
            r.note = Some(format!("publisher on {}: {e}", publish_to.server));
            r.emit();
            Err(r)
        }
    }
}

/// One step: warm-up, measured window, drain (also the windows of `slow_consumer`).
pub async fn step(ctx: &Ctx, opts: &FanoutOpts, fleet: &Fleet, pool: &mut [Publisher], k: u32, rate: f64) -> Record {
    let channel = ctx.target.channel.clone();
    let deliveries = Rc::clone(fleet.deliveries());
    let (warm, measured) = (2 * k, 2 * k + 1);
    if opts.warmup_s > 0.0 {
        publisher::run(pool, &Pacer::new(rate, opts.warmup_s), &channel, warm, opts.payload).await;
    }
    let window = Window::open(ctx);
    let total_before = deliveries.total();
    let stats = publisher::run(pool, &Pacer::new(rate, opts.duration_s), &channel, measured, opts.payload).await;
    let end = window.close(ctx);
    let in_window = deliveries.total() - total_before;

    let subs = fleet.len() as u64;
    let expected = stats.sent.get() * subs;
    let drain_until = clock::now_us() + (opts.drain_s * 1e6) as u64;
    let mut last = (deliveries.count(measured), clock::now_us());
    while deliveries.count(measured) < expected && clock::now_us() < drain_until {
        pause(0.05).await;
        let c = deliveries.count(measured);
        if c != last.0 {
            last = (c, clock::now_us());
        } else if clock::now_us() - last.1 > STALL_US {
            break;
        }
    }
    let phase = deliveries.snapshot(measured);
    let pct = Percentiles::of(&phase.latency);

    let mut r = ctx.record(opts.scenario);
    r.step = Some(format!("{}x{rate}/s", opts.subs));
    r.subs = Some(subs);
    r.payload = Some(opts.payload as u64);
    r.rate_target = Some(rate);
    r.rate_achieved = Some(round2(stats.sent.get() as f64 / end.seconds.max(1e-6)));
    r.p50_ms = Some(pct.p50_ms);
    r.p90_ms = Some(pct.p90_ms);
    r.p99_ms = Some(pct.p99_ms);
    r.max_ms = Some(pct.max_ms);
    r.delivered_per_s = Some(round2(in_window as f64 / end.seconds.max(1e-6)));
    r.ratio = (expected > 0).then(|| (phase.count as f64 / expected as f64 * 1e4).round() / 1e4);
    r.server_cpu_pct = end.server_cpu_pct.map(round2);
    r.server_us_per_delivery = end.server_cpu_s.filter(|_| in_window > 0).map(|s| round2(s * 1e6 / in_window as f64));
    r.gen_cpu_pct = Some(round2(end.gen_cpu_pct));
    r.rss_kb = end.server_rss_kb;
    let lost = deliveries.lost();
    r.failed = Some(stats.errors.get() + lost);
    let mut notes = Vec::new();
    if let Some(e) = stats.first_error.borrow().as_ref() {
        notes.push(format!("publish: {e}"));
    }
    if lost > 0 {
        notes.push(format!("{lost} subscribers lost"));
    }
    if let Some(p) = pool.first().and_then(|p| match p {
        Publisher::Http(h) if h.connects() > 1 => Some(h.connects()),
        _ => None,
    }) {
        notes.push(format!("server closed keep-alive: {p} connections by publisher 0"));
    }
    r.note = (!notes.is_empty()).then(|| notes.join("; "));
    r
}

/// A drain gives up when no delivery of the step arrived for this long (a stalled or dropping
/// server); the step's ratio then shows what is missing.
const STALL_US: u64 = 3_000_000;

/// Generator CPU (percent of its core) above which a step measured the harness as much as the
/// server.
const GEN_SATURATED_PCT: f64 = 90.0;

/// Share of the target publish rate a step must achieve to count as sustained.
const MIN_RATE_SHARE: f64 = 0.9;

/// Whether a step kept its publish rate, delivered (nearly) everything and kept p99 in bounds.
fn passed(opts: &FanoutOpts, r: &Record) -> bool {
    r.ratio.is_some_and(|x| x >= opts.stop_ratio)
        && r.p99_ms.is_some_and(|p| p <= opts.stop_p99_ms)
        && r.rate_achieved.zip(r.rate_target).is_some_and(|(a, t)| a >= MIN_RATE_SHARE * t)
}

/// The `max` summary: the step with the most deliveries/s among those that delivered at least
/// `stop_ratio` of their publishes within the p99 limit.
pub fn summarize_max(ctx: &Ctx, opts: &FanoutOpts, steps: &[Record]) -> Record {
    // A step whose publishers fell behind still counts if everything arrived in time: the
    // server slowed its publishers down, and what it delivered then is its capacity.
    let ok =
        |r: &&Record| r.ratio.is_some_and(|x| x >= opts.stop_ratio) && r.p99_ms.is_some_and(|p| p <= opts.stop_p99_ms);
    let best = steps
        .iter()
        .filter(ok)
        .max_by(|a, b| a.delivered_per_s.unwrap_or(0.0).total_cmp(&b.delivered_per_s.unwrap_or(0.0)));
    let mut r = ctx.record("max");
    r.step = Some("summary".into());
    r.subs = Some(opts.subs as u64);
    r.payload = Some(opts.payload as u64);
    if let Some(b) = best {
        r.rate_achieved = b.rate_achieved;
        r.delivered_per_s = b.delivered_per_s;
        r.p50_ms = b.p50_ms;
        r.p99_ms = b.p99_ms;
        r.server_cpu_pct = b.server_cpu_pct;
        r.server_us_per_delivery = b.server_us_per_delivery;
        r.gen_cpu_pct = b.gen_cpu_pct;
    }
    let limited_by = steps.last().filter(|l| !passed(opts, l)).map(|l| {
        let n = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v}"));
        format!(
            "stopped after step {}: {} deliveries/s, publish rate {}/s, ratio {}, p99 {} ms, \
             server cpu {}%, generator cpu {}%",
            l.step.as_deref().unwrap_or("?"),
            n(l.delivered_per_s),
            n(l.rate_achieved),
            n(l.ratio),
            n(l.p99_ms),
            n(l.server_cpu_pct),
            n(l.gen_cpu_pct)
        )
    });
    let mut note = limited_by.unwrap_or_else(|| "every step passed: the top target was not enough".into());
    if let Some(g) = best.and_then(|b| b.gen_cpu_pct).filter(|g| *g >= GEN_SATURATED_PCT) {
        note.push_str(&format!("; generator at {g:.0}% CPU: harness-limited, a lower bound"));
    }
    r.note = Some(note);
    r.emit();
    r
}
