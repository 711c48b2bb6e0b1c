//! The variables operators already have from the servers herald replaces: Laravel Reverb's
//! `.env`, Soketi's `SOKETI_*`, the `PUSHER_APP_*` set of a Laravel `.env` and
//! laravel-websockets' TLS variables, each mapped onto herald's keys.
//!
//! They form one layer, above the file and below `HERALD__*`: an explicit `HERALD__` value
//! always wins. Per-app variables describe the one app such a server runs, so they shape
//! `apps[0]` only when the file names no `[[apps]]`; a file's apps are never rewritten by
//! another server's variables.

use std::collections::BTreeMap;

use toml::Value;

use super::ConfigError;
use super::credentials;
use super::layers::{Layers, Seg, Source, Written};

/// How a variable's text becomes a herald value.
#[derive(Clone, Copy, Debug)]
enum Convert {
    /// As a `HERALD__` variable's text.
    Text,
    /// A whole number multiplied (kilobytes to bytes).
    Times(i64),
    /// Milliseconds to whole seconds, rounded up.
    MsToSecs,
    /// A JSON document (Soketi reads JSON in its variables).
    Json,
    /// Reverb's `accept_client_events_from`: `none` turns client events off, `members` and
    /// `all` turn them on (herald relays them to members of private and presence channels).
    ClientEventsFrom,
}

/// A variable of another server and the herald key it sets.
struct Alias {
    var: &'static str,
    /// `server.port`, or an app key (`enable_client_messages`) for the default app.
    key: &'static str,
    app: bool,
    convert: Convert,
}

const fn server(var: &'static str, key: &'static str, convert: Convert) -> Alias {
    Alias { var, key, app: false, convert }
}

const fn app(var: &'static str, key: &'static str, convert: Convert) -> Alias {
    Alias { var, key, app: true, convert }
}

/// The credential sets, strongest first: the first complete one names the default app.
pub(super) const APP_SETS: [[&str; 3]; 3] = [
    ["REVERB_APP_ID", "REVERB_APP_KEY", "REVERB_APP_SECRET"],
    ["SOKETI_DEFAULT_APP_ID", "SOKETI_DEFAULT_APP_KEY", "SOKETI_DEFAULT_APP_SECRET"],
    credentials::PUSHER_VARS,
];

/// The other variables, weakest first (a later one overwrites an earlier one's key): Pusher's
/// and laravel-websockets', then Soketi's, then Reverb's.
const ALIASES: &[Alias] = &[
    server("LARAVEL_WEBSOCKETS_SSL_LOCAL_CERT", "tls_cert", Convert::Text),
    server("LARAVEL_WEBSOCKETS_SSL_LOCAL_PK", "tls_key", Convert::Text),
    server("LARAVEL_WEBSOCKETS_SSL_PASSPHRASE", "tls_passphrase", Convert::Text),
    server("SOKETI_PORT", "port", Convert::Text),
    server("SOKETI_PATH_PREFIX", "path_prefix", Convert::Text),
    server("SOKETI_SHUTDOWN_GRACE_PERIOD", "shutdown_grace", Convert::MsToSecs),
    server("SOKETI_SSL_CERT", "tls_cert", Convert::Text),
    server("SOKETI_SSL_KEY", "tls_key", Convert::Text),
    server("SOKETI_SSL_PASS", "tls_passphrase", Convert::Text),
    app("SOKETI_DEFAULT_APP_ENABLED", "enabled", Convert::Text),
    app("SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES", "enable_client_messages", Convert::Text),
    app("SOKETI_DEFAULT_APP_MAX_CONNS", "max_connections", Convert::Text),
    app("SOKETI_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SEC", "max_backend_events_per_second", Convert::Text),
    app("SOKETI_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC", "max_client_events_per_second", Convert::Text),
    app("SOKETI_DEFAULT_APP_WEBHOOKS", "webhooks", Convert::Json),
    app("SOKETI_EVENT_MAX_CHANNELS_AT_ONCE", "max_event_channels", Convert::Text),
    app("SOKETI_EVENT_MAX_NAME_LENGTH", "max_event_name_length", Convert::Text),
    app("SOKETI_EVENT_MAX_SIZE_IN_KB", "max_event_data_bytes", Convert::Times(1024)),
    app("SOKETI_EVENT_MAX_BATCH_SIZE", "max_batch_events", Convert::Text),
    app("SOKETI_CHANNEL_LIMITS_MAX_NAME_LENGTH", "max_channel_name_length", Convert::Text),
    app("SOKETI_PRESENCE_MAX_MEMBERS", "max_presence_members", Convert::Text),
    app("SOKETI_PRESENCE_MAX_MEMBER_SIZE", "max_presence_user_info_bytes", Convert::Times(1024)),
    server("REVERB_SERVER_HOST", "host", Convert::Text),
    server("REVERB_SERVER_PORT", "port", Convert::Text),
    server("REVERB_SERVER_PATH", "path_prefix", Convert::Text),
    app("REVERB_APP_ACTIVITY_TIMEOUT", "activity_timeout", Convert::Text),
    app("REVERB_APP_MAX_MESSAGE_SIZE", "max_message_bytes", Convert::Text),
    app("REVERB_APP_MAX_CONNECTIONS", "max_connections", Convert::Text),
    app("REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM", "enable_client_messages", Convert::ClientEventsFrom),
];

/// Every variable this layer reads (a credential set by its first, `--help` writes
/// `REVERB_APP_ID/KEY/SECRET`).
#[cfg(test)]
fn names() -> impl Iterator<Item = &'static str> {
    APP_SETS.iter().map(|s| s[0]).chain(ALIASES.iter().map(|a| a.var)).chain(SOKETI_METRICS).chain(SOKETI_STORE)
}

/// Soketi's SQL app managers: the driver, then each database's connection parts and table, and
/// the cache TTL. Only `postgres` and `mysql` drivers map; Soketi's others (`array`, `dynamodb`)
/// leave `[app_store]` off.
const SOKETI_STORE: [&str; 15] = [
    "SOKETI_APP_MANAGER_DRIVER",
    "SOKETI_DB_POSTGRES_HOST",
    "SOKETI_DB_POSTGRES_PORT",
    "SOKETI_DB_POSTGRES_USERNAME",
    "SOKETI_DB_POSTGRES_PASSWORD",
    "SOKETI_DB_POSTGRES_DATABASE",
    "SOKETI_APP_MANAGER_POSTGRES_TABLE",
    "SOKETI_DB_MYSQL_HOST",
    "SOKETI_DB_MYSQL_PORT",
    "SOKETI_DB_MYSQL_USERNAME",
    "SOKETI_DB_MYSQL_PASSWORD",
    "SOKETI_DB_MYSQL_DATABASE",
    "SOKETI_APP_MANAGER_MYSQL_TABLE",
    "SOKETI_APP_MANAGER_CACHE_TTL",
    "SOKETI_APP_MANAGER_CACHE_ENABLED",
];

/// Writes `[app_store]` from Soketi's app-manager variables when its driver is `postgres` or
/// `mysql`: the URL from the connection parts (Soketi's defaults for the missing ones), the
/// table, and a positive cache TTL (Soketi's `-1`, cache forever, keeps herald's refresh).
fn soketi_store(layers: &mut Layers, get: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
    let Some(driver) = get(SOKETI_STORE[0]) else { return Ok(()) };
    let (db, scheme, default_port, default_user) = match driver.trim() {
        "postgres" => ("POSTGRES", "postgres", "5432", "postgres"),
        "mysql" => ("MYSQL", "mysql", "3306", "root"),
        _ => return Ok(()),
    };
    let var = |part: &str| format!("SOKETI_DB_{db}_{part}");
    let enc = |s: String| percent_encoding::utf8_percent_encode(&s, percent_encoding::NON_ALPHANUMERIC).to_string();
    let host = get(&var("HOST")).unwrap_or_else(|| "127.0.0.1".into());
    let port = get(&var("PORT")).unwrap_or_else(|| default_port.into());
    let user = enc(get(&var("USERNAME")).unwrap_or_else(|| default_user.into()));
    let password = enc(get(&var("PASSWORD")).unwrap_or_else(|| "password".into()));
    let database = enc(get(&var("DATABASE")).unwrap_or_else(|| "main".into()));
    let url = format!("{scheme}://{user}:{password}@{host}:{port}/{database}");
    let source = || Source::Env(SOKETI_STORE[0].to_owned());
    let key = |k: &str| vec![Seg::Key("app_store".into()), Seg::Key(k.into())];
    layers.apply(&key("driver"), Written::Value(Value::String(scheme.into())), source())?;
    layers.apply(&key("url"), Written::Value(Value::String(url)), Source::Env(var("HOST")))?;
    let table_var = format!("SOKETI_APP_MANAGER_{db}_TABLE");
    if let Some(table) = get(&table_var) {
        layers.apply(&key("table"), Written::Text(table), Source::Env(table_var))?;
    }
    if let Some(ttl) = get(SOKETI_STORE[13]).and_then(|t| t.trim().parse::<i64>().ok()).filter(|t| *t > 0) {
        let written = Written::Value(Value::Integer(ttl));
        layers.apply(&key("cache_ttl_secs"), written, Source::Env(SOKETI_STORE[13].to_owned()))?;
    }
    Ok(())
}

/// Soketi turns its metrics on with one variable and moves them with another.
const SOKETI_METRICS: [&str; 2] = ["SOKETI_METRICS_ENABLED", "SOKETI_METRICS_SERVER_PORT"];
/// Soketi's default metrics port.
const SOKETI_METRICS_PORT: i64 = 9601;

/// Writes the aliases that are set onto `layers`. `file_has_apps`: the file names `[[apps]]`,
/// so the per-app variables and credential sets are not used.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the variable: a partial credential set, or a value herald's
/// schema refuses.
pub(super) fn apply(
    layers: &mut Layers,
    vars: &BTreeMap<String, String>,
    file_has_apps: bool,
) -> Result<(), ConfigError> {
    let get = |k: &str| vars.get(k).filter(|v| !v.is_empty()).cloned();
    let mut named = None;
    for set in APP_SETS {
        let found = credentials::from_env(set, &get).map_err(|e| match &e {
            credentials::EnvCredentialsError::Partial { missing, .. } => {
                ConfigError::Invalid { origin: "environment".into(), key: missing.clone(), problem: e.to_string() }
            }
        })?;
        if named.is_none() {
            named = found.map(|app| (set, app));
        }
    }
    if let Some((set, (id, key, secret))) = named.filter(|_| !file_has_apps) {
        for ((var, field), value) in set.iter().zip(["id", "key", "secret"]).zip([id, key, secret]) {
            layers.apply(&app_path(field), Written::Value(Value::String(value)), Source::Env((*var).to_owned()))?;
        }
    }
    for alias in ALIASES {
        let Some(text) = get(alias.var) else { continue };
        if alias.app && file_has_apps {
            continue;
        }
        let path = if alias.app { app_path(alias.key) } else { server_path(alias.key) };
        let bad =
            |problem: String| ConfigError::Invalid { origin: "environment".into(), key: alias.var.to_owned(), problem };
        let written = match alias.convert {
            Convert::Text => Written::Text(text),
            Convert::Times(n) => {
                let v = text.trim().parse::<i64>().map_err(|_| bad(format!("{text:?} is not a whole number")))?;
                Written::Value(Value::Integer(v.saturating_mul(n)))
            }
            Convert::MsToSecs => {
                let ms = text.trim().parse::<i64>().map_err(|_| bad(format!("{text:?} is not milliseconds")))?;
                Written::Value(Value::Integer((ms.max(0) + 999) / 1000))
            }
            Convert::Json => {
                let json: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| bad(format!("is not JSON: {e}")))?;
                Written::Value(json_to_toml(json).ok_or_else(|| bad("holds no value".into()))?)
            }
            Convert::ClientEventsFrom => match text.trim() {
                "none" => Written::Value(Value::Boolean(false)),
                "members" | "all" => Written::Value(Value::Boolean(true)),
                other => return Err(bad(format!("{other:?} is not \"members\", \"all\" or \"none\""))),
            },
        };
        layers.apply(&path, written, Source::Env(alias.var.to_owned()))?;
    }
    let metrics_on = get(SOKETI_METRICS[0]).is_some_and(|v| matches!(v.trim(), "true" | "1"));
    if metrics_on {
        let (written, var) = match get(SOKETI_METRICS[1]) {
            Some(port) => (Written::Text(port), SOKETI_METRICS[1]),
            None => (Written::Value(Value::Integer(SOKETI_METRICS_PORT)), SOKETI_METRICS[0]),
        };
        layers.apply(&server_path("metrics_port"), written, Source::Env(var.to_owned()))?;
    }
    soketi_store(layers, &get)
}

fn app_path(key: &str) -> Vec<Seg> {
    vec![Seg::Key("apps".into()), Seg::Index(0), Seg::Key(key.into())]
}

fn server_path(key: &str) -> Vec<Seg> {
    vec![Seg::Key("server".into()), Seg::Key(key.into())]
}

/// JSON as TOML; `null` (which TOML lacks) drops the key.
fn json_to_toml(v: serde_json::Value) -> Option<Value> {
    use serde_json::Value as J;
    Some(match v {
        J::Null => return None,
        J::Bool(b) => Value::Boolean(b),
        J::Number(n) => n.as_i64().map_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0)), Value::Integer),
        J::String(s) => Value::String(s),
        J::Array(a) => Value::Array(a.into_iter().filter_map(json_to_toml).collect()),
        J::Object(o) => Value::Table(o.into_iter().filter_map(|(k, v)| json_to_toml(v).map(|v| (k, v))).collect()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn help_names_every_variable() {
        for var in super::names() {
            assert!(crate::cli::ENV_HELP.contains(var), "--help does not name {var}");
        }
    }
}
