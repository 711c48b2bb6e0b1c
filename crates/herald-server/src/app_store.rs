//! Apps from a database (`[app_store]`): a PostgreSQL or MySQL/MariaDB table with Soketi's
//! columns, read when a client names a key or id that no `[[apps]]` entry has.
//!
//! - [`row`]: one row as an [`AppConfig`](herald_core::AppConfig) (pure);
//! - [`postgres`], [`mysql`]: the two drivers, each a reconnecting client that answers three
//!   questions: the row with this key, the row with this id, the rows with these ids;
//! - [`directory`]: the hub first, then a negative cache, then the store; the refresh task and
//!   PostgreSQL's LISTEN.
//!
//! A database outage never stops herald: a lookup that fails is answered "unknown" (and
//! remembered for `negative_ttl_secs`), the refresh tries again next period, and the apps
//! already loaded keep being served as they were.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::{AppStoreDriver, AppStoreSettings};

pub(crate) mod directory;
mod mysql;
mod postgres;
pub(crate) mod row;

pub(crate) use directory::AppDirectory;

/// Longest a query (with the connection it may need first) may take; past it the lookup is a
/// failure, so a client waiting on an unknown key never hangs on a dead database.
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Most ids in one refresh query: MySQL takes at most 65,535 placeholders in a statement, and a
/// bounded statement keeps each round trip short.
const IDS_PER_QUERY: usize = 1000;

/// One row, column name to value, as the drivers hand it to [`row::app_config`].
pub(crate) type Row = Map<String, Value>;

/// Why a query gave no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The database did not answer within [`QUERY_TIMEOUT`].
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// PostgreSQL refused or the connection failed.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// MySQL refused or the connection failed.
    #[error("mysql: {0}")]
    Mysql(#[from] mysql_async::Error),
}

/// A column a lookup matches on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum By {
    /// The app id (HTTP API paths, WAMP realms).
    Id,
    /// The app key (WebSocket paths).
    Key,
}

/// The configured database.
#[derive(Debug)]
pub(crate) enum Store {
    /// PostgreSQL.
    Postgres(postgres::PgStore),
    /// MySQL or MariaDB.
    Mysql(mysql::MysqlStore),
}

impl Store {
    /// The store the settings describe; nothing connects before the first query.
    pub(crate) fn new(settings: &AppStoreSettings) -> Self {
        match settings.driver {
            AppStoreDriver::Postgres => Self::Postgres(postgres::PgStore::new(settings)),
            AppStoreDriver::Mysql => Self::Mysql(mysql::MysqlStore::new(settings)),
        }
    }

    /// The row whose `by` column is `value`, if any.
    pub(crate) async fn find(&self, by: By, value: &str) -> Result<Option<Row>, StoreError> {
        let query = async {
            match self {
                Self::Postgres(s) => s.find(by, value).await,
                Self::Mysql(s) => s.find(by, value).await,
            }
        };
        tokio::time::timeout(QUERY_TIMEOUT, query).await.map_err(|_| StoreError::Timeout(QUERY_TIMEOUT))?
    }

    /// The rows whose id is one of `ids`: one query per [`IDS_PER_QUERY`] ids.
    pub(crate) async fn find_ids(&self, ids: &[String]) -> Result<Vec<Row>, StoreError> {
        let mut rows = Vec::new();
        for ids in ids.chunks(IDS_PER_QUERY) {
            let query = async {
                match self {
                    Self::Postgres(s) => s.find_ids(ids).await,
                    Self::Mysql(s) => s.find_ids(ids).await,
                }
            };
            let found =
                tokio::time::timeout(QUERY_TIMEOUT, query).await.map_err(|_| StoreError::Timeout(QUERY_TIMEOUT))??;
            rows.extend(found);
        }
        Ok(rows)
    }

    /// Closes the connections (MySQL's pool says goodbye; PostgreSQL's close on drop).
    pub(crate) async fn close(&self) {
        if let Self::Mysql(s) = self {
            s.close().await;
        }
    }
}

/// The outcomes of the store's lookups, for `herald_app_store_queries_total{result}`.
#[derive(Debug, Default)]
pub(crate) struct StoreMetrics {
    /// A row was found and served.
    pub(crate) found: AtomicU64,
    /// The table has no such key or id.
    pub(crate) missing: AtomicU64,
    /// A row was found but refused (invalid, or colliding with a file app).
    pub(crate) refused: AtomicU64,
    /// The query failed (database down, timeout, SQL error).
    pub(crate) failed: AtomicU64,
    /// Answered from the negative cache, without a query.
    pub(crate) negative_hits: AtomicU64,
    /// Answered "unknown" without a query: over `max_lookups_per_second`.
    pub(crate) throttled: AtomicU64,
    /// Refresh rounds that read the loaded apps again, and those that failed.
    pub(crate) refreshes: AtomicU64,
    /// Refresh rounds that failed.
    pub(crate) refresh_failures: AtomicU64,
}

impl StoreMetrics {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the Prometheus lines.
    pub(crate) fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let name = "herald_app_store_queries_total";
        let _ = writeln!(
            out,
            "# HELP {name} App lookups in the [app_store] table by result (negative_hit, throttled: no query)."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (result, c) in [
            ("found", &self.found),
            ("missing", &self.missing),
            ("refused", &self.refused),
            ("failed", &self.failed),
            ("negative_hit", &self.negative_hits),
            ("throttled", &self.throttled),
        ] {
            let _ = writeln!(out, "{name}{{result=\"{result}\"}} {}", c.load(Ordering::Relaxed));
        }
        let name = "herald_app_store_refreshes_total";
        let _ = writeln!(out, "# HELP {name} Refresh rounds of the apps loaded from the [app_store] table, by result.");
        let _ = writeln!(out, "# TYPE {name} counter");
        let ok = self.refreshes.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{result=\"ok\"}} {ok}");
        let _ = writeln!(out, "{name}{{result=\"failed\"}} {}", self.refresh_failures.load(Ordering::Relaxed));
    }
}

/// `schema.table` quoted for SQL with `quote` (`"` for PostgreSQL, `` ` `` for MySQL); the
/// config allowed only letters, digits and `_` in each part.
fn quoted_table(table: &str, quote: char) -> String {
    table.split('.').map(|p| format!("{quote}{p}{quote}")).collect::<Vec<_>>().join(".")
}
