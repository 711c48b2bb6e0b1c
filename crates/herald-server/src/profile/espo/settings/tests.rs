//! Tests of the `[espocrm]` section: EspoCRM keys, docker variables, herald keys, errors.

use std::collections::HashMap;

use super::*;

fn root() -> tempdir::Root {
    tempdir::Root::new()
}

/// A scratch EspoCRM root with a command.php, removed on drop.
mod tempdir {
    use std::path::PathBuf;

    pub(super) struct Root(pub(super) PathBuf);

    impl Root {
        pub(super) fn new() -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "herald-espo-settings-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("command.php"), "<?php\n").unwrap();
            Self(dir)
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `sh` stands in for php: any executable found in PATH will do for validation.
fn table(root: &tempdir::Root, extra: &str) -> toml::Table {
    let text = format!("espocrm_root = {:?}\nphp_path = \"sh\"\n{extra}", root.0.display().to_string());
    toml::from_str(&text).unwrap()
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let mut map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    map.insert("PATH".into(), "/usr/bin:/bin".into());
    move |k: &str| map.get(k).cloned()
}

fn load(t: toml::Table, pairs: &[(&str, &str)]) -> Result<EspoSettings, Invalid> {
    EspoSettings::from_table(t, &["espo"], &env_of(pairs))
}

#[test]
fn defaults_are_espocrm_s() {
    let r = root();
    let s = load(table(&r, ""), &[]).unwrap();
    assert_eq!((s.host.as_str(), s.port), ("0.0.0.0", 8080));
    assert_eq!(s.zmq_endpoint, "tcp://127.0.0.1:5555");
    assert_eq!(s.app, "espo", "the only app is used");
    assert_eq!(s.keepalive, Duration::from_secs(60));
    assert_eq!(s.app_close, AppClose::Status0);
    assert_eq!(s.output_rule, OutputRule::LastLine);
    assert!(!s.debug && s.tls.is_none());
}

#[test]
fn espocrm_config_php_values_are_taken_as_they_are() {
    let r = root();
    let extra = "webSocketPort = '8081'\nwebSocketZeroMQSubscriberDsn = 'tcp://*:7777'\n\
                 webSocketZeroMQSubmissionDsn = 'tcp://espocrm-websocket:7777'\nwebSocketDebugMode = true\n\
                 webSocketUrl = 'wss://crm.example/wss'\nuseWebSocket = true\nwebSocketMessager = 'ZeroMQ'\n";
    let s = load(table(&r, extra), &[]).unwrap();
    assert_eq!(s.port, 8081);
    assert_eq!(s.zmq_endpoint, "tcp://0.0.0.0:7777", "libzmq's * means every interface");
    assert!(s.debug);
    assert_eq!(load(table(&r, "webSocketPort = 9000"), &[]).unwrap().port, 9000);
}

#[test]
fn docker_variables_override_the_file() {
    assert_eq!(env_name("webSocketZeroMQSubscriberDsn"), "ESPOCRM_CONFIG_WEB_SOCKET_ZERO_M_Q_SUBSCRIBER_DSN");
    assert_eq!(env_name("webSocketPort"), "ESPOCRM_CONFIG_WEB_SOCKET_PORT");
    let r = root();
    let s = load(
        table(&r, "webSocketPort = '8081'"),
        &[
            ("ESPOCRM_CONFIG_WEB_SOCKET_PORT", "8090"),
            ("ESPOCRM_CONFIG_WEB_SOCKET_ZERO_M_Q_SUBSCRIBER_DSN", "'tcp://*:7777'"),
            ("ESPOCRM_CONFIG_WEB_SOCKET_DEBUG_MODE", "true"),
        ],
    )
    .unwrap();
    assert_eq!((s.port, s.zmq_endpoint.as_str(), s.debug), (8090, "tcp://0.0.0.0:7777", true));
    let e = load(table(&r, ""), &[("ESPOCRM_CONFIG_WEB_SOCKET_DEBUG_MODE", "maybe")]).unwrap_err();
    assert!(e.from_env && e.key == "ESPOCRM_CONFIG_WEB_SOCKET_DEBUG_MODE", "{e:?}");
}

#[test]
fn bad_values_name_their_key() {
    let r = root();
    let key = |extra: &str| load(table(&r, extra), &[]).unwrap_err().key;
    assert_eq!(key("webSocketPort = 'http'"), "espocrm.webSocketPort");
    assert_eq!(key("webSocketPort = 70000"), "espocrm.webSocketPort");
    assert_eq!(key("webSocketZeroMQSubscriberDsn = 'ipc:///tmp/x'"), "espocrm.webSocketZeroMQSubscriberDsn");
    assert_eq!(key("webSocketMessager = 'RabbitMQ'"), "espocrm.webSocketMessager");
    assert_eq!(key("app = 'other'"), "espocrm.app");
    assert_eq!(key("application_close = 'slam'"), "espocrm.application_close");
    assert_eq!(key("max_concurrent_checks = 0"), "espocrm.max_concurrent_checks");
    assert_eq!(key("check_timeout = 0"), "espocrm.check_timeout");
    assert_eq!(key("webSocketUseSecureServer = true"), "espocrm.webSocketSslCertificateFile");
    assert_eq!(key("webSocketColour = 'red'"), "espocrm", "unknown keys are errors");
    let no_php = format!("espocrm_root = {:?}\nphpExecutablePath = '/nonexistent/php'\n", r.0.display().to_string());
    assert_eq!(load(toml::from_str(&no_php).unwrap(), &[]).unwrap_err().key, "espocrm.php_path");
    let no_root: toml::Table = toml::from_str("espocrm_root = '/nonexistent'\nphp_path = 'sh'").unwrap();
    assert_eq!(load(no_root, &[]).unwrap_err().key, "espocrm.espocrm_root");
}

#[test]
fn secure_mode_checks_the_certificate_files_and_defaults_to_8443() {
    let r = root();
    let cert = r.0.join("cert.pem");
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let extra = format!(
        "webSocketUseSecureServer = true\nwebSocketSslCertificateFile = {:?}\nwebSocketSslCertificatePassphrase = 'pw'\n",
        cert.display().to_string()
    );
    let s = load(table(&r, &extra), &[]).unwrap();
    assert_eq!(s.port, 8443);
    let tls = s.tls.unwrap();
    assert_eq!((tls.cert, tls.key, tls.passphrase.as_deref()), (cert, None, Some("pw")));
    let missing_key = format!("{extra}webSocketSslCertificateLocalPrivateKey = '/nonexistent/key.pem'\n");
    assert_eq!(load(table(&r, &missing_key), &[]).unwrap_err().key, "espocrm.webSocketSslCertificateLocalPrivateKey");
}
