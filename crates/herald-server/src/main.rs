//! The `herald` binary: parse the command line, load the config, serve.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use herald_server::cli::{Cli, Command, ConfigCommand};
use herald_server::{Server, config, shutdown, telemetry};

/// sysexits.h: configuration error.
const EX_CONFIG: u8 = 64;
/// sysexits.h: service unavailable (port in use...).
const EX_UNAVAILABLE: u8 = 69;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = cli.serve_args();
    let env = |k: &str| std::env::var(k).ok();
    let settings = match config::load(&args, &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("herald: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if let Some(Command::Config(ConfigCommand::Check(_))) = cli.command {
        print!("{}", config::describe(&settings));
        return ExitCode::SUCCESS;
    }
    telemetry::init(args.verbose, env("RUST_LOG"));
    if settings.dev_credentials {
        tracing::warn!(
            "no app configured: serving the DEVELOPMENT app app-id/app-key/app-secret; \
             set PUSHER_APP_ID, PUSHER_APP_KEY, PUSHER_APP_SECRET or use --config for anything real"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("herald: cannot start the runtime: {e}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
    };
    runtime.block_on(async move {
        let server = match Server::bind(settings).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("herald: {e}");
                return ExitCode::from(EX_UNAVAILABLE);
            }
        };
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
        server.run(shutdown::signal()).await;
        ExitCode::SUCCESS
    })
}
