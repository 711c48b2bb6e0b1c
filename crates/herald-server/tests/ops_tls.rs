//! In-process TLS: real handshakes against a test CA made with openssl, Pusher over wss,
//! encrypted keys, a plain and a TLS listener side by side, and the start-up errors.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use herald_server::Server;
use herald_server::config::{ListenerSettings, Profile};
use herald_server::tls::{Passphrase, TlsError, TlsFiles};
use herald_test_support::http::{http, http_on, signed_publish};
use herald_test_support::process::TempDir;
use herald_test_support::tls::{make_certs, peer_cn, tls_connect};
use herald_test_support::{TestServer, app, next_json, settings, subscribe};

fn files(dir: &Path, cert: &str, key: &str, pass: Option<&str>) -> TlsFiles {
    TlsFiles { cert: dir.join(cert), key: dir.join(key), passphrase: pass.map(|p| Passphrase::new(p.to_owned())) }
}

async fn start(tls: TlsFiles) -> Result<(Server, std::net::SocketAddr), herald_server::StartError> {
    let mut s = settings(vec![app("1", "key")]);
    s.ops.tls = Some(tls);
    let server = Server::bind(s).await?;
    let addr = server.local_addr().unwrap();
    Ok((server, addr))
}

#[tokio::test]
async fn pusher_over_wss_with_an_encrypted_key() {
    let dir = TempDir::new("tls-enc");
    make_certs(&dir.0);
    let (server, addr) = start(files(&dir.0, "leaf.pem", "leaf-enc.key", Some("s3cret-pass"))).await.unwrap();
    let server = TestServer::run(server);

    let tls = tls_connect(addr, &dir.path("ca.pem")).await;
    assert_eq!(peer_cn(&tls), "herald leaf one");
    assert_eq!(tls.get_ref().1.alpn_protocol(), None, "no ALPN offered by this client, none chosen");
    let url = format!("wss://127.0.0.1:{}/app/key?protocol=7&client=js&version=8.4.0", addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.expect("upgrade over TLS");
    assert_eq!(next_json(&mut ws).await["event"], "pusher:connection_established");
    subscribe(&mut ws, "secure").await;

    // The HTTP API over the same TLS port.
    let (target, body) = signed_publish("1", "key", "key-secret", "secure", "over tls", "", "");
    let status = http_on(tls_connect(addr, &dir.path("ca.pem")).await, "POST", &target, &[], &body).await.0;
    assert_eq!(status, 200);
    let ev = next_json(&mut ws).await;
    assert_eq!(ev["data"], "over tls");

    drop(ws);
    server.shutdown().await;
}

#[tokio::test]
async fn a_plain_and_a_tls_listener_coexist() {
    let dir = TempDir::new("tls-mixed");
    make_certs(&dir.0);
    let mut s = settings(vec![app("1", "key")]);
    s.listeners.push(ListenerSettings {
        host: "127.0.0.1".into(),
        port: 0,
        profile: Profile::Pusher,
        tls: Some(files(&dir.0, "leaf.pem", "leaf.key", None)),
    });
    let server = TestServer::start(s).await;
    let (plain, secure) = (server.listening[0].0, server.listening[1].0);
    assert_eq!(http(plain, "GET", "/up").await.0, 200);
    let (code, _) = http_on(tls_connect(secure, &dir.path("ca.pem")).await, "GET", "/up", &[], "").await;
    assert_eq!(code, 200);
    // Plain HTTP on the TLS port fails the handshake instead of being served.
    let (code, _) = http(secure, "GET", "/up").await;
    assert_eq!(code, 0, "no HTTP answer in clear on the TLS port");
    server.shutdown().await;
}

#[tokio::test]
async fn bad_tls_files_stop_the_start_with_a_clear_error() {
    let dir = TempDir::new("tls-bad");
    make_certs(&dir.0);
    let cases: Vec<(TlsFiles, &str)> = vec![
        (files(&dir.0, "leaf.pem", "leaf-enc.key", Some("wrong")), "wrong tls_passphrase"),
        (files(&dir.0, "leaf.pem", "leaf-enc.key", None), "is encrypted: set tls_passphrase"),
        (files(&dir.0, "leaf.pem", "other.key", None), "does not match the certificate"),
        (files(&dir.0, "missing.pem", "leaf.key", None), "cannot read the certificate file"),
        (files(&dir.0, "leaf.pem", "leaf-legacy.key", Some("s3cret-pass")), "openssl pkcs8 -topk8"),
        (files(&dir.0, "leaf.key", "leaf.key", None), "contains no PEM certificate"),
        (files(&dir.0, "leaf.pem", "leaf.pem", None), "contains no PEM private key"),
    ];
    for (f, expected) in cases {
        let err = start(f).await.expect_err("refused");
        assert_eq!(err.exit_code(), 64, "{err}");
        assert!(err.to_string().contains(expected), "{err} lacks {expected:?}");
        assert!(!err.to_string().contains("s3cret-pass"), "the passphrase is never printed");
    }
}

#[tokio::test]
async fn unreadable_key_file_is_reported() {
    let dir = TempDir::new("tls-perm");
    make_certs(&dir.0);
    // A directory where the key should be: reading fails whatever our privileges.
    std::fs::create_dir(dir.path("keydir")).unwrap();
    let err = herald_server::tls::load(&files(&dir.0, "leaf.pem", "keydir", None)).unwrap_err();
    assert!(matches!(err, TlsError::Read { what: "private key", .. }), "{err}");
}

#[tokio::test]
async fn passphrases_are_redacted_in_debug_output() {
    let f = TlsFiles { cert: "c".into(), key: "k".into(), passphrase: Some(Passphrase::new("hunter2".into())) };
    assert!(!format!("{f:?}").contains("hunter2"));
}
