//! The `herald` binary: parse the command line, load the config, serve.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use herald_server::cli::{Cli, Command, ConfigCommand};
use herald_server::{Server, config, fd_limit, restart, shutdown, telemetry, tls};

/// sysexits.h: configuration error.
const EX_CONFIG: u8 = 64;
/// sysexits.h: service unavailable (port in use...).
const EX_UNAVAILABLE: u8 = 69;

// jemalloc: fewer bytes per idle connection than glibc's malloc (no per-chunk header, size
// classes that fit tokio's cache-aligned task cells); measured in docs/reports/benchmarks.md.
#[cfg(all(feature = "jemalloc", target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = cli.serve_args();
    let env = |k: &str| std::env::var(k).ok();
    let (mut settings, sources) = match config::load_with_sources(&args, &config::Env::from_process()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("herald: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    match &cli.command {
        Some(Command::Config(ConfigCommand::Check(_))) => {
            print!("{}", config::describe(&settings, &sources));
            if let Err(e) = tls::check(settings.tls_files()) {
                eprintln!("herald: invalid configuration: {e}");
                return ExitCode::from(EX_CONFIG);
            }
            return ExitCode::SUCCESS;
        }
        Some(Command::Restart(r)) => return restart::command(r, &settings),
        _ => {}
    }
    // A successor binds next to the running herald; the predecessor needed reuse_port too.
    settings.ops.reuse_port |= args.takeover;
    let oro_log = config::oro_log_directives(&args, &settings.listeners).map(str::to_owned);
    telemetry::init_with(args.verbose, env("RUST_LOG").or(oro_log), args.log_format);
    if settings.dev_credentials {
        let reach = if settings.host == config::LOOPBACK {
            "on 127.0.0.1 only (pass --host or set HERALD__SERVER__HOST to be reachable from elsewhere)"
        } else {
            "on a non-loopback address: anyone who can reach it knows these credentials"
        };
        tracing::warn!(
            "no app configured: serving the DEVELOPMENT app app-id/app-key/app-secret {reach}; \
             set PUSHER_APP_ID, PUSHER_APP_KEY, PUSHER_APP_SECRET (or the REVERB_APP_* or SOKETI_DEFAULT_APP_* set) or use --config for anything real"
        );
    }
    fd_limit::raise_and_report(fd_limit::max_connections(&settings.apps));
    let claim = match restart::Claim::prepare(settings.ops.pid_file.as_deref(), args.takeover) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("herald: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("herald: cannot start the runtime: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    let history = settings.history.clone();
    let grace = settings.shutdown_grace;
    runtime.block_on(async move {
        let server = match Server::bind(settings).await {
            // SIGHUP loads the apps as start-up did: the same file, environment and flags.
            Ok(s) => s.with_apps_reload(Box::new(move || {
                config::load(&args, &config::Env::from_process()).map(|s| s.apps).map_err(|e| e.to_string())
            })),
            Err(e) => {
                eprintln!("herald: {e}");
                return ExitCode::from(e.exit_code());
            }
        };
        // Our ports are bound: record our pid and, on a takeover, let the predecessor drain.
        let (predecessor, asked_at) = (claim.predecessor(), std::time::SystemTime::now());
        let _pid_file = match claim.commit() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("herald: {e}");
                return ExitCode::from(e.exit_code());
            }
        };
        // Before serving: a recovering subscriber must find the predecessor's history here.
        // Connections meanwhile wait in the listen backlog.
        if let Some(path) = &history.snapshot_file {
            if let Some(pid) = predecessor {
                let bound = grace + std::time::Duration::from_secs(1);
                restart::history::await_predecessor(path, pid, asked_at, bound).await;
            }
            restart::history::load(server.hub(), path, history.max_bytes);
        }
        // Handlers before the announcement: whoever reads it may signal at once.
        let shutdown = shutdown::signal();
        let mut out = std::io::stdout().lock();
        for (addr, label) in server.addrs() {
            tracing::info!(%addr, listener = label.as_deref().unwrap_or("pusher"), "accepting connections");
            let _ = match label {
                None => writeln!(out, "herald listening on {addr}"),
                Some(l) => writeln!(out, "herald listening on {addr} ({l})"),
            };
        }
        let _ = out.flush();
        drop(out);
        server.run(shutdown).await;
        ExitCode::SUCCESS
    })
}
