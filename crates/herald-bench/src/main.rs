//! The `herald-bench` binary: parses the command line, checks the run stays on loopback and
//! within one process's sockets, and runs the scenario on a single-threaded runtime.

use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser as _;
use herald_bench::cli::{Cli, Scenario};
use herald_bench::report::Record;
use herald_bench::scenario::{self, Ctx, MAX_SOCKETS_PER_PROCESS};
use herald_bench::{clock, compare, reference_server};

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
        Scenario::Connect { conns } | Scenario::Soak { conns, .. } | Scenario::PresenceChurn { conns, .. } => *conns,
        Scenario::SlowConsumer { subs, stalled, .. } => subs + stalled,
        // Both ends of every connection live in this process.
        Scenario::WriteFloor { conns, .. } => 2 * conns,
        _ => 0,
    };
    if sockets > MAX_SOCKETS_PER_PROCESS {
        bail!("{sockets} sockets exceed {MAX_SOCKETS_PER_PROCESS} per generator process (fd limit 20,000)");
    }
    clock::base();
    let target = cli.target.target().map_err(|e| anyhow::anyhow!("--tls-ca: {e}"))?;
    let ctx = Ctx { target: Rc::new(target), ramp: cli.target.ramp() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let deadline = Duration::from_secs(cli.deadline);
    if let Scenario::ReferenceServer { port } = cli.scenario {
        return local.block_on(&runtime, async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
            println!("herald-bench reference server listening on {}", listener.local_addr()?);
            tokio::time::timeout(deadline, reference_server::serve(listener))
                .await
                .unwrap_or(Ok(()))
                .map_err(Into::into)
        });
    }
    if cli.busy_poll {
        // A task that is always ready keeps the runtime from parking: it polls the sockets
        // (epoll with a zero timeout) between every turn instead of sleeping in epoll_wait.
        local.spawn_local(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
    }
    local.block_on(&runtime, async move {
        tokio::time::timeout(deadline, scenario::run(&ctx, cli.scenario))
            .await
            .map_err(|_| anyhow::anyhow!("deadline of {deadline:?} reached"))
    })
}
