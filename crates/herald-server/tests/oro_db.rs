//! The Oro profile against a real PostgreSQL holding Oro's tables: user tickets checked
//! against `oro_user.password` (O5, O6), per-user topic security (O8), backend-only publishing
//! (O9), the server-state table (O12) and the database DSN from Oro's environment (O14).

#![allow(clippy::unwrap_used)]

use herald_test_support::oro::client::{Client, Upgrade, refused, upgrade_one_read};
use herald_test_support::oro::pg::cluster;
use herald_test_support::oro::{ADMIN_HASH, JOHN_HASH, OroServer, SECRET, backend_query, php_ticket, ticket_query};
use serde_json::json;

/// herald on a fresh database; `extra` is more of the `[oro]` section.
async fn start(extra: &str) -> (OroServer, String) {
    let pg = cluster();
    let db = pg.database().await;
    let dsn = pg.dsn(&db);
    let server = OroServer::start(extra, &[("ORO_DB_DSN", dsn.as_str())]).await;
    (server, db)
}

fn user_query(name: &str, hash: &str, options: &[&str]) -> String {
    ticket_query(&php_ticket(SECRET, Some((name, hash)), options))
}

#[tokio::test]
async fn o5_user_tickets_verify_against_the_stored_password_hash() {
    let (s, _) = start("").await;
    let mut admin = Client::with_query(s.addr, &user_query("admin", ADMIN_HASH, &[])).await;
    admin.subscribe("oro/email_event/7/1").await;
    // Oro's UserLoader falls back to the email (case-insensitive here).
    let mut by_email =
        Client::with_query(s.addr, &user_query("admin@example.com", ADMIN_HASH, &["--offset=-200"])).await;
    by_email.subscribe("oro/reminder_remind/7").await;
    assert_eq!(s.subscribers("oro/email_event/7/1"), 1);
    assert_eq!(s.subscribers("oro/reminder_remind/7"), 1);
    s.shutdown().await;
}

async fn assert_refused(s: &OroServer, query: &str) {
    let mut c = Client::with_query(s.addr, query).await;
    let text = c.text().await;
    assert!(text.starts_with("HTTP/1.0 403 Forbidden\r\n"), "{query}: {text:?}");
    assert_eq!(c.rest().await, [0x88, 0x02, 0x00, 0x00]);
}

#[tokio::test]
async fn o6_wrong_hash_unknown_user_and_stale_user_tickets_are_refused() {
    let (s, _) = start("").await;
    assert_refused(&s, &user_query("admin", JOHN_HASH, &[])).await;
    assert_refused(&s, &user_query("admin", SECRET, &[])).await;
    assert_refused(&s, &user_query("nobody", ADMIN_HASH, &[])).await;
    assert_refused(&s, &user_query("admin", ADMIN_HASH, &["--offset=-301"])).await;
    assert_refused(&s, &user_query("admin", ADMIN_HASH, &["--offset=45"])).await;
    s.shutdown().await;
}

#[tokio::test]
async fn o8_secured_topics_are_for_their_user_only_and_denial_keeps_the_connection() {
    let (s, _) = start("").await;
    let mut admin = Client::with_query(s.addr, &user_query("admin", ADMIN_HASH, &[])).await;
    admin.subscribe("oro/email_event/7/1").await;
    admin.subscribe("oro/imap_sync_fail/*").await;
    for foreign in ["oro/email_event/8/1", "oro/reminder_remind/8", "oro/imap_sync_fail/8", "oro/attribute_import/8/3"]
    {
        admin.send(&json!([5, foreign]).to_string()).await;
        assert_eq!(admin.text().await, format!("You are not allowed to subscribe on topic \"{foreign}\"."));
        assert_eq!(s.subscribers(foreign), 0);
    }
    // The anonymous backend never owns a secured topic.
    let mut backend = Client::with_query(s.addr, &backend_query()).await;
    backend.send(r#"[5,"oro/email_event/7/1"]"#).await;
    assert_eq!(backend.text().await, "You are not allowed to subscribe on topic \"oro/email_event/7/1\".");
    // Both connections stay usable: the backend's events reach the admin.
    backend.send(r#"[7,"oro/email_event/7/1",{"hasNewEmail":true},[],[]]"#).await;
    assert_eq!(admin.json().await, json!([8, "oro/email_event/7/1", {"hasNewEmail": true}]));
    backend.send(r#"[7,"oro/imap_sync_fail/*",{"username":"admin","host":"imap.test"},[],[]]"#).await;
    assert_eq!(admin.json().await[1], "oro/imap_sync_fail/*");
    s.shutdown().await;
}

#[tokio::test]
async fn o9_backend_only_publishing_ignores_user_publishes() {
    let (s, _) = start("publishers = \"backend\"").await;
    let mut john = Client::with_query(s.addr, &user_query("john", JOHN_HASH, &[])).await;
    john.subscribe("oro/data/update").await;
    john.send(r#"[7,"oro/data/update","from a browser"]"#).await;
    let mut backend = Client::with_query(s.addr, &backend_query()).await;
    backend.send(r#"[7,"oro/data/update","from the backend",[],[]]"#).await;
    assert_eq!(john.json().await, json!([8, "oro/data/update", "from the backend"]));
    s.shutdown().await;
}

#[tokio::test]
async fn o12_a_changed_server_state_reloads_the_allowed_origins() {
    let (s, db) = start("state_poll_interval = 0.1").await;
    let path = format!("/ws{}", backend_query());
    let app_url = |origin| Upgrade { path: &path, origin: Some(origin), wamp: true };
    // Read from oro_config_value at start-up, in the background.
    let mut loaded = false;
    for _ in 0..200 {
        let (_, first) = upgrade_one_read(s.addr, &app_url("https://oro.example.test")).await;
        if first.starts_with(b"HTTP/1.1 101") {
            loaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(loaded, "the application URL's host is allowed once read from the database");
    assert!(refused(s.addr, &app_url("https://new.example.test")).await.starts_with("HTTP/1.1 403"));

    let client = cluster().connect(&db).await;
    client
        .batch_execute(
            "UPDATE oro_config_value SET text_value = 'https://new.example.test' WHERE name = 'application_url';
             UPDATE oro_sync_websocket_server_state SET updated_at = now() WHERE id = 'system_config';",
        )
        .await
        .unwrap();
    let mut switched = false;
    for _ in 0..200 {
        let (_, first) = upgrade_one_read(s.addr, &app_url("https://new.example.test")).await;
        if first.starts_with(b"HTTP/1.1 101") {
            switched = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(switched, "the new application URL is allowed after the state row changed");
    assert!(refused(s.addr, &app_url("https://oro.example.test")).await.starts_with("HTTP/1.1 403"));
    s.shutdown().await;
}

#[tokio::test]
async fn o14_database_dsn_comes_from_oro_db_url_with_doctrine_parameters() {
    let pg = cluster();
    let db = pg.database().await;
    // Oro's .env-app form, with Doctrine-only query parameters herald must ignore.
    let dsn = pg.dsn(&db);
    let s = OroServer::start("", &[("ORO_DB_URL", dsn.as_str())]).await;
    let mut admin = Client::with_query(s.addr, &user_query("admin", ADMIN_HASH, &[])).await;
    admin.subscribe("oro/email_event/7/*").await;
    s.shutdown().await;
}
