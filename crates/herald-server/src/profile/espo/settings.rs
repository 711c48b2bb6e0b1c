//! The `[espocrm]` config section: EspoCRM's own `data/config.php` keys (so values can be
//! copied as they are), the `ESPOCRM_CONFIG_*` variables of EspoCRM's docker images, and
//! herald's own keys (snake_case). Everything is checked here, before any port is bound.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::categories::Categories;
use crate::profile::app_close::AppClose;

/// Prefix of the docker images' config variables (`ESPOCRM_CONFIG_WEB_SOCKET_PORT`...).
const ENV_PREFIX: &str = "ESPOCRM_CONFIG_";
/// EspoCRM's default PULL endpoint (`ZeroMQSubscriber`).
const DEFAULT_DSN: &str = "tcp://127.0.0.1:5555";

/// How a value read from an `ESPOCRM_CONFIG_*` variable is typed.
#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Text,
}

/// The EspoCRM keys herald reads, with the type their environment variable is parsed as.
const ESPO_KEYS: &[(&str, Kind)] = &[
    ("webSocketPort", Kind::Text),
    ("webSocketZeroMQSubscriberDsn", Kind::Text),
    ("webSocketZeroMQSubmissionDsn", Kind::Text),
    ("webSocketUseSecureServer", Kind::Bool),
    ("webSocketSslCertificateFile", Kind::Text),
    ("webSocketSslCertificateLocalPrivateKey", Kind::Text),
    ("webSocketSslCertificatePassphrase", Kind::Text),
    ("webSocketSslAllowSelfSigned", Kind::Bool),
    ("webSocketDebugMode", Kind::Bool),
    ("webSocketUrl", Kind::Text),
    ("webSocketMessager", Kind::Text),
    ("useWebSocket", Kind::Bool),
    ("phpExecutablePath", Kind::Text),
];

/// `webSocketPort` is a string in EspoCRM's config.php (`'8080'`) but a number is accepted too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PortValue {
    Num(i64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EspoFile {
    #[serde(rename = "webSocketPort")]
    port: Option<PortValue>,
    #[serde(rename = "webSocketZeroMQSubscriberDsn")]
    subscriber_dsn: Option<String>,
    /// Used by EspoCRM's PHP side only; accepted so config.php can be copied whole.
    #[serde(rename = "webSocketZeroMQSubmissionDsn")]
    _submission_dsn: Option<String>,
    #[serde(rename = "webSocketUseSecureServer")]
    secure: Option<bool>,
    #[serde(rename = "webSocketSslCertificateFile")]
    cert_file: Option<PathBuf>,
    #[serde(rename = "webSocketSslCertificateLocalPrivateKey")]
    key_file: Option<PathBuf>,
    #[serde(rename = "webSocketSslCertificatePassphrase")]
    passphrase: Option<String>,
    #[serde(rename = "webSocketSslAllowSelfSigned")]
    allow_self_signed: Option<bool>,
    #[serde(rename = "webSocketDebugMode")]
    debug: Option<bool>,
    /// The browser's URL; herald does not need it.
    #[serde(rename = "webSocketUrl")]
    _url: Option<String>,
    #[serde(rename = "webSocketMessager")]
    messager: Option<String>,
    /// EspoCRM's master switch; the daemon itself does not read it.
    #[serde(rename = "useWebSocket")]
    _use_web_socket: Option<bool>,
    #[serde(rename = "phpExecutablePath")]
    php_executable_path: Option<PathBuf>,
    espocrm_root: Option<PathBuf>,
    app: Option<String>,
    host: Option<String>,
    php_path: Option<PathBuf>,
    check_timeout: Option<f64>,
    max_concurrent_checks: Option<usize>,
    auth_cache_ttl: Option<f64>,
    acl_cache_ttl: Option<f64>,
    keepalive_interval: Option<f64>,
    application_close: Option<String>,
    check_output: Option<String>,
    share_broadcasts: Option<bool>,
    categories: Option<toml::Table>,
}

/// What a check command must print besides exiting with 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputRule {
    /// The last non-empty stdout line must be the user id (AuthTokenCheck) or `true` (AclCheck):
    /// what every EspoCRM version prints on success, and the only proof before 9.2, whose
    /// AuthTokenCheck always exits 0.
    LastLine,
    /// Exit code 0 alone (EspoCRM >= 9.2's own daemon).
    ExitCode,
}

/// Native TLS files (`webSocketUseSecureServer`), checked to exist and be readable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// PEM certificate chain (`webSocketSslCertificateFile`).
    pub(crate) cert: PathBuf,
    /// PEM private key (`webSocketSslCertificateLocalPrivateKey`); `None` when the certificate
    /// file holds the key too, as PHP's `local_cert` allows.
    pub(crate) key: Option<PathBuf>,
    /// Passphrase of an encrypted key.
    pub(crate) passphrase: Option<String>,
    /// `webSocketSslAllowSelfSigned` (a client-side notion in PHP streams; kept for the record).
    pub(crate) allow_self_signed: bool,
}

/// The EspoCRM profile of a listener as configured: the validated `[espocrm]` section and the
/// topic categories it leads to (loaded from the EspoCRM root at configuration time, so that a
/// bad metadata file stops herald before anything binds).
#[derive(Debug, PartialEq)]
pub struct EspoProfile {
    /// The validated section.
    pub(crate) settings: EspoSettings,
    /// The category table.
    pub(crate) categories: Categories,
}

/// The validated `[espocrm]` section.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EspoSettings {
    /// Bind address of the WebSocket listener (EspoCRM always binds 0.0.0.0).
    pub(crate) host: String,
    /// `webSocketPort`: 8080, or 8443 in secure mode.
    pub(crate) port: u16,
    /// `webSocketZeroMQSubscriberDsn`, normalised (`*` becomes 0.0.0.0).
    pub(crate) zmq_endpoint: String,
    /// Native TLS, when `webSocketUseSecureServer` is true.
    pub(crate) tls: Option<TlsFiles>,
    /// `webSocketDebugMode`: per-connection lines on stdout.
    pub(crate) debug: bool,
    /// The EspoCRM directory holding `command.php`; the checks run there.
    pub(crate) root: PathBuf,
    /// The PHP binary for the checks.
    pub(crate) php: PathBuf,
    /// The herald app the EspoCRM topics live in.
    pub(crate) app: String,
    /// Longest a check may take, waiting for a slot included.
    pub(crate) check_timeout: Duration,
    /// Most check commands running at once.
    pub(crate) max_concurrent_checks: usize,
    /// How long an AuthTokenCheck verdict is reused for the same token and user.
    pub(crate) auth_cache_ttl: Duration,
    /// How long an AclCheck verdict is reused for the same command (0: never, like EspoCRM).
    pub(crate) acl_cache_ttl: Duration,
    /// Ratchet keepalive period: ping every period, close who did not pong the last ping
    /// (Ratchet's `WsServer::enableKeepAlive`, 60 s in EspoCRM).
    pub(crate) keepalive: Duration,
    /// Close behaviour where EspoCRM closes a connection.
    pub(crate) app_close: AppClose,
    /// Success rule of the check commands.
    pub(crate) output_rule: OutputRule,
    /// Whether sessions without an EspoCRM identity (Pusher and WAMP v2 on the main listener)
    /// may reach the app at all, and then read the categories without an access check.
    pub(crate) share_broadcasts: bool,
    /// Extra categories from the config (`[espocrm.categories]`).
    pub(crate) categories: Option<toml::Table>,
}

/// A bad `[espocrm]` value: the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// `espocrm.<key>`, or the environment variable that carried it.
    pub(crate) key: String,
    /// What is wrong.
    pub(crate) problem: String,
    /// True when the value came from an `ESPOCRM_CONFIG_*` variable.
    pub(crate) from_env: bool,
}

fn bad(key: &str, problem: impl Into<String>) -> Invalid {
    let key = if key.is_empty() { "espocrm".to_owned() } else { format!("espocrm.{key}") };
    Invalid { key, problem: problem.into(), from_env: false }
}

/// `webSocketZeroMQSubscriberDsn` -> `WEB_SOCKET_ZERO_M_Q_SUBSCRIBER_DSN`: the inverse of the
/// docker entrypoint's mapping (lower-case everything, `_x` becomes `X`).
pub(crate) fn env_name(key: &str) -> String {
    let mut out = String::from(ENV_PREFIX);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A docker variable's value as the entrypoint writes it: `'quoted'` strings unquoted, `null`
/// removes the key, booleans for boolean keys.
fn env_value(kind: Kind, raw: &str) -> Result<Option<toml::Value>, String> {
    let trimmed = raw.trim();
    let text = match trimmed.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        Some(inner) => inner.replace("\\'", "'"),
        None => raw.to_owned(),
    };
    if trimmed == "null" {
        return Ok(None);
    }
    Ok(Some(match kind {
        Kind::Text => toml::Value::String(text),
        Kind::Bool => match trimmed {
            "true" | "1" => toml::Value::Boolean(true),
            "false" | "0" | "" => toml::Value::Boolean(false),
            other => return Err(format!("{other:?} is not true or false")),
        },
    }))
}

impl EspoSettings {
    /// Validates the section; `env` overrides EspoCRM keys through `ESPOCRM_CONFIG_*` variables.
    /// `apps` are the ids of the configured apps.
    ///
    /// # Errors
    /// The first [`Invalid`] value.
    pub(crate) fn from_table(
        mut table: toml::Table,
        apps: &[&str],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, Invalid> {
        for (key, kind) in ESPO_KEYS {
            let name = env_name(key);
            let Some(raw) = env(&name) else { continue };
            match env_value(*kind, &raw) {
                Ok(Some(v)) => {
                    table.insert((*key).to_owned(), v);
                }
                Ok(None) => {
                    table.remove(*key);
                }
                Err(problem) => return Err(Invalid { key: name, problem, from_env: true }),
            }
        }
        let file = EspoFile::deserialize(toml::Value::Table(table)).map_err(|e| bad("", e.to_string()))?;
        file.validate(apps, env("PATH").as_deref())
    }
}

impl EspoFile {
    fn validate(self, apps: &[&str], search_path: Option<&str>) -> Result<EspoSettings, Invalid> {
        if let Some(m) = self.messager.as_deref().filter(|m| *m != "ZeroMQ") {
            return Err(bad("webSocketMessager", format!("{m:?}: herald implements the ZeroMQ messager only")));
        }
        let secure = self.secure.unwrap_or(false);
        let port = match self.port {
            None => {
                if secure {
                    8443
                } else {
                    8080
                }
            }
            Some(PortValue::Num(n)) => {
                u16::try_from(n).map_err(|_| bad("webSocketPort", format!("{n} is not a port")))?
            }
            Some(PortValue::Text(s)) => {
                s.trim().parse().map_err(|_| bad("webSocketPort", format!("{s:?} is not a port")))?
            }
        };
        let host = self.host.unwrap_or_else(|| "0.0.0.0".to_owned());
        if host.parse::<IpAddr>().is_err() && host != "localhost" {
            return Err(bad("host", format!("{host:?} is not an IP address")));
        }
        let zmq_endpoint = normalise_dsn(self.subscriber_dsn.as_deref().unwrap_or(DEFAULT_DSN))
            .map_err(|p| bad("webSocketZeroMQSubscriberDsn", p))?;
        let tls = if secure {
            let cert = self
                .cert_file
                .ok_or_else(|| bad("webSocketSslCertificateFile", "required when webSocketUseSecureServer is true"))?;
            readable(&cert).map_err(|p| bad("webSocketSslCertificateFile", p))?;
            if let Some(key) = &self.key_file {
                readable(key).map_err(|p| bad("webSocketSslCertificateLocalPrivateKey", p))?;
            }
            Some(TlsFiles {
                cert,
                key: self.key_file,
                passphrase: self.passphrase.filter(|p| !p.is_empty()),
                allow_self_signed: self.allow_self_signed.unwrap_or(false),
            })
        } else {
            None
        };
        let root = self
            .espocrm_root
            .ok_or_else(|| bad("espocrm_root", "required: the EspoCRM directory (with command.php)"))?;
        if !root.join("command.php").is_file() {
            return Err(bad("espocrm_root", format!("{} has no command.php", root.display())));
        }
        let php = match (self.php_path, self.php_executable_path) {
            (Some(a), Some(b)) if a != b => {
                return Err(bad("php_path", "conflicts with phpExecutablePath; set one of them"));
            }
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => PathBuf::from("php"),
        };
        if find_program(&php, search_path).is_none() {
            return Err(bad("php_path", format!("{} is not an executable file (nor found in PATH)", php.display())));
        }
        let app = match self.app {
            Some(app) if apps.contains(&app.as_str()) => app,
            Some(app) => return Err(bad("app", format!("no app has id {app:?}"))),
            None => match apps {
                [only] => (*only).to_owned(),
                _ => return Err(bad("app", "required when several apps are configured")),
            },
        };
        let seconds = |key: &str, v: Option<f64>, default: f64, min: f64| -> Result<Duration, Invalid> {
            let v = v.unwrap_or(default);
            if !v.is_finite() || v < min || v > 86_400.0 {
                return Err(bad(key, format!("{v} is out of range ({min} to 86400 seconds)")));
            }
            Ok(Duration::from_secs_f64(v))
        };
        let max_concurrent_checks = self.max_concurrent_checks.unwrap_or(8);
        if max_concurrent_checks == 0 {
            return Err(bad("max_concurrent_checks", "must be at least 1"));
        }
        let app_close = match self.application_close.as_deref() {
            None => AppClose::Status0,
            Some(name) => AppClose::from_name(name).ok_or_else(|| bad("application_close", AppClose::unknown(name)))?,
        };
        let output_rule = match self.check_output.as_deref().unwrap_or("last-line") {
            "last-line" => OutputRule::LastLine,
            "exit-code" => OutputRule::ExitCode,
            other => return Err(bad("check_output", format!("{other:?} is not \"last-line\" or \"exit-code\""))),
        };
        Ok(EspoSettings {
            host,
            port,
            zmq_endpoint,
            tls,
            debug: self.debug.unwrap_or(false),
            root,
            php,
            app,
            check_timeout: seconds("check_timeout", self.check_timeout, 10.0, 0.1)?,
            max_concurrent_checks,
            auth_cache_ttl: seconds("auth_cache_ttl", self.auth_cache_ttl, 30.0, 0.0)?,
            acl_cache_ttl: seconds("acl_cache_ttl", self.acl_cache_ttl, 0.0, 0.0)?,
            keepalive: seconds("keepalive_interval", self.keepalive_interval, 60.0, 0.1)?,
            app_close,
            output_rule,
            share_broadcasts: self.share_broadcasts.unwrap_or(false),
            categories: self.categories,
        })
    }
}

/// Checks a ZeroMQ endpoint herald can bind: `tcp://<ip, name or *>:<port>`. libzmq's `*`
/// (every interface) becomes 0.0.0.0.
fn normalise_dsn(dsn: &str) -> Result<String, String> {
    let Some(rest) = dsn.strip_prefix("tcp://") else {
        return Err(format!("{dsn:?}: only tcp:// endpoints are supported"));
    };
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!("{dsn:?} has no port"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("{dsn:?}: {port:?} is not a port"));
    }
    if host.is_empty() {
        return Err(format!("{dsn:?} has no host"));
    }
    let host = if host == "*" { "0.0.0.0" } else { host };
    Ok(format!("tcp://{host}:{port}"))
}

fn readable(path: &Path) -> Result<(), String> {
    std::fs::File::open(path).map(drop).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The program `php` names: a path as given, or a bare name looked up in `search_path` (`PATH`).
pub(crate) fn find_program(php: &Path, search_path: Option<&str>) -> Option<PathBuf> {
    let is_exe = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if php.components().count() > 1 {
        return is_exe(php).then(|| php.to_owned());
    }
    std::env::split_paths(search_path?).map(|dir| dir.join(php)).find(|p| is_exe(p))
}

#[cfg(test)]
mod tests;
