//! The command line: `herald serve`, `herald config check`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The environment variables `--help` lists (docs/configuration.md has the full tables).
pub const ENV_HELP: &str = "\
Configuration layers, weakest first: defaults < --config file < other servers' variables <
HERALD__* variables < command-line flags. An empty variable counts as unset.

Environment:
  HERALD__SECTION__KEY    any key of the config file, e.g. HERALD__SERVER__PORT=7000,
                          HERALD__SCALE_OUT__REDIS_URL=redis://127.0.0.1:6379,
                          HERALD__HISTORY__MAX_BYTES=1048576; a number indexes a list:
                          HERALD__APPS__0__ENABLE_CLIENT_MESSAGES=true. Values are read as
                          TOML (true, 42, [\"a\"]), else as text, else as a comma-separated
                          list. An unknown HERALD__ variable is an error.
  Default app (used when the file has no [[apps]]; all three of a set or none; the first
  complete set wins): REVERB_APP_ID/KEY/SECRET, SOKETI_DEFAULT_APP_ID/KEY/SECRET,
  PUSHER_APP_ID/KEY/SECRET.
  Laravel Reverb: REVERB_SERVER_HOST, REVERB_SERVER_PORT, REVERB_SERVER_PATH,
    REVERB_APP_ACTIVITY_TIMEOUT, REVERB_APP_MAX_MESSAGE_SIZE, REVERB_APP_MAX_CONNECTIONS,
    REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM
  Soketi: SOKETI_PORT, SOKETI_PATH_PREFIX, SOKETI_SHUTDOWN_GRACE_PERIOD, SOKETI_SSL_CERT,
    SOKETI_SSL_KEY, SOKETI_SSL_PASS, SOKETI_METRICS_ENABLED, SOKETI_METRICS_SERVER_PORT,
    SOKETI_DEFAULT_APP_ENABLED, SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES,
    SOKETI_DEFAULT_APP_MAX_CONNS, SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC,
    SOKETI_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC, SOKETI_DEFAULT_APP_WEBHOOKS,
    SOKETI_EVENT_MAX_CHANNELS_AT_ONCE, SOKETI_EVENT_MAX_NAME_LENGTH, SOKETI_EVENT_MAX_SIZE_IN_KB,
    SOKETI_EVENT_MAX_BATCH_SIZE, SOKETI_CHANNEL_LIMITS_MAX_NAME_LENGTH,
    SOKETI_PRESENCE_MAX_MEMBERS, SOKETI_PRESENCE_MAX_MEMBER_SIZE
  Soketi's SQL app managers ([app_store], with SOKETI_APP_MANAGER_DRIVER=postgres or mysql):
    SOKETI_DB_POSTGRES_HOST, SOKETI_DB_POSTGRES_PORT, SOKETI_DB_POSTGRES_USERNAME,
    SOKETI_DB_POSTGRES_PASSWORD, SOKETI_DB_POSTGRES_DATABASE, SOKETI_APP_MANAGER_POSTGRES_TABLE,
    SOKETI_DB_MYSQL_HOST, SOKETI_DB_MYSQL_PORT, SOKETI_DB_MYSQL_USERNAME,
    SOKETI_DB_MYSQL_PASSWORD, SOKETI_DB_MYSQL_DATABASE, SOKETI_APP_MANAGER_MYSQL_TABLE,
    SOKETI_APP_MANAGER_CACHE_TTL; SOKETI_APP_MANAGER_CACHE_ENABLED is read as true (herald
    always caches)
  laravel-websockets: LARAVEL_WEBSOCKETS_SSL_LOCAL_CERT, LARAVEL_WEBSOCKETS_SSL_LOCAL_PK,
    LARAVEL_WEBSOCKETS_SSL_PASSPHRASE
  Profiles: ORO_* (--profile oro), ESPOCRM_CONFIG_* ([espocrm]); RUST_LOG for the log filter.

`herald config check` prints every value with the layer it came from.";

/// herald: a real-time WebSocket server for the Pusher Channels and WAMP protocols.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, after_help = ENV_HELP)]
pub struct Cli {
    /// What to do; `serve` with defaults when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    #[command(after_help = ENV_HELP)]
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
    /// Validate the configuration and print it with secrets redacted, each value with the
    /// layer it came from.
    #[command(after_help = ENV_HELP)]
    Check(ServeArgs),
}

/// Where and how to serve.
#[derive(Debug, Args, Default, Clone)]
pub struct ServeArgs {
    /// Address to listen on [default: 0.0.0.0; env: HERALD__SERVER__HOST, REVERB_SERVER_HOST];
    /// with `--profile oro`, Oro's listener.
    #[arg(long, short = 'a')]
    pub host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 6001; env: HERALD__SERVER__PORT,
    /// REVERB_SERVER_PORT, SOKETI_PORT].
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
