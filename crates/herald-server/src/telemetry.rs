//! Logging: `-v` debug for herald, `-vv` trace for herald, `-vvv` trace for everything.
//! `RUST_LOG` wins when set. Logs go to standard error; standard output carries only the
//! "listening" line.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init(verbose: u8, rust_log: Option<String>) {
    let directives = match verbose {
        0 => "info",
        1 => "info,herald_server=debug,herald_core=debug",
        2 => "info,herald_server=trace,herald_core=trace",
        _ => "trace",
    };
    let filter = rust_log
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new(directives));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
