//! The `[app_store]` section: apps looked up in a PostgreSQL or MySQL/MariaDB table when no
//! `[[apps]]` entry has the key or id a client asks for (docs/configuration.md, "Apps from a
//! database").
//!
//! Only parsing and validation live here; the lookups, caches and refresh are
//! `app_store.rs`. Without the section herald serves the file's apps only.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::layers::Sources;

/// `cache_ttl_secs` when unset: how often the rows of loaded apps are read again.
pub(super) const DEFAULT_CACHE_TTL_SECS: u64 = 60;
/// `negative_ttl_secs` when unset: how long an unknown key or a failed lookup is remembered.
pub(super) const DEFAULT_NEGATIVE_TTL_SECS: u64 = 10;
/// `max_lookups_per_second` when unset: queries for keys the server does not know yet.
pub(super) const DEFAULT_MAX_LOOKUPS_PER_SECOND: u32 = 100;
/// The table Soketi's SQL app managers read by default.
pub(super) const DEFAULT_TABLE: &str = "apps";
/// The PostgreSQL channel listened on when unset.
pub(super) const DEFAULT_LISTEN_CHANNEL: &str = "herald_apps";

/// `[app_store]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AppStoreFile {
    driver: Option<String>,
    url: Option<String>,
    table: Option<String>,
    cache_ttl_secs: Option<u64>,
    negative_ttl_secs: Option<u64>,
    max_lookups_per_second: Option<u32>,
    listen_channel: Option<String>,
}

/// The database that holds the apps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// PostgreSQL, through `tokio-postgres`; rows can also be pushed with NOTIFY.
    Postgres,
    /// MySQL or MariaDB, through `mysql_async`.
    Mysql,
}

impl Driver {
    /// The name in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }
}

/// Validated `[app_store]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppStoreSettings {
    /// Which database.
    pub driver: Driver,
    /// `postgres://user:password@host:port/db` (or a `host=/run/postgresql` socket directory),
    /// `mysql://user:password@host:port/db` (or `?socket=/run/mysqld/mysqld.sock`).
    pub url: String,
    /// The table, `name` or `schema.name`; checked to be a plain identifier so it can be quoted
    /// into the queries.
    pub table: String,
    /// How often the rows of the apps loaded from the table are read again.
    pub cache_ttl: Duration,
    /// How long a key or id the table does not have (or a lookup that failed) is answered
    /// "unknown" without asking the database again.
    pub negative_ttl: Duration,
    /// Queries a second for keys and ids the server does not know yet, across all clients; 0:
    /// no bound. Past it a lookup answers "unknown" without a query: a client trying random
    /// keys must not turn into as many queries on the database.
    pub max_lookups_per_second: u32,
    /// PostgreSQL channel whose notifications (payload: an app id or key) refresh that app at
    /// once; `None`: no LISTEN (always for MySQL).
    pub listen_channel: Option<String>,
}

impl AppStoreSettings {
    /// The URL as it may be printed: its credentials replaced by `<redacted>`.
    pub fn redacted_url(&self) -> String {
        herald_redis::redact_url(&self.url)
    }
}

/// A plain SQL identifier: letters, digits and `_`, not starting with a digit, 1-63 bytes.
fn identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.as_bytes()[0].is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Builds the settings from the merged `[app_store]`; `sources` names the layer at fault.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the key: an unknown driver, a URL the driver cannot parse,
/// a table or channel that is not a plain identifier, or durations out of range.
pub(super) fn build(file: Option<&AppStoreFile>, sources: &Sources) -> Result<Option<AppStoreSettings>, ConfigError> {
    let Some(file) = file else { return Ok(None) };
    let invalid = |key: &str, problem: String| sources.invalid(&format!("app_store.{key}"), problem);
    let driver = match file.driver.as_deref() {
        Some("postgres" | "postgresql" | "pgsql") => Driver::Postgres,
        Some("mysql" | "mariadb") => Driver::Mysql,
        Some(other) => return Err(invalid("driver", format!("{other:?} is not \"postgres\" or \"mysql\""))),
        None => return Err(invalid("driver", "is required: \"postgres\" or \"mysql\"".into())),
    };
    let Some(url) = file.url.clone().filter(|u| !u.is_empty()) else {
        return Err(invalid("url", format!("is required for the {} driver", driver.name())));
    };
    match driver {
        Driver::Postgres => {
            if let Err(e) = url.parse::<tokio_postgres::Config>() {
                return Err(invalid("url", format!("is not a PostgreSQL URL or key=value string: {e}")));
            }
        }
        Driver::Mysql => {
            if let Err(e) = mysql_async::Opts::from_url(&url) {
                return Err(invalid("url", format!("is not a mysql:// URL: {e}")));
            }
        }
    }
    let table = file.table.clone().unwrap_or_else(|| DEFAULT_TABLE.to_owned());
    if !table.split('.').all(identifier) || table.split('.').count() > 2 {
        return Err(invalid("table", format!("{table:?} must be a plain name or schema.name (letters, digits, _)")));
    }
    let ttl = file.cache_ttl_secs.unwrap_or(DEFAULT_CACHE_TTL_SECS);
    if !(1..=86_400).contains(&ttl) {
        return Err(invalid("cache_ttl_secs", format!("{ttl} must be 1 to 86400 seconds")));
    }
    let negative = file.negative_ttl_secs.unwrap_or(DEFAULT_NEGATIVE_TTL_SECS);
    if negative > 3_600 {
        return Err(invalid("negative_ttl_secs", format!("{negative} must be 0 to 3600 seconds")));
    }
    let channel = file.listen_channel.clone().unwrap_or_else(|| DEFAULT_LISTEN_CHANNEL.to_owned());
    if !channel.is_empty() && !identifier(&channel) {
        return Err(invalid(
            "listen_channel",
            format!("{channel:?} must be a plain name (letters, digits, _) or \"\""),
        ));
    }
    let listen_channel = (driver == Driver::Postgres && !channel.is_empty()).then_some(channel);
    Ok(Some(AppStoreSettings {
        driver,
        url,
        table,
        cache_ttl: Duration::from_secs(ttl),
        negative_ttl: Duration::from_secs(negative),
        max_lookups_per_second: file.max_lookups_per_second.unwrap_or(DEFAULT_MAX_LOOKUPS_PER_SECOND),
        listen_channel,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(driver: &str, url: &str) -> AppStoreFile {
        AppStoreFile { driver: Some(driver.into()), url: Some(url.into()), ..AppStoreFile::default() }
    }

    #[test]
    fn absent_section_is_off() {
        assert_eq!(build(None, &Sources::default()).ok().flatten(), None);
    }

    #[test]
    fn defaults_follow_the_documented_values() {
        let s = build(Some(&file("postgres", "postgres://u:pw@db/herald")), &Sources::default()).unwrap().unwrap();
        assert_eq!(s.table, "apps");
        assert_eq!(s.cache_ttl, Duration::from_secs(60));
        assert_eq!(s.negative_ttl, Duration::from_secs(10));
        assert_eq!(s.max_lookups_per_second, 100);
        assert_eq!(s.listen_channel.as_deref(), Some("herald_apps"));
        let m = build(Some(&file("mysql", "mysql://u:pw@db/herald")), &Sources::default()).unwrap().unwrap();
        assert_eq!((m.driver, m.listen_channel), (Driver::Mysql, None));
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (file("sqlite", "x"), "app_store.driver"),
            (file("postgres", ""), "app_store.url"),
            (file("mysql", "postgres://h/db"), "app_store.url"),
            (
                AppStoreFile { table: Some("apps; drop".into()), ..file("postgres", "postgres://h/db") },
                "app_store.table",
            ),
            (
                AppStoreFile { cache_ttl_secs: Some(0), ..file("postgres", "postgres://h/db") },
                "app_store.cache_ttl_secs",
            ),
            (
                AppStoreFile { listen_channel: Some("a-b".into()), ..file("postgres", "postgres://h/db") },
                "app_store.listen_channel",
            ),
        ];
        for (f, key) in cases {
            let Err(e) = build(Some(&f), &Sources::default()) else { panic!("accepted {f:?}") };
            assert!(e.to_string().contains(key), "{e} does not name {key}");
        }
    }

    #[test]
    fn an_empty_channel_turns_listen_off_and_a_schema_is_allowed() {
        let f = AppStoreFile {
            listen_channel: Some(String::new()),
            table: Some("soketi.apps".into()),
            ..file("postgres", "host=/run/postgresql dbname=herald")
        };
        let s = build(Some(&f), &Sources::default()).unwrap().unwrap();
        assert_eq!((s.listen_channel, s.table.as_str()), (None, "soketi.apps"));
    }
}
