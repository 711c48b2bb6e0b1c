//! The scenarios a run can measure, and what they share: the target, the ramp limits, and the
//! bracketing of a measurement window with server and generator readings.

pub mod connect;
pub mod cross_node;
pub mod fanout;
pub mod http_publish;
pub mod idle;
pub mod presence_churn;
pub mod slow_consumer;
pub mod soak;
pub mod startup;
pub mod write_floor;

use std::rc::Rc;
use std::time::Duration;

use crate::cli::{Scenario, StepArgs};
use crate::clock;
use crate::fleet::RampLimits;
use crate::procfs::{self, TreeSample};
use crate::report::Record;
use crate::target::Target;
use fanout::FanoutOpts;

/// Most client sockets one generator process may hold: the fd limit here is 20,000 (hard, not
/// raisable), and the process needs a few descriptors of its own.
pub const MAX_SOCKETS_PER_PROCESS: usize = 19_000;

/// What every scenario gets.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The server under test.
    pub target: Rc<Target>,
    /// How subscribers are opened.
    pub ramp: RampLimits,
}

impl Ctx {
    /// A result record carrying this target's labels.
    pub fn record(&self, scenario: &str) -> Record {
        Record::new(&self.target.labels, Some(self.target.protocol), scenario)
    }

    /// The server tree right now, if a pid was given and it is alive.
    pub fn server_sample(&self) -> Option<TreeSample> {
        self.target.server_pid.and_then(|pid| procfs::sample_tree(pid).ok())
    }
}

/// Readings taken at the start of a measurement window.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// When the window opened.
    start_us: u64,
    /// The server tree at that moment.
    server: Option<TreeSample>,
    /// The generator's CPU ticks at that moment.
    gen_ticks: u64,
}

/// What happened between [`Window::open`] and [`Window::close`].
#[derive(Clone, Copy, Debug, Default)]
pub struct WindowEnd {
    /// Length of the window.
    pub seconds: f64,
    /// Server CPU in percent of one core.
    pub server_cpu_pct: Option<f64>,
    /// Server CPU seconds spent.
    pub server_cpu_s: Option<f64>,
    /// Server RSS at the end, KiB.
    pub server_rss_kb: Option<u64>,
    /// Generator CPU in percent of one core.
    pub gen_cpu_pct: f64,
}

impl Window {
    /// Takes the opening readings.
    pub fn open(ctx: &Ctx) -> Self {
        Self { start_us: clock::now_us(), server: ctx.server_sample(), gen_ticks: procfs::self_cpu_ticks() }
    }

    /// Takes the closing readings.
    pub fn close(&self, ctx: &Ctx) -> WindowEnd {
        let seconds = (clock::now_us() - self.start_us) as f64 / 1e6;
        let server = ctx.server_sample();
        let ticks = self.server.zip(server).map(|(a, b)| b.cpu_ticks.saturating_sub(a.cpu_ticks));
        WindowEnd {
            seconds,
            server_cpu_pct: ticks.map(|t| procfs::cpu_pct(0, t, seconds)),
            server_cpu_s: ticks.map(|t| t as f64 / procfs::TICKS_PER_S),
            server_rss_kb: server.map(|s| s.rss_kb),
            gen_cpu_pct: procfs::cpu_pct(self.gen_ticks, procfs::self_cpu_ticks(), seconds),
        }
    }
}

/// Sleeps for `seconds` (fractional).
pub async fn pause(seconds: f64) {
    tokio::time::sleep(Duration::from_secs_f64(seconds.max(0.0))).await;
}

/// Rounds to two decimals, which is all a report needs.
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Runs one scenario to completion (`compare` is not a measurement and does nothing here).
pub async fn run(ctx: &Ctx, scenario: Scenario) {
    match scenario {
        Scenario::Idle { points, settle } => {
            idle::run(ctx, &idle::IdleOpts { points, settle_s: settle }).await;
        }
        Scenario::Fanout { subs, rates, step } => {
            fanout::run(ctx, &fanout_opts(subs, rates, &step, "fanout")).await;
        }
        Scenario::Max { subs, targets, step } => {
            let rates = targets.iter().map(|t| t / subs.max(1) as f64).collect();
            let opts = fanout_opts(subs, rates, &step, "max");
            let steps = fanout::run(ctx, &opts).await;
            fanout::summarize_max(ctx, &opts, &steps);
        }
        Scenario::Connect { conns } => {
            connect::run(ctx, conns).await;
        }
        Scenario::HttpPublish { conns, duration, payload } => {
            http_publish::run(ctx, conns, duration, payload).await;
        }
        Scenario::Startup { runs, command } => {
            startup::run(ctx, &startup::StartupOpts { runs, command }).await;
        }
        Scenario::Soak { conns, channels, rate, minutes, sample, payload, publishers, drain } => {
            let opts = soak::SoakOpts {
                conns,
                channels,
                rate,
                duration_s: minutes * 60.0,
                sample_s: sample,
                payload,
                publishers,
                drain_s: drain,
            };
            soak::run(ctx, &opts).await;
        }
        Scenario::SlowConsumer { subs, stalled, rate, step } => {
            let opts = slow_consumer::SlowConsumerOpts {
                stalled,
                rate,
                fanout: fanout_opts(subs, vec![rate], &step, "slow_consumer"),
            };
            slow_consumer::run(ctx, &opts).await;
        }
        Scenario::CrossNode { publish_to, subs, rates, step } => {
            let opts = fanout_opts(subs, rates, &step, "cross_node");
            cross_node::run(ctx, &opts, publish_to).await;
        }
        Scenario::PresenceChurn { conns, duration, also } => {
            presence_churn::run(ctx, conns, duration, &also).await;
        }
        Scenario::WriteFloor { conns, rates, frame, writer_cpu, warmup, duration } => {
            let opts =
                write_floor::FloorOpts { conns, rates, frame, writer_cpu, warmup_s: warmup, duration_s: duration };
            write_floor::run(ctx, &opts).await;
        }
        Scenario::Compare { .. } | Scenario::ReferenceServer { .. } => {}
    }
}

/// Fan-out options from the command line.
fn fanout_opts(subs: usize, rates: Vec<f64>, s: &StepArgs, scenario: &'static str) -> FanoutOpts {
    FanoutOpts {
        subs,
        rates,
        payload: s.payload,
        warmup_s: s.warmup,
        duration_s: s.duration,
        publishers: s.publishers,
        stop_p99_ms: s.stop_p99_ms,
        stop_ratio: s.stop_ratio,
        drain_s: s.drain,
        scenario,
    }
}
