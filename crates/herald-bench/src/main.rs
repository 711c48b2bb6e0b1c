//! The `herald-bench` binary: parses the command line, checks the run stays on loopback and
//! within one process's sockets, and runs the scenario on a single-threaded runtime.

use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser as _;
use herald_bench::cli::{Cli, Scenario, StepArgs};
use herald_bench::report::Record;
use herald_bench::scenario::fanout::{self, FanoutOpts};
use herald_bench::scenario::{self, Ctx, MAX_SOCKETS_PER_PROCESS, connect, http_publish, idle, startup};
use herald_bench::{clock, compare};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Scenario::Compare { files } = &cli.scenario {
        let mut records: Vec<Record> = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            records.extend(text.lines().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()));
        }
        print!("{}", compare::render(&records));
        return Ok(());
    }
    if !cli.target.server.ip().is_loopback() {
        bail!("--server must be a loopback address: benchmarks stay on 127.0.0.0/8");
    }
    let sockets = match &cli.scenario {
        Scenario::Idle { points, .. } => points.iter().copied().max().unwrap_or(0),
        Scenario::Fanout { subs, .. } | Scenario::Max { subs, .. } => *subs,
        Scenario::Connect { conns } => *conns,
        _ => 0,
    };
    if sockets > MAX_SOCKETS_PER_PROCESS {
        bail!("{sockets} sockets exceed {MAX_SOCKETS_PER_PROCESS} per generator process (fd limit 20,000)");
    }
    clock::base();
    let ctx = Ctx { target: Rc::new(cli.target.target()), ramp: cli.target.ramp() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let deadline = Duration::from_secs(cli.deadline);
    local.block_on(&runtime, async move {
        tokio::time::timeout(deadline, run(&ctx, cli.scenario))
            .await
            .map_err(|_| anyhow::anyhow!("deadline of {deadline:?} reached"))
    })
}

/// Runs one scenario to completion.
async fn run(ctx: &Ctx, scenario: Scenario) {
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
        Scenario::CrossNode => {
            let mut r = ctx.record("cross_node");
            r.note = Some("skipped: herald has no Redis backend yet, so there is no second node to measure".into());
            r.emit();
        }
        Scenario::Compare { .. } => {}
    }
    scenario::pause(0.0).await;
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
