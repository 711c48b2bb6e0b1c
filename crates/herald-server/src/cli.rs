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
    /// Address to listen on [default: 0.0.0.0].
    #[arg(long)]
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
}

impl Cli {
    /// The serve arguments, wherever they were given.
    pub fn serve_args(&self) -> ServeArgs {
        match &self.command {
            Some(Command::Serve(a) | Command::Config(ConfigCommand::Check(a))) => a.clone(),
            None => ServeArgs::default(),
        }
    }
}
