//! The MySQL/MariaDB driver: a small `mysql_async` pool, which opens a new connection when one
//! broke, so an outage heals by itself.
//!
//! Rows are read column by column into JSON values (`tinyint(1)` as a number, `JSON` and
//! `DECIMAL` as text); [`super::row`] reads either form.

use mysql_async::prelude::Queryable;
use mysql_async::{Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts, Value as My};
use serde_json::{Map, Number, Value};

use super::{By, Row, StoreError, quoted_table};
use crate::config::AppStoreSettings;

/// A pooled MySQL client for the apps table.
#[derive(Debug)]
pub(crate) struct MysqlStore {
    pool: Pool,
    /// `SELECT * FROM `table` WHERE`, completed per query.
    select: String,
}

impl MysqlStore {
    pub(crate) fn new(settings: &AppStoreSettings) -> Self {
        // The URL was checked when the config was loaded.
        let opts = Opts::from_url(&settings.url).unwrap_or_default();
        let constraints = PoolConstraints::new(0, 4).unwrap_or_default();
        let opts = OptsBuilder::from_opts(opts).pool_opts(PoolOpts::default().with_constraints(constraints));
        let select = format!("SELECT * FROM {} WHERE ", quoted_table(&settings.table, '`'));
        Self { pool: Pool::new(opts), select }
    }

    pub(crate) async fn find(&self, by: By, value: &str) -> Result<Option<Row>, StoreError> {
        let column = match by {
            By::Id => "`id`",
            By::Key => "`key`",
        };
        let sql = format!("{}{column} = ? LIMIT 1", self.select);
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<mysql_async::Row> = conn.exec(sql, (value,)).await?;
        Ok(rows.into_iter().next().map(to_json))
    }

    pub(crate) async fn find_ids(&self, ids: &[String]) -> Result<Vec<Row>, StoreError> {
        let marks = vec!["?"; ids.len()].join(",");
        let sql = format!("{}`id` IN ({marks})", self.select);
        let mut conn = self.pool.get_conn().await?;
        let params: Vec<My> = ids.iter().map(|i| My::from(i.as_str())).collect();
        let rows: Vec<mysql_async::Row> = conn.exec(sql, params).await?;
        Ok(rows.into_iter().map(to_json).collect())
    }

    pub(crate) async fn close(&self) {
        let _ = self.pool.clone().disconnect().await;
    }
}

fn to_json(row: mysql_async::Row) -> Row {
    let names: Vec<String> = row.columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
    let mut out = Map::new();
    // `Row::unwrap` hands over the row's values (it is not an `Option`'s unwrap).
    for (name, value) in names.into_iter().zip(row.unwrap()) {
        let v = match value {
            My::NULL => Value::Null,
            My::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
            My::Int(i) => Value::Number(i.into()),
            My::UInt(u) => Value::Number(u.into()),
            My::Float(f) => Number::from_f64(f.into()).map_or(Value::Null, Value::Number),
            My::Double(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
            // Dates and times: no herald setting reads them.
            other => Value::String(other.as_sql(true)),
        };
        out.insert(name, v);
    }
    out
}
