//! The PostgreSQL driver: one client, connected on first use and again after it broke.
//!
//! Each row comes back as `row_to_json(t)`: one JSON object whatever the table's column types
//! are, so Soketi's table, a minimal one and one with extra columns all read the same way.

use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

use super::{By, Row, StoreError, quoted_table};
use crate::config::AppStoreSettings;

/// A reconnecting PostgreSQL client for the apps table.
#[derive(Debug)]
pub(crate) struct PgStore {
    url: String,
    /// `SELECT row_to_json(t)::text FROM "table" t WHERE`, completed per query.
    select: String,
    /// The live client; replaced when it closed.
    client: Mutex<Option<Arc<Client>>>,
}

impl PgStore {
    pub(crate) fn new(settings: &AppStoreSettings) -> Self {
        let select = format!("SELECT row_to_json(t)::text FROM {} t WHERE ", quoted_table(&settings.table, '"'));
        Self { url: settings.url.clone(), select, client: Mutex::new(None) }
    }

    /// The client, connecting when there is none or the last one closed.
    async fn client(&self) -> Result<Arc<Client>, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(c));
        }
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "app store: PostgreSQL connection closed");
            }
        });
        let client = Arc::new(client);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    pub(crate) async fn find(&self, by: By, value: &str) -> Result<Option<Row>, StoreError> {
        let column = match by {
            By::Id => "t.id::text",
            By::Key => "t.\"key\"::text",
        };
        let sql = format!("{}{column} = $1 LIMIT 1", self.select);
        let rows = self.client().await?.query(&sql, &[&value]).await?;
        Ok(rows.first().and_then(parse))
    }

    pub(crate) async fn find_ids(&self, ids: &[String]) -> Result<Vec<Row>, StoreError> {
        let sql = format!("{}t.id::text = ANY($1)", self.select);
        let rows = self.client().await?.query(&sql, &[&ids]).await?;
        Ok(rows.iter().filter_map(parse).collect())
    }
}

fn parse(row: &tokio_postgres::Row) -> Option<Row> {
    let text: &str = row.try_get(0).ok()?;
    serde_json::from_str(text).ok()
}

/// Listens on `channel` and hands each notification's payload to `on_notify`; returns when the
/// connection breaks (the caller reconnects) or `stop` fires.
///
/// # Errors
/// When the connection cannot be made or LISTEN is refused.
pub(crate) async fn listen(
    url: &str,
    channel: &str,
    stop: &tokio_util::sync::CancellationToken,
    mut on_notify: impl FnMut(String),
) -> Result<(), tokio_postgres::Error> {
    use tokio_postgres::AsyncMessage;
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    // The connection must be polled for LISTEN to complete, and for the notifications after it.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(256);
    let pump = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    // Bounded: a flood of notifications beyond what the directory reads is
                    // dropped, the periodic refresh catches up with it.
                    let _ = tx.try_send(n.payload().to_owned());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "app store: LISTEN connection closed");
                    return;
                }
                None => return,
            }
        }
    });
    let listened = client.batch_execute(&format!("LISTEN \"{channel}\"")).await;
    if let Err(e) = listened {
        pump.abort();
        return Err(e);
    }
    tracing::info!(channel, "app store: listening for app changes");
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            payload = rx.recv() => match payload {
                Some(p) => on_notify(p),
                None => break,
            },
        }
    }
    pump.abort();
    drop(client);
    Ok(())
}
