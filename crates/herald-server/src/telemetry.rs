//! Logging: `-v` debug for herald, `-vv` trace for herald, `-vvv` trace for everything.
//! `RUST_LOG` wins when set. Logs go to standard error; standard output carries only the
//! "listening" line.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber, writing text lines.
pub fn init(verbose: u8, rust_log: Option<String>) {
    init_with(verbose, rust_log, crate::cli::LogFormat::Text);
}

/// Installs the global subscriber with the chosen line format (`--log-format json`).
pub fn init_with(verbose: u8, rust_log: Option<String>, format: crate::cli::LogFormat) {
    let directives = match verbose {
        0 => "info",
        1 => "info,herald_server=debug,herald_core=debug",
        2 => "info,herald_server=trace,herald_core=trace",
        _ => "trace",
    };
    let filter = rust_log.and_then(|s| EnvFilter::try_new(s).ok()).unwrap_or_else(|| EnvFilter::new(directives));
    // Colours only on a terminal: journald, supervisor log files and pipes get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        crate::cli::LogFormat::Text => builder.try_init(),
        crate::cli::LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
