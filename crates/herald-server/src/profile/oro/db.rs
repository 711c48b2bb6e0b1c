//! Oro's PostgreSQL database, read-only: the user a ticket names, the
//! `oro_ui.application_url` setting (for the origin check) and `oro_sync_websocket_server_state`
//! (system configuration changes).
//!
//! One connection, opened on first use and reopened after it breaks; queries are pipelined on
//! it by tokio-postgres. Every query is bounded by [`QUERY_TIMEOUT`], so a stuck database
//! delays a handshake's authentication, never the whole server.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::{Client, NoTls, Row};

use super::dsn::Dsn;

/// Longest wait for connecting or for one query.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed connect, queries fail at once for this long instead of queueing behind new
/// connect attempts (a database outage must not turn into minutes of waiting per handshake).
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Oro's state row for system configuration changes (Oro's
/// SyncBundle updates it).
const STATE_QUERY: &str = "SELECT updated_at::text FROM oro_sync_websocket_server_state WHERE id = 'system_config'";

/// Why the database could not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// Connecting or querying failed.
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The database did not answer within the timeout.
    #[error("database did not answer within {QUERY_TIMEOUT:?}")]
    Timeout,
    /// Connecting failed moments ago; not retried yet.
    #[error("database unavailable (the last connection attempt failed)")]
    Unavailable,
    /// The user query returned a row without a usable `(id, password)`.
    #[error("the user query must return (id, password); column {0} is missing or of another type")]
    Shape(usize),
}

/// A user as the ticket check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OroUser {
    /// `oro_user.id`, compared with secured topics' `user_id`.
    pub(crate) id: i64,
    /// The stored password hash, the ticket's signing password.
    pub(crate) password: String,
}

/// Oro's database.
#[derive(Debug)]
pub(crate) struct Db {
    config: tokio_postgres::Config,
    user_query: String,
    application_url_query: String,
    /// The open connection, or when connecting last failed.
    client: tokio::sync::Mutex<Slot>,
}

/// The connection slot of [`Db`].
#[derive(Debug, Default)]
enum Slot {
    /// Nothing tried yet, or the last connection broke.
    #[default]
    Empty,
    /// Connected.
    Open(Arc<Client>),
    /// The last connect failed at this instant.
    Failed(tokio::time::Instant),
}

impl Db {
    /// A handle; nothing is connected until the first query.
    pub(crate) fn new(dsn: &Dsn, user_query: String, application_url_query: String) -> Self {
        let mut config = tokio_postgres::Config::new();
        let host = dsn.query_param("host").filter(|h| !h.is_empty()).unwrap_or_else(|| dsn.host.clone());
        config.host(if host.is_empty() { "localhost" } else { host.as_str() });
        config.port(dsn.port.unwrap_or(5432));
        if let Some(u) = &dsn.user {
            config.user(u);
        }
        if let Some(p) = &dsn.password {
            config.password(p);
        }
        let dbname = dsn.path.trim_start_matches('/');
        if !dbname.is_empty() {
            config.dbname(dbname);
        }
        config.application_name("herald-oro").connect_timeout(QUERY_TIMEOUT);
        Self { config, user_query, application_url_query, client: tokio::sync::Mutex::new(Slot::Empty) }
    }

    /// The user with this username (or email), if any.
    ///
    /// # Errors
    /// [`DbError`] when the database cannot answer.
    pub(crate) async fn user(&self, username: &str) -> Result<Option<OroUser>, DbError> {
        let Some(row) = self.query_opt(&self.user_query, username).await? else {
            return Ok(None);
        };
        let id = int_column(&row, 0).ok_or(DbError::Shape(0))?;
        let password = row.try_get::<_, Option<String>>(1).map_err(|_| DbError::Shape(1))?.unwrap_or_default();
        Ok(Some(OroUser { id, password }))
    }

    /// The global `oro_ui.application_url`, if set.
    ///
    /// # Errors
    /// [`DbError`] when the database cannot answer.
    pub(crate) async fn application_url(&self) -> Result<Option<String>, DbError> {
        let row = self.query_opt(&self.application_url_query, "").await?;
        Ok(row.and_then(|r| r.try_get::<_, Option<String>>(0).ok().flatten()))
    }

    /// The `updated_at` of the `system_config` state row, as text; `None` when absent.
    ///
    /// # Errors
    /// [`DbError`], including when the table does not exist (Oro before 7.0).
    pub(crate) async fn config_state(&self) -> Result<Option<String>, DbError> {
        let row = self.query_opt(STATE_QUERY, "").await?;
        Ok(row.and_then(|r| r.try_get::<_, Option<String>>(0).ok().flatten()))
    }

    /// Runs a query with at most one text parameter (passed only when the query uses `$1`).
    async fn query_opt(&self, sql: &str, param: &str) -> Result<Option<Row>, DbError> {
        let client = self.client().await?;
        let run = async {
            if sql.contains("$1") { client.query(sql, &[&param]).await } else { client.query(sql, &[]).await }
        };
        let Ok(rows) = tokio::time::timeout(QUERY_TIMEOUT, run).await else {
            self.forget(&client).await;
            return Err(DbError::Timeout);
        };
        match rows {
            Ok(rows) => Ok(rows.into_iter().next()),
            Err(e) => {
                if client.is_closed() {
                    self.forget(&client).await;
                }
                Err(e.into())
            }
        }
    }

    /// The open connection, connecting first when there is none.
    async fn client(&self) -> Result<Arc<Client>, DbError> {
        let mut slot = self.client.lock().await;
        match &*slot {
            Slot::Open(c) if !c.is_closed() => return Ok(Arc::clone(c)),
            Slot::Failed(at) if at.elapsed() < RETRY_AFTER => return Err(DbError::Unavailable),
            _ => {}
        }
        let connect = tokio::time::timeout(QUERY_TIMEOUT, self.config.connect(NoTls)).await;
        let (client, connection) = match connect {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                *slot = Slot::Failed(tokio::time::Instant::now());
                return Err(e.into());
            }
            Err(_) => {
                *slot = Slot::Failed(tokio::time::Instant::now());
                return Err(DbError::Timeout);
            }
        };
        // The connection future drives the socket; it ends when the client is dropped.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "oro database connection ended");
            }
        });
        let client = Arc::new(client);
        *slot = Slot::Open(Arc::clone(&client));
        Ok(client)
    }

    /// Drops a broken connection so that the next query reconnects.
    async fn forget(&self, broken: &Arc<Client>) {
        let mut slot = self.client.lock().await;
        if matches!(&*slot, Slot::Open(c) if Arc::ptr_eq(c, broken)) {
            *slot = Slot::Empty;
        }
    }
}

/// An integer column of any width, or a numeric text.
fn int_column(row: &Row, i: usize) -> Option<i64> {
    if let Ok(v) = row.try_get::<_, i64>(i) {
        return Some(v);
    }
    if let Ok(v) = row.try_get::<_, i32>(i) {
        return Some(v.into());
    }
    if let Ok(v) = row.try_get::<_, i16>(i) {
        return Some(v.into());
    }
    row.try_get::<_, String>(i).ok()?.trim().parse().ok()
}
