//! Configuration: defaults < TOML file < environment < command line, validated into [`Settings`]
//! before anything binds a port.
//!
//! The environment is read through a lookup function, so tests pass a map and never touch the
//! process environment.
//!
//! Plain data only: the settings say what to build, and `runtime.rs` builds it (the profiles'
//! check runners, databases and user maps) once the ports are bound. Nothing here imports the
//! code that serves.

use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_core::{AppConfig, OutboxLimits};
use serde::Deserialize;

use crate::cli::ServeArgs;

mod credentials;
mod ops;
mod profiles;
mod scale_out;
pub use crate::listen::forwarded::IpNet;
pub use crate::listen::per_ip::PerIpLimits;
pub use crate::profile::espo::settings::EspoProfile;
pub use crate::profile::oro::settings::OroSettings;
pub use ops::OpsSettings;
pub use scale_out::ScaleOutSettings;

/// The development credentials used when nothing else names an app.
const DEV_APP: (&str, &str, &str) = ("app-id", "app-key", "app-secret");

/// Where the main listener binds by default when it must not be public by accident.
pub const LOOPBACK: &str = "127.0.0.1";

/// What a listener serves.
#[derive(Clone, Debug, PartialEq)]
pub enum Profile {
    /// Pusher (`/app/{key}`), the Pusher HTTP API and WAMP v2 (realm = app id).
    Pusher,
    /// WAMP v1 for one app, on any path.
    Wamp1 {
        /// The app id the listener belongs to.
        app: String,
        /// Refuse upgrades that do not offer the `wamp` subprotocol (HTTP 426), as Ratchet's
        /// default `WsServer` does.
        strict_subprotocol: bool,
    },
    /// EspoCRM's `websocket.php` replacement (`[espocrm]`, docs/espocrm.md).
    Espo(std::sync::Arc<EspoProfile>),
    /// Oro's `gos:websocket:server` replacement (`--profile oro` / `[oro]`, docs/oro.md).
    Oro(std::sync::Arc<OroSettings>),
}

/// `tracing` filter directives for Oro's log levels, or `None` when no listener runs the Oro
/// profile (docs/oro.md, "Command line").
pub fn oro_log_directives(args: &ServeArgs, listeners: &[ListenerSettings]) -> Option<&'static str> {
    listeners
        .iter()
        .any(|l| matches!(l.profile, Profile::Oro(_)))
        .then(|| crate::profile::oro::settings::log_directives(args))
}

/// An extra listener (`[[listeners]]`).
#[derive(Clone, Debug)]
pub struct ListenerSettings {
    /// Address to listen on.
    pub host: String,
    /// Port (0 = any free port).
    pub port: u16,
    /// What it serves.
    pub profile: Profile,
    /// Certificate and key when the listener terminates TLS itself.
    pub tls: Option<crate::tls::TlsFiles>,
}

impl ListenerSettings {
    /// How the listener is described in the "listening" line.
    pub fn label(&self) -> Option<String> {
        match &self.profile {
            Profile::Pusher => None,
            Profile::Wamp1 { app, .. } => Some(format!("wamp1, app {app}")),
            Profile::Espo(espo) => Some(format!("espocrm, app {}", espo.settings.app)),
            Profile::Oro(oro) => Some(format!("oro, app {}", oro.app)),
        }
    }
}

/// Everything herald needs to run, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on (0 = any free port).
    pub port: u16,
    /// The apps served.
    pub apps: Vec<AppConfig>,
    /// True when the app is the built-in development one (herald warns loudly).
    pub dev_credentials: bool,
    /// Per-connection outbox bounds.
    pub outbox: OutboxLimits,
    /// Longest a graceful shutdown waits for sessions to finish.
    pub shutdown_grace: Duration,
    /// Mounts the `/echo` WebSocket endpoint for RFC 6455 conformance tests. Never in production.
    pub test_echo_endpoint: bool,
    /// Extra listeners, each bound to a profile.
    pub listeners: Vec<ListenerSettings>,
    /// TLS of the main listener, metrics listener, proxy trust, pid file (`config/ops.rs`).
    pub ops: OpsSettings,
    /// The Redis shared with the other nodes (`[scale_out]`); `None`: one process.
    pub scale_out: Option<ScaleOutSettings>,
    /// Channel history across apps (`[history]`).
    pub history: HistorySettings,
}

/// Channel history across apps (`[history]`); which channels keep one is per app
/// (`[[apps.history]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistorySettings {
    /// Most bytes all histories hold together; over it the oldest entries go.
    pub max_bytes: usize,
    /// Where history is saved during a restart's drain and loaded at start; `None`: not saved.
    pub snapshot_file: Option<PathBuf>,
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self { max_bytes: herald_core::history::DEFAULT_BUDGET_BYTES, snapshot_file: None }
    }
}

/// `[history]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryFile {
    max_bytes: Option<usize>,
    snapshot_file: Option<PathBuf>,
}

/// Largest history budget accepted: 16 GiB.
const MAX_HISTORY_BYTES: usize = 16 << 30;

fn history_settings(
    file: &HistoryFile,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HistorySettings, ConfigError> {
    let invalid = |origin: &str, key: &str, problem: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        key: key.to_owned(),
        problem,
    };
    let mut out = HistorySettings { snapshot_file: file.snapshot_file.clone(), ..HistorySettings::default() };
    let mut from = origin;
    if let Some(b) = file.max_bytes {
        out.max_bytes = b;
    }
    if let Some(b) = env("HERALD__HISTORY__MAX_BYTES") {
        from = "environment";
        out.max_bytes =
            b.parse().map_err(|_| invalid(from, "HERALD__HISTORY__MAX_BYTES", format!("{b:?} is not a byte count")))?;
    }
    if let Some(f) = env("HERALD__HISTORY__SNAPSHOT_FILE") {
        out.snapshot_file = (!f.is_empty()).then(|| PathBuf::from(f));
    }
    if out.max_bytes < 1024 || out.max_bytes > MAX_HISTORY_BYTES {
        return Err(invalid(from, "history.max_bytes", "must be between 1024 and 17179869184 (16 GiB)".into()));
    }
    Ok(out)
}

impl Settings {
    /// The certificate files of every listener that terminates TLS, the main one first.
    pub fn tls_files(&self) -> impl Iterator<Item = &crate::tls::TlsFiles> {
        self.ops.tls.iter().chain(self.listeners.iter().filter_map(|l| l.tls.as_ref()))
    }
}

/// A configuration that cannot be used; herald exits with code 64.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for herald's schema (the message names the key and line).
    #[error("config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's account, naming the key.
        #[source]
        source: toml::de::Error,
    },
    /// A value is out of range or inconsistent.
    #[error("{origin}: {key}: {problem}")]
    Invalid {
        /// Where the value came from (file path, `environment`, `command line`).
        origin: String,
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    apps: Vec<AppConfig>,
    #[serde(default)]
    listeners: Vec<ListenerFile>,
    /// The EspoCRM profile, read by `config/profiles.rs`.
    espocrm: Option<toml::Table>,
    /// The Oro profile, read by `config/profiles.rs`.
    oro: Option<crate::profile::oro::settings::OroFile>,
    /// The Redis shared with the other nodes (`config/scale_out.rs`).
    scale_out: Option<scale_out::ScaleOutFile>,
    /// Channel history across apps.
    #[serde(default)]
    history: HistoryFile,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerFile {
    host: Option<String>,
    port: u16,
    protocol: String,
    app: Option<String>,
    #[serde(default)]
    strict_subprotocol: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_passphrase: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    host: Option<String>,
    port: Option<u16>,
    shutdown_grace: Option<u64>,
    outbox_max_frames: Option<usize>,
    outbox_max_bytes: Option<usize>,
    #[serde(default)]
    test_echo_endpoint: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_passphrase: Option<String>,
    tls_handshake_timeout: Option<u64>,
    metrics_port: Option<u16>,
    metrics_host: Option<String>,
    path_prefix: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    reuse_port: Option<bool>,
    pid_file: Option<PathBuf>,
    max_connections_per_ip: Option<u32>,
    max_new_connections_per_ip_per_second: Option<u32>,
}

/// Loads and validates the configuration.
///
/// # Errors
/// [`ConfigError`] naming the offending key and where it came from.
pub fn load(args: &ServeArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let (file, origin) = match &args.config {
        Some(path) => (read_file(path)?, path.display().to_string()),
        None => (FileConfig::default(), "defaults".to_owned()),
    };
    let ops = ops::build(&file.server, &origin, env)?;
    let scale_out = scale_out::build(file.scale_out.as_ref(), &origin, env)?;
    let history = history_settings(&file.history, &origin, env)?;
    let invalid = |origin: &str, key: &str, problem: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        key: key.to_owned(),
        problem,
    };

    // Where the main listener binds when nothing says so: every interface, except in the
    // cases below that fall back to loopback.
    let mut host = file.server.host.clone();
    let mut port = file.server.port.unwrap_or(6001);
    if let Some(h) = env("HERALD__SERVER__HOST") {
        host = Some(h);
    }
    if let Some(p) = env("HERALD__SERVER__PORT") {
        port = p.parse().map_err(|_| invalid("environment", "HERALD__SERVER__PORT", format!("{p:?} is not a port")))?;
    }
    // With the Oro profile on, --host/--port are gos:websocket:server's: they move Oro's listener.
    let oro_on = crate::profile::oro::settings::enabled(args, file.oro.as_ref());
    if let Some(h) = args.host.as_ref().filter(|_| !oro_on) {
        host = Some(h.clone());
    }
    if let Some(p) = args.port.filter(|_| !oro_on) {
        port = p;
    }

    let mut apps = file.apps;
    // Only the operator's own apps: a profile's app is checked by the profile.
    let configured = apps.len();
    let oro = profiles::oro(args, file.oro.as_ref(), &origin, env, &mut apps)?;
    let mut dev_credentials = false;
    let mut env_app = false;
    if apps.is_empty() {
        let named = credentials::from_env(env).map_err(|e| match &e {
            credentials::EnvCredentialsError::Partial { missing, .. } => invalid("environment", missing, e.to_string()),
        })?;
        dev_credentials = named.is_none();
        env_app = named.is_some();
        let (id, key, secret) =
            named.unwrap_or_else(|| (DEV_APP.0.to_owned(), DEV_APP.1.to_owned(), DEV_APP.2.to_owned()));
        apps.push(AppConfig { id, key, secret, ..AppConfig::default() });
    }
    // Before the general checks, so that an empty secret is named by where it came from.
    if let Some(problem) = apps.first().filter(|_| env_app).and_then(|a| credentials::weak_secret(&a.secret)) {
        return Err(invalid("environment", "PUSHER_APP_SECRET", problem));
    }
    for (i, app) in apps.iter().enumerate().take(configured) {
        if let Some(problem) = credentials::weak_secret(&app.secret) {
            return Err(invalid(&origin, &format!("apps[{i}].secret"), problem));
        }
    }
    let app_origin = if args.config.is_some() && !dev_credentials { origin.as_str() } else { "environment" };
    for (i, app) in apps.iter().enumerate() {
        app.validate(i).map_err(|e| invalid(app_origin, &e.key, e.problem.to_owned()))?;
    }
    herald_core::AppRegistry::new(apps.clone())
        .map_err(|e| invalid(app_origin, &format!("apps[{}].{}", e.index, e.field), e.to_string()))?;

    // The built-in development app, and a drop-in profile whose main listener only the local
    // backend needs, stay on loopback unless the operator names an address.
    let profile_on = oro_on || file.espocrm.is_some();
    let host = match host {
        Some(h) => h,
        None if dev_credentials || profile_on => LOOPBACK.to_owned(),
        None => "0.0.0.0".to_owned(),
    };
    if host.parse::<std::net::IpAddr>().is_err() && host != "localhost" {
        return Err(invalid(&origin, "server.host", format!("{host:?} is not an IP address")));
    }

    let mut listeners = Vec::new();
    for (i, l) in file.listeners.into_iter().enumerate() {
        let key = |k: &str| format!("listeners[{i}].{k}");
        let tls = ops::listener_tls(&l, i, &origin)?;
        let profile = match l.protocol.as_str() {
            "pusher" => Profile::Pusher,
            "wamp1" => {
                let Some(app) = l.app else {
                    return Err(invalid(&origin, &key("app"), "a wamp1 listener must name its app id".into()));
                };
                if !apps.iter().any(|a| a.id == app) {
                    return Err(invalid(&origin, &key("app"), format!("no app has id {app:?}")));
                }
                Profile::Wamp1 { app, strict_subprotocol: l.strict_subprotocol }
            }
            other => {
                return Err(invalid(&origin, &key("protocol"), format!("{other:?} is not \"pusher\" or \"wamp1\"")));
            }
        };
        let host = l.host.unwrap_or_else(|| host.clone());
        if host.parse::<std::net::IpAddr>().is_err() && host != "localhost" {
            return Err(invalid(&origin, &key("host"), format!("{host:?} is not an IP address")));
        }
        listeners.push(ListenerSettings { host, port: l.port, profile, tls });
    }

    if let Some(table) = file.espocrm {
        listeners.push(profiles::espo(table, &mut apps, &origin, env)?);
    }
    listeners.extend(oro);

    let defaults = OutboxLimits::default();
    let outbox = OutboxLimits {
        max_frames: file.server.outbox_max_frames.unwrap_or(defaults.max_frames),
        max_bytes: file.server.outbox_max_bytes.unwrap_or(defaults.max_bytes),
    };
    if outbox.max_frames == 0 || outbox.max_bytes < 1024 {
        return Err(invalid(&origin, "server.outbox_max_frames", "outbox limits are too small".into()));
    }
    Ok(Settings {
        ops,
        scale_out,
        history,
        host,
        port,
        apps,
        dev_credentials,
        outbox,
        shutdown_grace: Duration::from_secs(file.server.shutdown_grace.unwrap_or(10)),
        test_echo_endpoint: file.server.test_echo_endpoint,
        listeners,
    })
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source })
}

/// The settings as TOML-ish text with secrets redacted, for `herald config check`.
pub fn describe(settings: &Settings) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "[server]\nhost = {:?}\nport = {}", settings.host, settings.port);
    let _ = writeln!(out, "shutdown_grace = {}", settings.shutdown_grace.as_secs());
    ops::describe(&settings.ops, &mut out);
    let _ = writeln!(
        out,
        "outbox_max_frames = {}\noutbox_max_bytes = {}",
        settings.outbox.max_frames, settings.outbox.max_bytes
    );
    for app in &settings.apps {
        let mut redacted = AppConfig { secret: "<redacted>".into(), ..app.clone() };
        // Extra webhook headers carry the receivers' tokens.
        for hook in &mut redacted.webhooks {
            hook.headers.values_mut().for_each(|v| *v = "<redacted>".into());
        }
        // A plain struct of strings, numbers and booleans always serialises.
        if let Ok(text) = toml::to_string(&redacted) {
            let _ = write!(out, "\n[[apps]]\n{text}");
        }
    }
    for l in &settings.listeners {
        if let Profile::Oro(oro) = &l.profile {
            oro.describe(&l.host, l.port, &mut out);
            if let Some(t) = &l.tls {
                let _ = writeln!(out, "tls_cert = {:?}\ntls_key = {:?}", t.cert.display(), t.key.display());
            }
        }
    }
    if let Some(s) = &settings.scale_out {
        let key = if s.redis_cluster.is_empty() { "redis_url" } else { "redis_cluster" };
        let _ = writeln!(out, "\n[scale_out]\n{key} = {:?}\nprefix = {:?}", s.redacted_url(), s.prefix);
        let _ = writeln!(out, "replay_window_secs = {}", s.replay_window.as_secs());
    }
    out
}

#[cfg(test)]
mod tests;
