//! Soak: many Pusher subscribers spread over many channels, a steady publish rate through the
//! signed HTTP API for a long time, the server's RSS and open descriptors sampled at fixed
//! intervals, and an exact delivery check at every sample.
//!
//! Each channel is its own [`Fleet`] (own counters), and publishes go round-robin over the
//! channels, so the check is per channel: every publish the API accepted on channel `c` must have
//! reached every subscriber of `c`, no more, no fewer. To make that exact without stamping each
//! publish, a sample briefly closes a gate: publishers finish the requests they have in flight and
//! start no new ones, the generator waits until every channel's delivery count equals its
//! accepted publishes × its subscribers (or stops changing), then reads the server and reopens
//! the gate. The pacer keeps its schedule meanwhile, so the publishes due during the pause go out
//! right after it and the rate over a sample interval is unchanged.
//!
//! One JSON line per sample and one summary line, on stdout like every scenario.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::RwLock;

use crate::clock;
use crate::fleet::Fleet;
use crate::publisher::{Pacer, Publisher};
use crate::report::Record;
use crate::scenario::{Ctx, pause, round2};
use crate::stats::{Percentiles, new_histogram};
use crate::target::Target;

/// Options of a soak run.
#[derive(Clone, Debug)]
pub struct SoakOpts {
    /// Subscribers in total, spread evenly over the channels.
    pub conns: usize,
    /// Channels (`soak-0` …); publishes go round-robin over them.
    pub channels: usize,
    /// Publishes per second, all channels together.
    pub rate: f64,
    /// How long to publish, seconds.
    pub duration_s: f64,
    /// Seconds between samples.
    pub sample_s: f64,
    /// Payload bytes per event.
    pub payload: usize,
    /// Keep-alive HTTP publishing connections.
    pub publishers: usize,
    /// Longest wait at a sample for the deliveries to catch up, s.
    pub drain_s: f64,
}

/// One sample line.
#[derive(Debug, Serialize)]
struct Sample<'a> {
    /// Server label.
    server: &'a str,
    /// Always `soak`.
    scenario: &'static str,
    /// `sample`.
    step: &'static str,
    /// Seconds since publishing started.
    t_s: f64,
    /// Server RSS (process tree), KiB.
    rss_kb: Option<u64>,
    /// Entries in `/proc/<pid>/fd` of the server.
    fds: Option<usize>,
    /// Subscribers still open.
    subs: u64,
    /// Publishes accepted since the start.
    published: u64,
    /// Publishes refused or failed since the start.
    publish_errors: u64,
    /// Deliveries received since the start.
    delivered: u64,
    /// Deliveries expected since the start (accepted publishes × subscribers of their channel).
    expected: u64,
    /// `delivered ÷ expected`, cumulative.
    ratio: f64,
    /// Channels whose count did not match at this sample.
    channels_off: usize,
    /// Latency over the interval since the previous sample.
    p50_ms: f64,
    /// 99th percentile over the interval.
    p99_ms: f64,
    /// Largest latency over the interval.
    max_ms: f64,
    /// Milliseconds publishing was held for this sample's check.
    gate_ms: f64,
    /// Generator RSS, KiB (its own memory must stay flat too, or it is the leak).
    gen_rss_kb: u64,
}

/// Counts per channel that the publishers write and the sampler reads.
#[derive(Debug)]
struct Ledger {
    /// Publishes accepted, per channel.
    accepted: RefCell<Vec<u64>>,
    /// Publishes refused or failed (all channels).
    errors: Cell<u64>,
    /// The first failure.
    first_error: RefCell<Option<String>>,
    /// Publishes handed out so far; picks the channel round-robin.
    next: Cell<u64>,
}

/// Runs the soak: ramp, then publish and sample until the duration is over; returns the summary.
pub async fn run(ctx: &Ctx, opts: &SoakOpts) -> Record {
    let channels = opts.channels.max(1);
    let mut fleets = Vec::with_capacity(channels);
    let mut ramp_failed = 0;
    let mut first_ramp_error = None;
    let ramp_start = clock::now_us();
    for c in 0..channels {
        let share = opts.conns / channels + usize::from(c < opts.conns % channels);
        let mut target: Target = (*ctx.target).clone();
        target.channel = format!("soak-{c}");
        let mut fleet = Fleet::new(Rc::new(target));
        let ramp = fleet.grow(share, ctx.ramp).await;
        ramp_failed += ramp.failed;
        first_ramp_error = first_ramp_error.or(ramp.first_error);
        fleets.push(fleet);
    }
    let ramp_s = (clock::now_us() - ramp_start) as f64 / 1e6;
    let subs: Vec<u64> = fleets.iter().map(|f| f.len() as u64).collect();
    if ramp_failed > 0 {
        let mut r = ctx.record("soak");
        r.step = Some("ramp".into());
        r.subs = Some(subs.iter().sum());
        r.failed = Some(ramp_failed as u64);
        r.note = first_ramp_error;
        r.emit();
        return r;
    }
    eprintln!("soak: {} subscribers on {channels} channels opened in {ramp_s:.1}s", subs.iter().sum::<u64>());

    let mut pool = match Publisher::open_pool(&ctx.target, opts.publishers).await {
        Ok(pool) => pool,
        Err(e) => {
            let mut r = ctx.record("soak");
            r.note = Some(format!("publisher: {e}"));
            r.emit();
            return r;
        }
    };
    let ledger = Ledger {
        accepted: RefCell::new(vec![0; channels]),
        errors: Cell::new(0),
        first_error: RefCell::new(None),
        next: Cell::new(0),
    };
    let gate = RwLock::new(());
    let pacer = Pacer::new(opts.rate, opts.duration_s);
    let start_us = clock::now_us();
    let done = Cell::new(false);
    let drivers = pool.iter_mut().map(|p| drive(p, &pacer, &gate, &ledger, opts.payload));
    let publishing = async {
        futures_util::future::join_all(drivers).await;
        done.set(true);
    };
    let sampling = sample_loop(ctx, opts, &fleets, &subs, &ledger, &gate, &done, start_us);
    let ((), samples) = tokio::join!(publishing, sampling);
    let summary = summarize(ctx, opts, &fleets, &subs, &ledger, &samples, start_us);
    drop(pool);
    for f in &mut fleets {
        f.close();
    }
    summary
}

/// One publisher: claims slots from the pacer and publishes each to the next channel in turn,
/// holding the gate open (a read guard) for the length of the request.
async fn drive(p: &mut Publisher, pacer: &Pacer, gate: &RwLock<()>, ledger: &Ledger, payload: usize) {
    let channels = ledger.accepted.borrow().len() as u64;
    while let Some(due) = pacer.claim() {
        tokio::time::sleep_until(clock::instant_at(due).into()).await;
        let _open = gate.read().await;
        let n = ledger.next.get();
        ledger.next.set(n + 1);
        let c = (n % channels) as usize;
        match p.publish(&format!("soak-{c}"), 0, payload).await {
            Ok(()) => ledger.accepted.borrow_mut()[c] += 1,
            Err(e) => {
                ledger.errors.set(ledger.errors.get() + 1);
                ledger.first_error.borrow_mut().get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// What one sample read, kept for the summary.
#[derive(Clone, Copy, Debug)]
struct Reading {
    /// Server RSS, KiB.
    rss_kb: Option<u64>,
    /// Server descriptors.
    fds: Option<usize>,
    /// Whether every channel matched exactly.
    exact: bool,
}

/// Samples every `sample_s` until publishing is over, then once more after it.
#[allow(clippy::too_many_arguments)]
async fn sample_loop(
    ctx: &Ctx,
    opts: &SoakOpts,
    fleets: &[Fleet],
    subs: &[u64],
    ledger: &Ledger,
    gate: &RwLock<()>,
    done: &Cell<bool>,
    start_us: u64,
) -> Vec<Reading> {
    let mut readings = Vec::new();
    let mut previous = new_histogram();
    let interval_us = (opts.sample_s.max(1.0) * 1e6) as u64;
    let end_us = start_us + (opts.duration_s * 1e6) as u64;
    let mut k = 1;
    loop {
        let due = (start_us + k * interval_us).min(end_us);
        while clock::now_us() < due && !done.get() {
            // Short naps so the final sample follows the last publish closely.
            pause(((due - clock::now_us()) as f64 / 1e6).min(0.5)).await;
        }
        let last = done.get() || due >= end_us;
        let held = clock::now_us();
        let guard = gate.write().await;
        let (delivered, expected, off) = settle(fleets, subs, ledger, opts.drain_s).await;
        let gate_ms = (clock::now_us() - held) as f64 / 1e3;
        let server = ctx.server_sample();
        let fds = ctx.target.server_pid.and_then(count_fds);
        drop(guard);
        let mut all = new_histogram();
        for f in fleets {
            let _ = all.add(&f.deliveries().snapshot(0).latency);
        }
        let mut interval = all.clone();
        let _ = interval.subtract(&previous);
        previous = all;
        let pct = Percentiles::of(&interval);
        let sample = Sample {
            server: &ctx.target.labels.server,
            scenario: "soak",
            step: "sample",
            t_s: round2((clock::now_us() - start_us) as f64 / 1e6),
            rss_kb: server.map(|s| s.rss_kb),
            fds,
            subs: fleets.iter().map(|f| f.len() as u64).sum(),
            published: ledger.accepted.borrow().iter().sum(),
            publish_errors: ledger.errors.get(),
            delivered,
            expected,
            ratio: ratio(delivered, expected),
            channels_off: off,
            p50_ms: pct.p50_ms,
            p99_ms: pct.p99_ms,
            max_ms: pct.max_ms,
            gate_ms: round2(gate_ms),
            gen_rss_kb: crate::procfs::self_rss_kb(),
        };
        emit(&sample);
        readings.push(Reading { rss_kb: sample.rss_kb, fds, exact: off == 0 });
        if last {
            return readings;
        }
        k += 1;
    }
}

/// Waits until every channel has exactly its expected deliveries, or until they stop arriving
/// for a second, or `drain_s`; returns (delivered, expected, channels that do not match).
async fn settle(fleets: &[Fleet], subs: &[u64], ledger: &Ledger, drain_s: f64) -> (u64, u64, usize) {
    let until = clock::now_us() + (drain_s * 1e6) as u64;
    let mut last = (u64::MAX, clock::now_us());
    loop {
        let accepted = ledger.accepted.borrow().clone();
        let mut delivered = 0;
        let mut expected = 0;
        let mut off = 0;
        for ((f, &n), &a) in fleets.iter().zip(subs).zip(&accepted) {
            let got = f.deliveries().count(0);
            delivered += got;
            expected += a * n;
            off += usize::from(got != a * n);
        }
        let now = clock::now_us();
        if off == 0 || now >= until {
            return (delivered, expected, off);
        }
        if delivered != last.0 {
            last = (delivered, now);
        } else if now - last.1 > 1_000_000 {
            return (delivered, expected, off);
        }
        pause(0.01).await;
    }
}

/// The summary record: totals, the exact ratio, and RSS and descriptors first / last / max.
fn summarize(
    ctx: &Ctx,
    opts: &SoakOpts,
    fleets: &[Fleet],
    subs: &[u64],
    ledger: &Ledger,
    readings: &[Reading],
    start_us: u64,
) -> Record {
    let seconds = (clock::now_us() - start_us) as f64 / 1e6;
    let accepted = ledger.accepted.borrow();
    let published: u64 = accepted.iter().sum();
    let expected: u64 = accepted.iter().zip(subs).map(|(a, n)| a * n).sum();
    let delivered: u64 = fleets.iter().map(|f| f.deliveries().count(0)).sum();
    let mut all: Histogram<u64> = new_histogram();
    for f in fleets {
        let _ = all.add(&f.deliveries().snapshot(0).latency);
    }
    let pct = Percentiles::of(&all);
    let lost: u64 = fleets.iter().map(|f| f.deliveries().lost()).sum();
    let rss: Vec<u64> = readings.iter().filter_map(|r| r.rss_kb).collect();
    let fds: Vec<usize> = readings.iter().filter_map(|r| r.fds).collect();
    let span = |v: &[u64]| match (v.first(), v.last(), v.iter().max()) {
        (Some(f), Some(l), Some(m)) => format!("{f}/{l}/{m}"),
        _ => "?".into(),
    };
    let fds64: Vec<u64> = fds.iter().map(|&f| f as u64).collect();
    let inexact = readings.iter().filter(|r| !r.exact).count();
    let mut r = ctx.record("soak");
    r.step = Some("summary".into());
    r.subs = Some(subs.iter().sum());
    r.payload = Some(opts.payload as u64);
    r.rate_target = Some(opts.rate);
    r.rate_achieved = Some(round2(published as f64 / seconds.max(1e-6)));
    r.p50_ms = Some(pct.p50_ms);
    r.p90_ms = Some(pct.p90_ms);
    r.p99_ms = Some(pct.p99_ms);
    r.max_ms = Some(pct.max_ms);
    r.delivered_per_s = Some(round2(delivered as f64 / seconds.max(1e-6)));
    r.ratio = Some(ratio(delivered, expected));
    r.rss_kb = rss.last().copied();
    r.failed = Some(ledger.errors.get() + lost);
    let mut note = format!(
        "{} channels; {published} publishes accepted, {delivered} of {expected} deliveries; \
         {} samples, {inexact} not exact; server rss KiB first/last/max {}; fds first/last/max {}",
        subs.len(),
        readings.len(),
        span(&rss),
        span(&fds64)
    );
    if lost > 0 {
        note.push_str(&format!("; {lost} subscribers lost"));
    }
    if let Some(e) = ledger.first_error.borrow().as_ref() {
        note.push_str(&format!("; publish: {e}"));
    }
    r.note = Some(note);
    r.emit();
    r
}

/// `delivered ÷ expected` to six decimals (1 when nothing was expected and nothing came).
fn ratio(delivered: u64, expected: u64) -> f64 {
    if expected == 0 {
        return if delivered == 0 { 1.0 } else { f64::INFINITY };
    }
    (delivered as f64 / expected as f64 * 1e6).round() / 1e6
}

/// Open descriptors of `pid` (entries of `/proc/<pid>/fd`), if readable.
fn count_fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|d| d.count())
}

/// Prints a sample's JSON line on stdout and a readable line on stderr.
fn emit(s: &Sample<'_>) {
    use std::io::Write as _;
    if let Ok(line) = serde_json::to_string(s) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    eprintln!(
        "{:<10} soak t={:>7.0}s rss={}MB fds={} subs={} published={} delivered={}/{} ratio={} off={} p99={:.2}ms gate={:.0}ms",
        s.server,
        s.t_s,
        s.rss_kb.map_or(0, |v| v / 1024),
        s.fds.map_or_else(|| "?".into(), |v| v.to_string()),
        s.subs,
        s.published,
        s.delivered,
        s.expected,
        s.ratio,
        s.channels_off,
        s.p99_ms,
        s.gate_ms
    );
}
