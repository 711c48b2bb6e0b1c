//! One row of the apps table as an [`AppConfig`]: Soketi's columns (and a few of herald's own),
//! read from whatever subset the table has.
//!
//! Both drivers hand the row over as a JSON object (PostgreSQL's `row_to_json`, MySQL's columns
//! converted one by one), so numbers may arrive as numbers or text, booleans as booleans,
//! `0`/`1` (MySQL's `tinyint(1)`) or text, and JSON columns as JSON or as text holding JSON.
//! Pure: no I/O, so every mapping is tested here.

use herald_core::AppConfig;
use herald_core::app::{WebhookConfig, WebhookFilter};
use serde_json::{Map, Value};

/// Why a row cannot be served, named by its column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {problem}")]
pub(crate) struct RowError {
    /// The column at fault (or the herald setting `AppConfig::validate` named).
    pub(crate) column: String,
    /// What is wrong with it.
    pub(crate) problem: String,
}

fn err(column: &str, problem: impl Into<String>) -> RowError {
    RowError { column: column.to_owned(), problem: problem.into() }
}

/// The value of the first of `names` the row has, `None` when absent or NULL.
fn column<'a>(row: &'a Map<String, Value>, names: &[&'static str]) -> Option<(&'static str, &'a Value)> {
    names.iter().find_map(|n| row.get(*n).filter(|v| !v.is_null()).map(|v| (*n, v)))
}

fn text(row: &Map<String, Value>, name: &'static str) -> Result<String, RowError> {
    match column(row, &[name]) {
        Some((_, Value::String(s))) if !s.is_empty() => Ok(s.clone()),
        Some((_, Value::Number(n))) => Ok(n.to_string()),
        Some(_) => Err(err(name, "must be non-empty text")),
        None => Err(err(name, "is required and is missing or NULL")),
    }
}

fn boolean(row: &Map<String, Value>, name: &'static str, default: bool) -> Result<bool, RowError> {
    let Some((name, v)) = column(row, &[name]) else { return Ok(default) };
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "yes" | "on" => Ok(true),
            "0" | "f" | "false" | "no" | "off" => Ok(false),
            _ => Err(err(name, format!("{s:?} is not a boolean"))),
        },
        _ => Err(err(name, "is not a boolean")),
    }
}

/// A number column; negative values (Soketi's `-1`) and NULL mean "herald's default": `None`.
fn number(row: &Map<String, Value>, names: &[&'static str]) -> Result<Option<f64>, RowError> {
    let Some((name, v)) = column(row, names) else { return Ok(None) };
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() => Ok((n >= 0.0).then_some(n)),
        _ => Err(err(name, format!("{v} is not a number"))),
    }
}

/// A count (`usize`) column, or `default`.
fn count(row: &Map<String, Value>, names: &[&'static str], default: usize) -> Result<usize, RowError> {
    // Saturating: a count larger than memory is "no practical limit".
    Ok(number(row, names)?.map_or(default, |n| n.min(usize::MAX as f64) as usize))
}

/// A per-second rate (`u32`) column, or `default`.
fn rate(row: &Map<String, Value>, names: &[&'static str], default: u32) -> Result<u32, RowError> {
    Ok(number(row, names)?.map_or(default, |n| n.min(f64::from(u32::MAX)) as u32))
}

/// A size in kilobytes (fractions allowed, as Soketi reads them) as bytes, or `default`.
fn kilobytes(row: &Map<String, Value>, names: &[&'static str], default: usize) -> Result<usize, RowError> {
    Ok(number(row, names)?.map_or(default, |kb| (kb * 1024.0).round().min(usize::MAX as f64) as usize))
}

/// A JSON column: JSON itself, or text holding JSON (MySQL, MariaDB's `JSON` is text).
fn json(row: &Map<String, Value>, name: &'static str) -> Result<Option<Value>, RowError> {
    match column(row, &[name]) {
        None => Ok(None),
        Some((_, Value::String(s))) if s.trim().is_empty() => Ok(None),
        Some((_, Value::String(s))) => {
            serde_json::from_str(s).map(Some).map_err(|e| err(name, format!("is not JSON: {e}")))
        }
        Some((_, v)) => Ok(Some(v.clone())),
    }
}

/// Soketi's webhooks (`[{"url", "event_types", "headers"?, "filter"?}]`) as herald's.
fn webhooks(row: &Map<String, Value>) -> Result<Vec<WebhookConfig>, RowError> {
    const COL: &str = "webhooks";
    let Some(value) = json(row, COL)? else { return Ok(Vec::new()) };
    let Value::Array(items) = value else { return Err(err(COL, "must be a JSON array")) };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let at = |problem: String| err(COL, format!("[{i}]: {problem}"));
        let Value::Object(mut hook) = item else { return Err(at("must be an object".into())) };
        if hook.get("url").is_none_or(Value::is_null) && hook.contains_key("lambda_function") {
            return Err(at("AWS Lambda webhooks are not supported: give the webhook a url".into()));
        }
        // Soketi's Lambda options and an empty lambda object carry nothing herald uses.
        hook.remove("lambda");
        hook.remove("lambda_function");
        let mut config = WebhookConfig::default();
        for (k, v) in hook {
            match (k.as_str(), v) {
                ("url", Value::String(url)) => config.url = url,
                ("event_types", Value::Array(types)) => {
                    for t in types {
                        let Value::String(t) = t else { return Err(at("event_types must be strings".into())) };
                        config.event_types.push(t);
                    }
                }
                ("headers", Value::Object(headers)) => {
                    for (name, value) in headers {
                        let Value::String(value) = value else {
                            return Err(at(format!("header {name} must be a string")));
                        };
                        config.headers.insert(name, value);
                    }
                }
                ("filter", Value::Object(filter)) => {
                    let mut f = WebhookFilter::default();
                    for (fk, fv) in filter {
                        match (fk.as_str(), fv) {
                            ("channel_name_starts_with", Value::String(s)) => f.channel_name_starts_with = Some(s),
                            ("channel_name_ends_with", Value::String(s)) => f.channel_name_ends_with = Some(s),
                            (_, Value::Null) => {}
                            (other, _) => return Err(at(format!("filter.{other} is not a filter herald knows"))),
                        }
                    }
                    config.filter = f;
                }
                (_, Value::Null) => {}
                (other, _) => {
                    return Err(at(format!("{other} is not a webhook field herald knows (or has the wrong type)")));
                }
            }
        }
        out.push(config);
    }
    Ok(out)
}

/// herald's `allowed_origins`: a JSON array of strings, or comma-separated text.
fn origins(row: &Map<String, Value>) -> Result<Vec<String>, RowError> {
    const COL: &str = "allowed_origins";
    let list = match column(row, &[COL]) {
        None => return Ok(Vec::new()),
        Some((_, Value::String(s))) if !s.trim_start().starts_with('[') => {
            return Ok(s.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect());
        }
        Some(_) => json(row, COL)?,
    };
    match list {
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(err(COL, "must hold strings")),
            })
            .collect(),
        _ => Err(err(COL, "must be a JSON array of strings or comma-separated text")),
    }
}

/// The app a row describes, validated as a `[[apps]]` entry would be.
///
/// Only `id`, `key` and `secret` are required. Negative numbers (Soketi's `-1`) and NULL take
/// herald's default for that setting; columns herald has no setting for (`max_read_req_per_sec`,
/// `enable_stats`, timestamps) are ignored.
///
/// # Errors
/// [`RowError`] naming the column that cannot be used.
pub(crate) fn app_config(row: &Map<String, Value>) -> Result<AppConfig, RowError> {
    let d = AppConfig::default();
    let config = AppConfig {
        id: text(row, "id")?,
        key: text(row, "key")?,
        secret: text(row, "secret")?,
        enabled: boolean(row, "enabled", d.enabled)?,
        max_connections: count(row, &["max_connections"], d.max_connections)?,
        enable_client_messages: boolean(row, "enable_client_messages", d.enable_client_messages)?,
        enable_user_authentication: boolean(row, "enable_user_authentication", d.enable_user_authentication)?,
        enable_subscription_count: boolean(row, "enable_subscription_count", d.enable_subscription_count)?,
        max_backend_events_per_second: rate(
            row,
            &["max_backend_events_per_sec", "max_backend_events_per_second"],
            d.max_backend_events_per_second,
        )?,
        max_client_events_per_second: rate(
            row,
            &["max_client_events_per_sec", "max_client_events_per_second"],
            d.max_client_events_per_second,
        )?,
        max_presence_members: count(row, &["max_presence_members_per_channel"], d.max_presence_members)?,
        max_presence_user_info_bytes: kilobytes(
            row,
            &["max_presence_member_size_in_kb"],
            d.max_presence_user_info_bytes,
        )?,
        max_channel_name_length: count(row, &["max_channel_name_length"], d.max_channel_name_length)?,
        max_event_channels: count(row, &["max_event_channels_at_once"], d.max_event_channels)?,
        max_event_name_length: count(row, &["max_event_name_length"], d.max_event_name_length)?,
        max_event_data_bytes: kilobytes(row, &["max_event_payload_in_kb"], d.max_event_data_bytes)?,
        max_batch_events: count(row, &["max_event_batch_size"], d.max_batch_events)?,
        webhooks: webhooks(row)?,
        allowed_origins: origins(row)?,
        ..d
    };
    config.validate(0).map_err(|e| err(e.key.trim_start_matches("apps[0]."), e.problem))?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_minimal_row_takes_herald_defaults() {
        let c = app_config(&row(json!({"id": "1", "key": "k", "secret": "s"}))).unwrap();
        assert_eq!(c, AppConfig { id: "1".into(), key: "k".into(), secret: "s".into(), ..AppConfig::default() });
    }

    #[test]
    fn soketi_columns_map_onto_herald_settings() {
        let c = app_config(&row(json!({
            "id": 7, "key": "k", "secret": "s", "enabled": 1, "max_connections": 200,
            "enable_client_messages": "t", "max_backend_events_per_sec": -1, "max_client_events_per_sec": 50,
            "max_read_req_per_sec": 10, "enable_stats": 1, "webhooks": "[]",
            "max_presence_members_per_channel": 20, "max_presence_member_size_in_kb": 2.5,
            "max_channel_name_length": 100, "max_event_channels_at_once": 5, "max_event_name_length": 50,
            "max_event_payload_in_kb": "100", "max_event_batch_size": 4, "enable_user_authentication": true,
            "created_at": "2024-01-01 00:00:00"
        })))
        .unwrap();
        let d = AppConfig::default();
        assert_eq!(c.id, "7");
        assert!(c.enabled && c.enable_client_messages && c.enable_user_authentication);
        assert_eq!(c.max_connections, 200);
        assert_eq!(c.max_backend_events_per_second, d.max_backend_events_per_second);
        assert_eq!(c.max_client_events_per_second, 50);
        assert_eq!((c.max_presence_members, c.max_presence_user_info_bytes), (20, 2560));
        assert_eq!((c.max_channel_name_length, c.max_event_channels, c.max_event_name_length), (100, 5, 50));
        assert_eq!((c.max_event_data_bytes, c.max_batch_events), (102_400, 4));
    }

    #[test]
    fn null_and_minus_one_mean_the_default() {
        let c = app_config(&row(json!({
            "id": "a", "key": "k", "secret": "s", "max_connections": -1, "enabled": null,
            "max_event_batch_size": null
        })))
        .unwrap();
        assert_eq!((c.max_connections, c.enabled, c.max_batch_events), (0, true, 10));
    }

    #[test]
    fn soketi_webhooks_become_herald_webhooks() {
        let c = app_config(&row(json!({"id": "a", "key": "k", "secret": "s", "webhooks": json!([
            {"url": "https://h.example/hook", "event_types": ["channel_occupied"],
             "headers": {"X-Token": "t"}, "filter": {"channel_name_starts_with": "private-"}, "lambda": {}}
        ]).to_string()})))
        .unwrap();
        let h = &c.webhooks[0];
        assert_eq!((h.url.as_str(), h.event_types.len()), ("https://h.example/hook", 1));
        assert_eq!(h.headers.get("X-Token").map(String::as_str), Some("t"));
        assert_eq!(h.filter.channel_name_starts_with.as_deref(), Some("private-"));
    }

    #[test]
    fn unusable_rows_name_the_column() {
        let cases = [
            (json!({"key": "k", "secret": "s"}), "id"),
            (json!({"id": "a", "key": "k", "secret": ""}), "secret"),
            (json!({"id": "a", "key": "k k", "secret": "s"}), "key"),
            (json!({"id": "a", "key": "k", "secret": "s", "enabled": "maybe"}), "enabled"),
            (json!({"id": "a", "key": "k", "secret": "s", "max_connections": "many"}), "max_connections"),
            (json!({"id": "a", "key": "k", "secret": "s", "webhooks": "{"}), "webhooks"),
            (json!({"id": "a", "key": "k", "secret": "s", "webhooks": [{"lambda_function": "f"}]}), "webhooks"),
            (json!({"id": "a", "key": "k", "secret": "s", "webhooks": [{"url": "ftp://x"}]}), "webhooks[0].url"),
            (json!({"id": "a", "key": "k", "secret": "s", "max_event_batch_size": 0}), "max_event_channels"),
            (json!({"id": "a", "key": "k", "secret": "s", "allowed_origins": "[1]"}), "allowed_origins"),
        ];
        for (r, column) in cases {
            let e = app_config(&row(r.clone())).expect_err(&r.to_string());
            assert_eq!(e.column, column, "{r}: {e}");
        }
    }

    #[test]
    fn herald_columns_are_read_too() {
        let c = app_config(&row(json!({
            "id": "a", "key": "k", "secret": "s", "enable_subscription_count": 1,
            "allowed_origins": "https://a.example, *.b.example"
        })))
        .unwrap();
        assert!(c.enable_subscription_count);
        assert_eq!(c.allowed_origins, ["https://a.example", "*.b.example"]);
        let c = app_config(&row(json!({"id": "a", "key": "k", "secret": "s", "allowed_origins": "[\"x.example\"]"})));
        assert_eq!(c.unwrap().allowed_origins, ["x.example"]);
    }
}
