//! Configuration: defaults < TOML file < other servers' variables < `HERALD__*` environment <
//! command line, layered as one table (`config/layers.rs`, `config/aliases.rs`) and validated
//! into [`Settings`] before anything binds a port.
//!
//! The environment is an [`Env`] value, so tests pass a map and never touch the process
//! environment.
//!
//! Plain data only: the settings say what to build, and `runtime.rs` builds it (the profiles'
//! check runners, databases and user maps) once the ports are bound. Nothing here imports the
//! code that serves.

use std::path::PathBuf;
use std::time::Duration;

use herald_core::{AppConfig, OutboxLimits};
use serde::Deserialize;

use crate::cli::ServeArgs;

mod aliases;
mod app_store;
mod credentials;
mod dashboard;
mod describe;
mod layers;
mod ops;
mod profiles;
mod scale_out;
pub use crate::listen::forwarded::IpNet;
pub use crate::listen::per_ip::PerIpLimits;
pub use crate::profile::espo::settings::EspoProfile;
pub use crate::profile::oro::settings::OroSettings;
pub use app_store::{AppStoreSettings, Driver as AppStoreDriver};
pub use dashboard::DashboardSettings;
pub use describe::describe;
pub use layers::{Source, Sources};
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
    /// Apps looked up in a database table (`[app_store]`); `None`: the file's apps only.
    pub app_store: Option<AppStoreSettings>,
    /// The operator's dashboard on the metrics listener (`[dashboard]`); `None`: off.
    pub dashboard: Option<DashboardSettings>,
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

fn history_settings(file: &HistoryFile, sources: &Sources) -> Result<HistorySettings, ConfigError> {
    let out = HistorySettings {
        max_bytes: file.max_bytes.unwrap_or(herald_core::history::DEFAULT_BUDGET_BYTES),
        snapshot_file: file.snapshot_file.clone().filter(|p| !p.as_os_str().is_empty()),
    };
    if out.max_bytes < 1024 || out.max_bytes > MAX_HISTORY_BYTES {
        return Err(sources.invalid("history.max_bytes", "must be between 1024 and 17179869184 (16 GiB)".into()));
    }
    Ok(out)
}

/// The process environment (or a test's), as a sorted map: the generic `HERALD__*` layer needs
/// to see every variable, the aliases and profiles look single ones up.
#[derive(Clone, Debug, Default)]
pub struct Env(std::collections::BTreeMap<String, String>);

impl Env {
    /// The variables of this process; names or values that are not UTF-8 are left out.
    pub fn from_process() -> Self {
        Self(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect())
    }

    /// The given variables only.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self(pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    /// One variable's value.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
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
    /// Apps from a database table (`config/app_store.rs`).
    app_store: Option<app_store::AppStoreFile>,
    /// The operator's dashboard (`config/dashboard.rs`).
    dashboard: Option<dashboard::DashboardFile>,
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
/// [`ConfigError`] naming the offending key (or variable, or flag) and where it came from.
pub fn load(args: &ServeArgs, env: &Env) -> Result<Settings, ConfigError> {
    load_with_sources(args, env).map(|(settings, _)| settings)
}

/// [`load`], with where each value came from (for `herald config check`).
///
/// # Errors
/// As [`load`].
pub fn load_with_sources(args: &ServeArgs, env: &Env) -> Result<(Settings, Sources), ConfigError> {
    use layers::{Seg, Written};
    use toml::Value;
    let mut layers = layers::Layers::from_file(args.config.as_deref())?;
    let file_has_apps = layers.table.get("apps").and_then(Value::as_array).is_some_and(|a| !a.is_empty());
    aliases::apply(&mut layers, &env.0, file_has_apps)?;
    layers.overlay_env(&env.0)?;
    let server_key = |k: &str| [Seg::Key("server".into()), Seg::Key(k.into())];
    // With the Oro profile on, --host/--port are gos:websocket:server's: they move Oro's listener.
    let oro_on = args.profile.as_deref() == Some("oro") || layers.table.contains_key("oro");
    if let Some(h) = args.host.as_ref().filter(|_| !oro_on) {
        layers.apply(&server_key("host"), Written::Value(Value::String(h.clone())), Source::Flag("--host"))?;
    }
    if let Some(p) = args.port.filter(|_| !oro_on) {
        layers.apply(&server_key("port"), Written::Value(Value::Integer(p.into())), Source::Flag("--port"))?;
    }
    // An app that only per-app variables shaped (`HERALD__APPS__0__ENABLE_CLIENT_MESSAGES` with
    // no credentials anywhere) is the development app with those settings.
    let mut dev_credentials = false;
    let unnamed = |t: &toml::Table| ["id", "key", "secret"].iter().all(|k| !t.contains_key(*k));
    let first = layers.table.get("apps").and_then(Value::as_array).and_then(|a| a.first());
    if !file_has_apps && first.and_then(Value::as_table).is_some_and(unnamed) {
        dev_credentials = true;
        for (field, value) in ["id", "key", "secret"].into_iter().zip([DEV_APP.0, DEV_APP.1, DEV_APP.2]) {
            let path = [Seg::Key("apps".into()), Seg::Index(0), Seg::Key(field.into())];
            layers.apply(&path, Written::Value(Value::String(value.into())), Source::Default)?;
        }
    }
    let file = layers.finish()?;
    let sources = layers.sources;
    let origin = sources.origin();
    let env_fn = |k: &str| env.get(k);

    let ops = ops::build(&file.server, &sources)?;
    let scale_out = scale_out::build(file.scale_out.as_ref(), &sources)?;
    let history = history_settings(&file.history, &sources)?;
    let app_store = app_store::build(file.app_store.as_ref(), &sources)?;
    let dashboard = dashboard::build(file.dashboard.as_ref(), ops.metrics_addr.is_some(), &sources)?;

    // Where the main listener binds when nothing says so: every interface, except in the
    // cases below that fall back to loopback.
    let host = file.server.host.clone().filter(|h| !h.is_empty());
    let port = file.server.port.unwrap_or(6001);

    let mut apps = file.apps;
    // Only the operator's own apps: a profile's app is checked by the profile.
    let configured = apps.len();
    let oro = profiles::oro(args, file.oro.as_ref(), &sources, &env_fn, &mut apps)?;
    if apps.is_empty() {
        dev_credentials = true;
        let (id, key, secret) = (DEV_APP.0.to_owned(), DEV_APP.1.to_owned(), DEV_APP.2.to_owned());
        apps.push(AppConfig { id, key, secret, ..AppConfig::default() });
    }
    // Before the general checks, so that an empty secret is named by where it came from.
    for (i, app) in apps.iter().enumerate().take(configured).skip(usize::from(dev_credentials)) {
        if let Some(problem) = credentials::weak_secret(&app.secret) {
            return Err(sources.invalid(&format!("apps[{i}].secret"), problem));
        }
    }
    for (i, app) in apps.iter().enumerate() {
        app.validate(i).map_err(|e| sources.invalid(&e.key, e.problem.to_owned()))?;
    }
    herald_core::AppRegistry::new(apps.clone())
        .map_err(|e| sources.invalid(&format!("apps[{}].{}", e.index, e.field), e.to_string()))?;

    // The built-in development app, and a drop-in profile whose main listener only the local
    // backend needs, stay on loopback unless the operator names an address.
    let profile_on = oro_on || file.espocrm.is_some();
    let host = match host {
        Some(h) => h,
        None if dev_credentials || profile_on => LOOPBACK.to_owned(),
        None => "0.0.0.0".to_owned(),
    };
    if host.parse::<std::net::IpAddr>().is_err() && host != "localhost" {
        return Err(sources.invalid("server.host", format!("{host:?} is not an IP address")));
    }

    let mut listeners = Vec::new();
    for (i, l) in file.listeners.into_iter().enumerate() {
        let key = |k: &str| format!("listeners[{i}].{k}");
        let tls = ops::listener_tls(&l, i, &sources)?;
        let profile = match l.protocol.as_str() {
            "pusher" => Profile::Pusher,
            "wamp1" => {
                let Some(app) = l.app else {
                    return Err(sources.invalid(&key("app"), "a wamp1 listener must name its app id".into()));
                };
                if !apps.iter().any(|a| a.id == app) {
                    return Err(sources.invalid(&key("app"), format!("no app has id {app:?}")));
                }
                Profile::Wamp1 { app, strict_subprotocol: l.strict_subprotocol }
            }
            other => {
                let problem = format!("{other:?} is not \"pusher\" or \"wamp1\"");
                return Err(sources.invalid(&key("protocol"), problem));
            }
        };
        let host = l.host.unwrap_or_else(|| host.clone());
        if host.parse::<std::net::IpAddr>().is_err() && host != "localhost" {
            return Err(sources.invalid(&key("host"), format!("{host:?} is not an IP address")));
        }
        listeners.push(ListenerSettings { host, port: l.port, profile, tls });
    }

    if let Some(table) = file.espocrm {
        listeners.push(profiles::espo(table, &mut apps, &origin, &env_fn)?);
    }
    listeners.extend(oro);

    let defaults = OutboxLimits::default();
    let outbox = OutboxLimits {
        max_frames: file.server.outbox_max_frames.unwrap_or(defaults.max_frames),
        max_bytes: file.server.outbox_max_bytes.unwrap_or(defaults.max_bytes),
    };
    if outbox.max_frames == 0 || outbox.max_bytes < 1024 {
        return Err(sources.invalid("server.outbox_max_frames", "outbox limits are too small".into()));
    }
    let settings = Settings {
        ops,
        scale_out,
        history,
        app_store,
        dashboard,
        host,
        port,
        apps,
        dev_credentials,
        outbox,
        shutdown_grace: Duration::from_secs(file.server.shutdown_grace.unwrap_or(10)),
        test_echo_endpoint: file.server.test_echo_endpoint,
        listeners,
    };
    Ok((settings, sources))
}

#[cfg(test)]
mod tests;
