//! The command line: `herald serve`, `herald config check`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// herald: a real-time WebSocket server for the Pusher Channels and WAMP protocols.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
pub struct Cli {
    /// What to do; `serve` with defaults when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Inspect a configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Gracefully restart the running herald (its supervisor starts it again), like
    /// `websockets:restart`: reads `[server] pid_file` and sends SIGTERM.
    Restart(RestartArgs),
}

/// `herald restart`
#[derive(Debug, Args, Default, Clone)]
pub struct RestartArgs {
    /// TOML configuration file (for `[server] pid_file`).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// The pid file, overriding the configuration.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Return at once instead of waiting for the old process to exit.
    #[arg(long)]
    pub no_wait: bool,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `herald config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it with secrets redacted.
    Check(ServeArgs),
}

/// Where and how to serve.
#[derive(Debug, Args, Default, Clone)]
pub struct ServeArgs {
    /// Address to listen on [default: 0.0.0.0]; with `--profile oro`, Oro's listener.
    #[arg(long, short = 'a')]
    pub host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 6001].
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// TOML configuration file.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// More logs: -v debug, -vv trace for herald, -vvv trace for everything.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Bind the ports alongside the running herald (SO_REUSEPORT; both need
    /// `[server] reuse_port = true`), then ask it to drain: a restart without a closed port.
    #[arg(long)]
    pub takeover: bool,
    /// Only errors in the log (drop-in profiles; `gos:websocket:server --quiet`).
    #[arg(short, long)]
    pub quiet: bool,
    /// Drop-in profile: `oro` serves Oro's WebSocket server from its ORO_* variables.
    #[arg(long, value_parser = ["oro"])]
    pub profile: Option<String>,
    /// Symfony environment of the Oro profile, `prod` or `dev`; it sets the log levels.
    #[arg(long = "env", short = 'e')]
    pub app_env: Option<String>,
}

impl Cli {
    /// The serve arguments, wherever they were given.
    pub fn serve_args(&self) -> ServeArgs {
        match &self.command {
            Some(Command::Serve(a) | Command::Config(ConfigCommand::Check(a))) => a.clone(),
            Some(Command::Restart(r)) => ServeArgs { config: r.config.clone(), ..ServeArgs::default() },
            None => ServeArgs::default(),
        }
    }
}
