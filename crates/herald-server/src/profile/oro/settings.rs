//! The Oro profile's configuration: the `[oro]` file section, Oro's own environment variables
//! (`ORO_WEBSOCKET_*_DSN`, `ORO_SECRET`, `ORO_DB_DSN`) and `--profile oro` with `--host/-a`,
//! `--port/-p` (the `gos:websocket:server` options), validated into [`OroSettings`] and a
//! listener before anything binds.
//!
//! Precedence follows herald's rule: defaults < `[oro]` < environment (`ORO_*`) < command line.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use herald_core::AppConfig;
use serde::Deserialize;

use super::dsn::Dsn;
use super::routes::{RouteConfig, Routes};
use crate::cli::ServeArgs;
use crate::profile::app_close::AppClose;

/// Oro's default bind (`websocket_server_dsn` default).
const DEFAULT_SERVER_DSN: &str = "//0.0.0.0:8080";
/// Port when a DSN names none (Oro's `DsnBasedParameters`).
const DEFAULT_PORT: u16 = 8080;
/// Reads the user a ticket names: id and stored password hash, by username then by email
/// (Oro's `UserLoader`). `$1` is the ticket's username.
const DEFAULT_USER_QUERY: &str = "SELECT id, password FROM oro_user \
     WHERE username = $1 OR lower(email) = lower($1) ORDER BY (username = $1) DESC LIMIT 1";
/// Reads the global `oro_ui.application_url` system setting.
const DEFAULT_APPLICATION_URL_QUERY: &str = "SELECT v.text_value FROM oro_config_value v \
     JOIN oro_config c ON c.id = v.config_id \
     WHERE c.entity = 'app' AND v.section = 'oro_ui' AND v.name = 'application_url' LIMIT 1";

/// The `[oro]` section of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OroFile {
    app: Option<String>,
    secret: Option<String>,
    server_dsn: Option<String>,
    frontend_dsn: Option<String>,
    backend_dsn: Option<String>,
    db_dsn: Option<String>,
    user_query: Option<String>,
    application_url: Option<String>,
    application_url_query: Option<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    origin_check: Option<bool>,
    ticket_ttl: Option<u64>,
    ping_interval: Option<f64>,
    state_poll_interval: Option<f64>,
    publishers: Option<Publishers>,
    share_broadcasts: Option<bool>,
    application_close: Option<AppClose>,
    #[serde(default)]
    routes: Vec<RouteConfig>,
    /// TLS of the Oro listener, checked by the config like `[[listeners]]`' keys.
    pub(crate) tls_cert: Option<PathBuf>,
    /// The certificate's private key.
    pub(crate) tls_key: Option<PathBuf>,
    /// Passphrase of an encrypted key.
    pub(crate) tls_passphrase: Option<String>,
}

/// A value of the Oro configuration that cannot be used: where it came from, its key, why.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {key}: {problem}")]
pub(crate) struct Invalid {
    /// The config file, `environment` or `defaults`.
    pub(crate) origin: String,
    /// The key or variable.
    pub(crate) key: String,
    /// What is wrong.
    pub(crate) problem: String,
}

/// Where the Oro listener binds and what it serves (its TLS keys stay in [`OroFile`]).
#[derive(Debug)]
pub(crate) struct OroListener {
    /// Bind address.
    pub(crate) host: String,
    /// Port (0 = any free port).
    pub(crate) port: u16,
    /// The profile.
    pub(crate) settings: OroSettings,
}

/// Who may PUBLISH on Oro topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Publishers {
    /// Any connection with a valid ticket, as Oro itself allows.
    Any,
    /// Only connections with the anonymous backend ticket (`ORO_SECRET`).
    Backend,
}

/// A string that never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The validated Oro profile of one listener.
#[derive(Debug, PartialEq, Eq)]
pub struct OroSettings {
    /// The app id whose hub carries Oro's topics.
    pub(crate) app: String,
    /// `ORO_SECRET` (Symfony `kernel.secret`).
    pub(crate) secret: Secret,
    /// What browsers are told (`ORO_WEBSOCKET_FRONTEND_DSN`); informational.
    pub(crate) frontend: Option<Dsn>,
    /// Where Oro's PHP backend connects (`ORO_WEBSOCKET_BACKEND_DSN`); informational.
    pub(crate) backend: Option<Dsn>,
    /// Oro's database (`ORO_DB_DSN`); `None` disables user tickets and config polling.
    pub(crate) db: Option<Dsn>,
    /// Query returning `(id, password)` for a ticket's username (`$1`).
    pub(crate) user_query: String,
    /// Query returning the `oro_ui.application_url` text.
    pub(crate) application_url_query: String,
    /// A fixed application URL; when set, the database is not asked for it.
    pub(crate) application_url: Option<String>,
    /// Origin hosts allowed besides `localhost`, `127.0.0.1` and the application URL's host.
    pub(crate) allowed_origins: Vec<String>,
    /// Whether the Origin check runs at all (Oro: `origin_check: true`).
    pub(crate) origin_check: bool,
    /// Ticket lifetime.
    pub(crate) ticket_ttl: Duration,
    /// Period of the `oro/ping` keepalive event.
    pub(crate) ping_interval: Duration,
    /// Period of the `oro_sync_websocket_server_state` poll; zero disables it.
    pub(crate) state_poll_interval: Duration,
    /// Who may publish.
    pub(crate) publishers: Publishers,
    /// Whether sessions without an Oro ticket (WAMP v2 on the main listener) may subscribe to
    /// Oro's broadcast topics.
    pub(crate) share_broadcasts: bool,
    /// How application-level closes look on the wire.
    pub(crate) application_close: AppClose,
    /// Routes added by the config file (after Oro's own).
    pub(crate) routes: Vec<RouteConfig>,
}

impl OroSettings {
    /// The effective `[oro]` section for `herald config check`, with the secret and the database
    /// password left out.
    pub(crate) fn describe(&self, host: &str, port: u16, out: &mut String) {
        use std::fmt::Write;
        let dsn = |d: &Option<Dsn>| {
            d.as_ref().map_or_else(String::new, |d| {
                let port = d.port.map(|p| format!(":{p}")).unwrap_or_default();
                let scheme = d.scheme.as_deref().map(|s| format!("{s}:")).unwrap_or_default();
                format!("{scheme}//{}{port}{}", d.host, d.path)
            })
        };
        let _ = writeln!(out, "\n[oro]  # listening on {host}:{port}");
        let _ = writeln!(out, "app = {:?}\nsecret = \"<redacted>\"", self.app);
        let _ = writeln!(out, "frontend_dsn = {:?}\nbackend_dsn = {:?}", dsn(&self.frontend), dsn(&self.backend));
        let _ = writeln!(out, "db_dsn = {:?}  # user and password not shown", dsn(&self.db));
        let _ =
            writeln!(out, "application_url = {:?}", self.application_url.as_deref().unwrap_or("<from the database>"));
        let _ = writeln!(out, "allowed_origins = {:?}\norigin_check = {}", self.allowed_origins, self.origin_check);
        let _ = writeln!(out, "ticket_ttl = {}", self.ticket_ttl.as_secs());
        let _ = writeln!(out, "ping_interval = {}", self.ping_interval.as_secs_f64());
        let _ = writeln!(out, "state_poll_interval = {}", self.state_poll_interval.as_secs_f64());
        let publishers = match self.publishers {
            Publishers::Any => "any",
            Publishers::Backend => "backend",
        };
        let close = self.application_close.name();
        let _ = writeln!(out, "publishers = {publishers:?}\nshare_broadcasts = {}", self.share_broadcasts);
        let _ = writeln!(out, "application_close = {close:?}\n# {} route(s) besides Oro's", self.routes.len());
    }
}

/// Whether the Oro profile is on: `--profile oro` or an `[oro]` section.
pub(crate) fn enabled(args: &ServeArgs, file: Option<&OroFile>) -> bool {
    args.profile.as_deref() == Some("oro") || file.is_some()
}

/// Builds the Oro listener when the profile is on, adding the Oro app to `apps` when no
/// `[[apps]]` entry has its id. `origin` names the config file in messages.
///
/// # Errors
/// [`Invalid`] naming the variable or key at fault.
pub(crate) fn configure(
    args: &ServeArgs,
    file: Option<&OroFile>,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
    apps: &mut Vec<AppConfig>,
) -> Result<Option<OroListener>, Invalid> {
    if !enabled(args, file) {
        return Ok(None);
    }
    let empty = OroFile::default();
    let f = file.unwrap_or(&empty);
    let invalid =
        |origin: &str, key: &str, problem: String| Invalid { origin: origin.to_owned(), key: key.to_owned(), problem };
    // A value and where it came from: the environment wins over the file.
    let pick = |var: &str, key: &str, file_value: &Option<String>| -> Option<(String, String, String)> {
        env(var)
            .map(|v| (v, "environment".to_owned(), var.to_owned()))
            .or_else(|| file_value.clone().map(|v| (v, origin.to_owned(), format!("oro.{key}"))))
    };

    let (server, from, key) = pick("ORO_WEBSOCKET_SERVER_DSN", "server_dsn", &f.server_dsn)
        .unwrap_or_else(|| (DEFAULT_SERVER_DSN.to_owned(), "defaults".to_owned(), "oro.server_dsn".to_owned()));
    let server = Dsn::parse(&server).map_err(|e| invalid(&from, &key, e.to_string()))?;
    let mut host = server.host.clone();
    let mut port = server.port.unwrap_or(DEFAULT_PORT);
    if let Some(h) = &args.host {
        host.clone_from(h);
    }
    if let Some(p) = args.port {
        port = p;
    }
    if host.is_empty() {
        return Err(invalid(
            &from,
            &key,
            "names no host to bind; set it like //0.0.0.0:8080 (or pass --host)".to_owned(),
        ));
    }
    if host.parse::<std::net::IpAddr>().is_err() && host != "localhost" {
        return Err(invalid(&from, &key, format!("{host:?} is not an IP address")));
    }

    let optional_dsn = |var: &str, key: &str, value: &Option<String>| -> Result<Option<Dsn>, Invalid> {
        match pick(var, key, value) {
            None => Ok(None),
            Some((v, from, key)) => Dsn::parse(&v).map(Some).map_err(|e| invalid(&from, &key, e.to_string())),
        }
    };
    let frontend = optional_dsn("ORO_WEBSOCKET_FRONTEND_DSN", "frontend_dsn", &f.frontend_dsn)?;
    let backend = optional_dsn("ORO_WEBSOCKET_BACKEND_DSN", "backend_dsn", &f.backend_dsn)?;
    let db_value =
        env("ORO_DB_DSN").map(|v| (v, "ORO_DB_DSN")).or_else(|| env("ORO_DB_URL").map(|v| (v, "ORO_DB_URL")));
    let db = match db_value {
        Some((v, var)) => Some((v, "environment".to_owned(), var.to_owned())),
        None => f.db_dsn.clone().map(|v| (v, origin.to_owned(), "oro.db_dsn".to_owned())),
    };
    let db = match db {
        None => None,
        Some((v, from, key)) => {
            let dsn = Dsn::parse(&v).map_err(|e| invalid(&from, &key, e.to_string()))?;
            match dsn.scheme.as_deref() {
                Some("postgres" | "postgresql" | "pgsql" | "pdo-pgsql") => {}
                other => {
                    return Err(invalid(
                        &from,
                        &key,
                        format!("scheme {other:?} is not supported; herald reads Oro's PostgreSQL (postgres://...)"),
                    ));
                }
            }
            Some(dsn)
        }
    };

    let (secret, from, key) = pick("ORO_SECRET", "secret", &f.secret)
        .ok_or_else(|| invalid("environment", "ORO_SECRET", "is not set; it signs Oro's sync tickets".to_owned()))?;
    if secret.is_empty() || secret.contains(['{', '}']) {
        // Symfony's hasher refuses a salt with braces, so Oro could not verify any ticket.
        return Err(invalid(&from, &key, "must be non-empty and must not contain { or }".to_owned()));
    }

    let app = f.app.clone().unwrap_or_else(|| "oro".to_owned());
    if !apps.iter().any(|a| a.id == app) {
        apps.push(AppConfig { id: app.clone(), key: app.clone(), secret: secret.clone(), ..AppConfig::default() });
    }
    let share_broadcasts = f.share_broadcasts.unwrap_or(false);
    // The app belongs to the profile: sessions of the main listener hold no Oro ticket, so
    // they do not even find the app unless the operator shares its broadcasts.
    for a in apps.iter_mut().filter(|a| a.id == app) {
        a.profile_only = !share_broadcasts;
    }
    Routes::new(&f.routes).map_err(|e| invalid(origin, "oro.routes", e.to_string()))?;
    let seconds = |key: &str, v: Option<f64>, default: f64| -> Result<Duration, Invalid> {
        let v = v.unwrap_or(default);
        Duration::try_from_secs_f64(v).map_err(|_| invalid(origin, key, format!("{v} is not a number of seconds")))
    };
    let ping_interval = seconds("oro.ping_interval", f.ping_interval, 50.0)?;
    if ping_interval.is_zero() {
        return Err(invalid(origin, "oro.ping_interval", "must be more than 0".to_owned()));
    }
    let settings = OroSettings {
        app,
        secret: Secret(secret),
        frontend,
        backend,
        db,
        user_query: f.user_query.clone().unwrap_or_else(|| DEFAULT_USER_QUERY.to_owned()),
        application_url_query: f
            .application_url_query
            .clone()
            .unwrap_or_else(|| DEFAULT_APPLICATION_URL_QUERY.to_owned()),
        application_url: f.application_url.clone(),
        allowed_origins: f.allowed_origins.clone(),
        origin_check: f.origin_check.unwrap_or(true),
        ticket_ttl: Duration::from_secs(f.ticket_ttl.unwrap_or(300)),
        ping_interval,
        state_poll_interval: seconds("oro.state_poll_interval", f.state_poll_interval, 1.0)?,
        publishers: f.publishers.unwrap_or(Publishers::Any),
        share_broadcasts,
        application_close: f.application_close.unwrap_or(AppClose::Status0),
        routes: f.routes.clone(),
    };
    Ok(Some(OroListener { host, port, settings }))
}

/// `tracing` filter directives for Oro's log levels (when a listener runs the Oro profile). prod: WARNING, `-v` NOTICE, `-vv` INFO, `-vvv` DEBUG, quiet ERROR;
/// dev: INFO, `-v` and up DEBUG. tracing has no NOTICE: `-v` shows the Oro profile's own
/// info lines (start-up, configuration reloads) and warnings from everything else.
pub(crate) fn log_directives(args: &ServeArgs) -> &'static str {
    let dev = args.app_env.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("dev"));
    match (args.quiet, dev, args.verbose) {
        (true, _, _) => "error",
        (false, true, 0) => "info",
        (false, true, _) => "debug",
        (false, false, 0) => "warn",
        (false, false, 1) => "warn,herald_server::profile::oro=info",
        (false, false, 2) => "info",
        (false, false, _) => "debug",
    }
}

#[cfg(test)]
mod tests;
