//! Apps from a database (`[app_store]`), against a real MariaDB and a real PostgreSQL started by
//! the tests, each holding Soketi's `apps` table: a key only the table has connects and
//! receives what the signed HTTP API publishes; an unknown key is refused with 4001 and asked
//! again only after the negative TTL; a row disabled closes its connections with 4003, a row
//! deleted with 4001; with the database stopped the loaded apps keep working and unknown keys
//! are refused at once; a row colliding with a file app never replaces it.

use std::time::Duration;

use herald_server::config::{AppStoreDriver, AppStoreSettings};
use herald_test_support::http::{http, parse_metrics, publish_data};
use herald_test_support::sql::mariadb::MariaDb;
use herald_test_support::ws::pusher_path;
use herald_test_support::{TestServer, WAIT, app, close_frame, next_json, settings, subscribe, with_metrics};

/// Soketi's table (its MySQL fixture, with the limit columns of later versions); the JavaScript
/// suite (`tests/js/app-store.test.mjs`) creates the same one.
const SOKETI_TABLE_MYSQL: &str = include_str!("../../../tests/fixtures/app_store/mysql.sql");

/// The same for PostgreSQL, with the NOTIFY trigger of the docs.
const SOKETI_TABLE_PG: &str = include_str!("../../../tests/fixtures/app_store/postgres.sql");

/// Two rows: `db-app` (key `db-key`) and one whose key is the file app's.
fn rows(t: &str, f: &str) -> String {
    format!(
        "INSERT INTO apps (id, {k}, secret, max_connections, enabled, enable_client_messages, \
         max_backend_events_per_sec, max_client_events_per_sec, max_read_req_per_sec, webhooks) VALUES \
         ('db-app', 'db-key', 'db-secret', -1, {t}, {t}, -1, -1, -1, '[]'), \
         ('thief', 'file-key', 'thief-secret', -1, {t}, {f}, -1, -1, -1, '[]');",
        k = if t == "1" { "`key`" } else { "\"key\"" }
    )
}

async fn metric(server: &TestServer, series: &str) -> f64 {
    let (_, body) = http(server.metrics(), "GET", "/metrics").await;
    parse_metrics(body.split("\r\n\r\n").last().unwrap_or(&body)).get(series).copied().unwrap_or(0.0)
}

async fn start(driver: AppStoreDriver, url: String, ttl: u64) -> TestServer {
    start_with(driver, url, ttl, 100).await
}

async fn start_with(driver: AppStoreDriver, url: String, ttl: u64, max_lookups_per_second: u32) -> TestServer {
    let mut s = with_metrics(settings(vec![app("file-app", "file-key")]));
    s.app_store = Some(AppStoreSettings {
        driver,
        url,
        table: "apps".into(),
        cache_ttl: Duration::from_secs(ttl),
        negative_ttl: Duration::from_secs(30),
        max_lookups_per_second,
        listen_channel: (driver == AppStoreDriver::Postgres).then(|| "herald_apps".to_owned()),
    });
    TestServer::start(s).await
}

/// A key only the table has: connect, subscribe, receive a publication of the signed API.
async fn table_app_serves(server: &TestServer) -> herald_test_support::Ws {
    let (mut ws, _) = server.pusher("db-key").await;
    subscribe(&mut ws, "news").await;
    let status = publish_data(server.addr, ("db-app", "db-key", "db-secret"), "news", "{\"n\":1}").await;
    assert_eq!(status, 200);
    let msg = next_json(&mut ws).await;
    assert_eq!((msg["channel"].as_str(), msg["data"].as_str()), (Some("news"), Some("{\"n\":1}")), "{msg}");
    ws
}

/// An unknown key: 4001, and the second attempt is answered by the negative cache.
async fn unknown_key_is_refused_once(server: &TestServer) {
    let missing = "herald_app_store_queries_total{result=\"missing\"}";
    let hits = "herald_app_store_queries_total{result=\"negative_hit\"}";
    for attempt in 0..2 {
        let mut ws = server.ws(&pusher_path("nobody")).await;
        let close = close_frame(&mut ws).await.expect("a close frame");
        assert_eq!(u16::from(close.code), 4001, "attempt {attempt}");
    }
    assert_eq!(metric(server, missing).await, 1.0, "one query for two attempts");
    assert!(metric(server, hits).await >= 1.0);
}

/// The file app keeps its key: the colliding row is refused.
async fn file_app_wins(server: &TestServer) {
    let (mut ws, _) = server.pusher("file-key").await;
    subscribe(&mut ws, "x").await;
    assert_eq!(publish_data(server.addr, ("file-app", "file-key", "file-key-secret"), "x", "1").await, 200);
    assert_eq!(next_json(&mut ws).await["data"], "1");
    assert!(server.hub.apps().by_id("thief").is_none());
}

async fn closes_with(ws: &mut herald_test_support::Ws, code: u16) {
    let close = tokio::time::timeout(WAIT, close_frame(ws)).await.expect("closed in time").expect("a close frame");
    assert_eq!(u16::from(close.code), code);
}

#[tokio::test]
async fn mariadb_table_with_soketi_columns() {
    let mut db = MariaDb::start();
    db.database("herald").await;
    db.execute("herald", &format!("{SOKETI_TABLE_MYSQL}{}", rows("1", "0"))).await;
    let server = start(AppStoreDriver::Mysql, db.url("herald"), 1).await;

    file_app_wins(&server).await;
    unknown_key_is_refused_once(&server).await;
    let mut ws = table_app_serves(&server).await;
    db.execute("herald", "UPDATE apps SET enabled = 0 WHERE id = 'db-app'").await;
    closes_with(&mut ws, 4003).await;
    db.execute("herald", "UPDATE apps SET enabled = 1 WHERE id = 'db-app'").await;
    // The refresh puts it back; then a deleted row closes with 4001.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !server.hub.apps().by_id("db-app").is_some_and(|a| a.config.enabled) {
        assert!(tokio::time::Instant::now() < deadline, "re-enabled within the TTL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ws = table_app_serves(&server).await;
    db.execute("herald", "DELETE FROM apps WHERE id = 'db-app'").await;
    closes_with(&mut ws, 4001).await;

    // With the database down, a loaded app keeps working and unknown keys are refused at once.
    db.execute(
        "herald",
        &rows("1", "0").replace(
            "('thief', 'file-key', 'thief-secret', -1, 1, 0, -1, -1, -1, '[]')",
            "('x', 'x', 'x', -1, 1, 0, -1, -1, -1, '[]')",
        ),
    )
    .await;
    let mut ws = table_app_serves(&server).await;
    db.stop();
    let started = tokio::time::Instant::now();
    let mut refused = server.ws(&pusher_path("other-unknown")).await;
    closes_with(&mut refused, 4001).await;
    assert!(started.elapsed() < Duration::from_secs(10), "refused without hanging");
    // A refresh round fails against the stopped database; the app stays served.
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&server, "herald_app_store_refreshes_total{result=\"failed\"}").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "a refresh round failed within the wait");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(publish_data(server.addr, ("db-app", "db-key", "db-secret"), "news", "2").await, 200);
    assert_eq!(next_json(&mut ws).await["data"], "2");
    server.shutdown().await;
}

#[tokio::test]
async fn postgres_table_with_soketi_columns_and_notify() {
    let cluster = herald_test_support::oro::pg::cluster();
    let name = cluster.empty_database("apps").await;
    let client = cluster.connect(&name).await;
    client.batch_execute(&format!("{SOKETI_TABLE_PG}{}", rows("true", "false"))).await.unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port);
    // A TTL longer than the test: the changes must arrive through NOTIFY.
    let server = start(AppStoreDriver::Postgres, url, 3600).await;

    file_app_wins(&server).await;
    unknown_key_is_refused_once(&server).await;
    let mut ws = table_app_serves(&server).await;
    client.batch_execute("UPDATE apps SET enabled = false WHERE id = 'db-app'").await.unwrap();
    closes_with(&mut ws, 4003).await;
    client.batch_execute("UPDATE apps SET enabled = true WHERE id = 'db-app'").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !server.hub.apps().by_id("db-app").is_some_and(|a| a.config.enabled) {
        assert!(tokio::time::Instant::now() < deadline, "re-enabled through NOTIFY");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ws = table_app_serves(&server).await;
    client.batch_execute("DELETE FROM apps WHERE id = 'db-app'").await.unwrap();
    closes_with(&mut ws, 4001).await;
    server.shutdown().await;
}

/// Random keys in a burst: each is refused with 4001, and past `max_lookups_per_second` without
/// a query (counted as throttled), so a client cannot make the database answer for every key it
/// invents.
#[tokio::test]
async fn a_burst_of_unknown_keys_is_not_a_burst_of_queries() {
    let cluster = herald_test_support::oro::pg::cluster();
    let name = cluster.empty_database("apps").await;
    cluster.connect(&name).await.batch_execute(SOKETI_TABLE_PG).await.unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port);
    let server = start_with(AppStoreDriver::Postgres, url, 3600, 2).await;
    let keys = 8;
    for i in 0..keys {
        let mut ws = server.ws(&pusher_path(&format!("invented-{i}"))).await;
        assert_eq!(u16::from(close_frame(&mut ws).await.expect("a close frame").code), 4001, "key {i}");
    }
    let missing = metric(&server, "herald_app_store_queries_total{result=\"missing\"}").await;
    let throttled = metric(&server, "herald_app_store_queries_total{result=\"throttled\"}").await;
    assert_eq!(missing + throttled, f64::from(keys), "every key answered, by a query or by the bound");
    assert!(missing < f64::from(keys) && throttled >= 1.0, "{missing} queried, {throttled} throttled");
    server.shutdown().await;
}
