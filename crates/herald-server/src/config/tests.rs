//! Tests of `config::load`: precedence, defaults, credentials and the keys errors name.

use std::collections::HashMap;
use std::io::Write;

use super::*;

fn env(map: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = map.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
    move |k| map.get(k).cloned()
}

fn file(text: &str) -> tempfile_path::TempPath {
    tempfile_path::TempPath::with(text)
}

/// A tiny temp-file helper so the tests need no extra crate.
mod tempfile_path {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};
    pub(super) struct TempPath(pub(super) PathBuf);
    static N: AtomicU32 = AtomicU32::new(0);
    impl TempPath {
        pub(super) fn with(text: &str) -> Self {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("herald-cfg-{}-{n}.toml", std::process::id()));
            let mut f = std::fs::File::create(&p).unwrap();
            super::Write::write_all(&mut f, text.as_bytes()).unwrap();
            Self(p)
        }
    }
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn no_file_no_env_uses_development_credentials() {
    let s = load(&ServeArgs::default(), &env(&[])).unwrap();
    assert!(s.dev_credentials);
    assert_eq!((s.apps[0].id.as_str(), s.apps[0].key.as_str()), ("app-id", "app-key"));
    assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 6001), "the development app stays on loopback");
}

const SECRET: &str = "0123456789abcdef-not-a-placeholder";

#[test]
fn an_explicit_host_is_kept_with_development_credentials() {
    let args = ServeArgs { host: Some("0.0.0.0".into()), ..Default::default() };
    assert_eq!(load(&args, &env(&[])).unwrap().host, "0.0.0.0");
    let s = load(&ServeArgs::default(), &env(&[("HERALD__SERVER__HOST", "0.0.0.0")])).unwrap();
    assert_eq!(s.host, "0.0.0.0");
    let f = file("[server]\nhost = \"0.0.0.0\"\n");
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    assert_eq!(load(&args, &env(&[])).unwrap().host, "0.0.0.0");
}

#[test]
fn real_credentials_bind_every_interface_by_default() {
    let e = env(&[("PUSHER_APP_ID", "12"), ("PUSHER_APP_KEY", "k"), ("PUSHER_APP_SECRET", SECRET)]);
    assert_eq!(load(&ServeArgs::default(), &e).unwrap().host, "0.0.0.0");
}

#[test]
fn a_drop_in_profile_keeps_the_main_listener_on_loopback() {
    let e = env(&[("ORO_SECRET", "oro-kernel-secret")]);
    let args = ServeArgs { profile: Some("oro".into()), ..Default::default() };
    assert_eq!(load(&args, &e).unwrap().host, "127.0.0.1");
    let e = env(&[("ORO_SECRET", "oro-kernel-secret"), ("HERALD__SERVER__HOST", "0.0.0.0")]);
    assert_eq!(load(&args, &e).unwrap().host, "0.0.0.0");
}

#[test]
fn a_partial_pusher_environment_names_what_is_missing() {
    let err = load(&ServeArgs::default(), &env(&[("PUSHER_APP_SECRET", SECRET)])).unwrap_err().to_string();
    assert!(err.contains("PUSHER_APP_ID, PUSHER_APP_KEY"), "{err}");
    let e = env(&[("PUSHER_APP_ID", "1"), ("PUSHER_APP_KEY", "k")]);
    let err = load(&ServeArgs::default(), &e).unwrap_err().to_string();
    assert!(err.contains("environment: PUSHER_APP_SECRET:"), "{err}");
}

#[test]
fn weak_secrets_are_refused_with_their_key() {
    let e = env(&[("PUSHER_APP_ID", "1"), ("PUSHER_APP_KEY", "k"), ("PUSHER_APP_SECRET", "CHANGE-ME")]);
    let err = load(&ServeArgs::default(), &e).unwrap_err().to_string();
    assert!(err.contains("PUSHER_APP_SECRET"), "{err}");
    let f = file(&format!(
        "[[apps]]\nid = \"a\"\nkey = \"ka\"\nsecret = \"{SECRET}\"\n[[apps]]\nid = \"b\"\nkey = \"kb\"\nsecret = \"short\"\n"
    ));
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let err = load(&args, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("apps[1].secret"), "{err}");
}

#[test]
fn per_ip_limits_are_off_unless_set() {
    let s = load(&ServeArgs::default(), &env(&[])).unwrap();
    assert!(!s.ops.per_ip.any());
    let f = file("[server]\nmax_connections_per_ip = 3\nmax_new_connections_per_ip_per_second = 2\n");
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let s = load(&args, &env(&[("HERALD__SERVER__MAX_CONNECTIONS_PER_IP", "5")])).unwrap();
    assert_eq!((s.ops.per_ip.max_connections, s.ops.per_ip.max_new_per_second), (5, 2));
    let err = load(&args, &env(&[("HERALD__SERVER__MAX_NEW_CONNECTIONS_PER_IP_PER_SECOND", "x")])).unwrap_err();
    assert!(err.to_string().contains("HERALD__SERVER__MAX_NEW_CONNECTIONS_PER_IP_PER_SECOND"), "{err}");
}

#[test]
fn laravel_env_names_define_the_app() {
    let e = env(&[("PUSHER_APP_ID", "12"), ("PUSHER_APP_KEY", "k"), ("PUSHER_APP_SECRET", SECRET)]);
    let s = load(&ServeArgs::default(), &e).unwrap();
    assert!(!s.dev_credentials);
    assert_eq!((s.apps[0].id.as_str(), s.apps[0].key.as_str(), s.apps[0].secret.as_str()), ("12", "k", SECRET));
}

#[test]
fn cli_beats_env_beats_file() {
    let f = file("[server]\nhost = \"127.0.0.1\"\nport = 7000\n");
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    assert_eq!(load(&args, &env(&[])).unwrap().port, 7000);
    assert_eq!(load(&args, &env(&[("HERALD__SERVER__PORT", "7001")])).unwrap().port, 7001);
    let args = ServeArgs { port: Some(7002), ..args };
    assert_eq!(load(&args, &env(&[("HERALD__SERVER__PORT", "7001")])).unwrap().port, 7002);
}

#[test]
fn unknown_key_is_named() {
    let f = file("[[apps]]\nid = \"a\"\nkey = \"b\"\nsecret = \"c\"\nenable_client_mesages = true\n");
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let err = load(&args, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("enable_client_mesages"), "{err}");
}

#[test]
fn invalid_value_names_the_app_key() {
    let f = file(&format!("[[apps]]\nid = \"a\"\nkey = \"\"\nsecret = \"{SECRET}\"\n"));
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let err = load(&args, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("apps[0].key"), "{err}");
}

#[test]
fn duplicate_keys_are_refused() {
    let f = file(&format!(
        "[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"{SECRET}\"\n[[apps]]\nid = \"b\"\nkey = \"k\"\nsecret = \"{SECRET}\"\n"
    ));
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let err = load(&args, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("apps[1].key"), "{err}");
}

#[test]
fn describe_redacts_secrets() {
    let e = env(&[("PUSHER_APP_ID", "1"), ("PUSHER_APP_KEY", "k"), ("PUSHER_APP_SECRET", "hunter2-hunter2-hunter2")]);
    let text = describe(&load(&ServeArgs::default(), &e).unwrap());
    assert!(!text.contains("hunter2"));
    assert!(text.contains("<redacted>"));
}

#[test]
fn oro_tls_keys_are_checked_like_a_listener_s() {
    let e = env(&[("ORO_SECRET", "oro-kernel-secret")]);
    let f = file("[oro]\ntls_cert = \"leaf.pem\"\n");
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let err = load(&args, &e).unwrap_err().to_string();
    assert!(err.contains("oro.tls_key"), "{err}");

    let f = file("[oro]\ntls_cert = \"leaf.pem\"\ntls_key = \"leaf.key\"\n");
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let s = load(&args, &e).unwrap();
    let oro = s.listeners.iter().find(|l| matches!(l.profile, Profile::Oro(_))).unwrap();
    assert_eq!(oro.tls.as_ref().map(|t| t.key.clone()), Some("leaf.key".into()));
    assert_eq!(s.tls_files().count(), 1, "config check loads the Oro listener's certificate too");
    assert_eq!(oro_log_directives(&ServeArgs::default(), &s.listeners), Some("warn"));
    assert_eq!(oro_log_directives(&ServeArgs::default(), &[]), None);
}

#[test]
fn webhooks_are_parsed_and_checked_at_load() {
    let app = |hooks: &str| {
        format!("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"{SECRET}\"\nwebhook_batch_ms = 250\n{hooks}")
    };
    let good = file(&app("[[apps.webhooks]]\nurl = \"https://hooks.example.com/pusher\"\nevent_types = \
         [\"channel_vacated\", \"user_online\"]\nfilter = { channel_name_starts_with = \"private-\" }\nheaders = \
         { Authorization = \"Bearer t\" }\n"));
    let args = ServeArgs { config: Some(good.0.clone()), ..ServeArgs::default() };
    let s = load(&args, &env(&[])).unwrap();
    let hook = &s.apps[0].webhooks[0];
    assert_eq!(s.apps[0].webhook_batch_ms, 250);
    assert_eq!(s.apps[0].webhook_batch_max, 50);
    assert_eq!(hook.filter.channel_name_starts_with.as_deref(), Some("private-"));
    assert_eq!(hook.kinds(), vec![herald_core::EventKind::ChannelVacated, herald_core::EventKind::UserOnline]);
    let text = describe(&s);
    assert!(text.contains("https://hooks.example.com/pusher") && text.contains("channel_vacated"), "{text}");
    assert!(!text.contains("Bearer t"), "header values are redacted: {text}");

    for (hooks, key) in [
        ("[[apps.webhooks]]\nurl = \"ftp://x/\"\n", "apps[0].webhooks[0].url"),
        ("[[apps.webhooks]]\nurl = \"http:///nohost\"\n", "apps[0].webhooks[0].url"),
        (
            "[[apps.webhooks]]\nurl = \"http://a/\"\n[[apps.webhooks]]\nurl = \"http://b/\"\nevent_types = [\"channel_ocupied\"]\n",
            "apps[0].webhooks[1].event_types",
        ),
        (
            "[[apps.webhooks]]\nurl = \"http://a/\"\nheaders = { X-Pusher-Key = \"other\" }\n",
            "apps[0].webhooks[0].headers",
        ),
    ] {
        let f = file(&app(hooks));
        let args = ServeArgs { config: Some(f.0.clone()), ..ServeArgs::default() };
        let err = load(&args, &env(&[])).unwrap_err().to_string();
        assert!(err.contains(key), "{hooks}: {err}");
    }
}

#[test]
fn history_is_off_by_default_and_read_from_the_file_and_environment() {
    let s = load(&ServeArgs::default(), &env(&[])).unwrap();
    assert!(s.apps[0].history.is_empty());
    assert_eq!(s.history, HistorySettings::default());
    let f = file(&format!(
        "[history]\nmax_bytes = 4096\nsnapshot_file = \"/tmp/h.json\"\n\
         [[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"{SECRET}\"\n\
         [[apps.history]]\nchannels = \"orders-*\"\nmax_messages = 5\n[[apps.history]]\nchannels = \"*\"\n"
    ));
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let s = load(&args, &env(&[])).unwrap();
    assert_eq!(s.apps[0].history.len(), 2);
    assert_eq!((s.apps[0].history[0].max_messages, s.apps[0].history[1].max_age_secs), (5, 300));
    assert_eq!(s.history.max_bytes, 4096);
    assert_eq!(s.history.snapshot_file.as_deref(), Some(std::path::Path::new("/tmp/h.json")));
    let s = load(&args, &env(&[("HERALD__HISTORY__MAX_BYTES", "8192")])).unwrap();
    assert_eq!(s.history.max_bytes, 8192);
}

#[test]
fn bad_history_values_name_their_key() {
    let app = format!("[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"{SECRET}\"\n");
    for (extra, key) in [
        ("[[apps.history]]\nchannels = \"x\"\nmax_messages = 10001\n", "apps[0].history[0].max_messages"),
        ("[[apps.history]]\nchannels = \"a*b*\"\n", "apps[0].history[0].channels"),
        ("[[apps.history]]\nchannels = \"x\"\nmax_age_secs = 0\n", "apps[0].history[0].max_age_secs"),
    ] {
        let f = file(&format!("{app}{extra}"));
        let err = load(&ServeArgs { config: Some(f.0.clone()), ..Default::default() }, &env(&[])).unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
    let f = file(&format!("[history]\nmax_bytes = 10\n{app}"));
    let err = load(&ServeArgs { config: Some(f.0.clone()), ..Default::default() }, &env(&[])).unwrap_err();
    assert!(err.to_string().contains("history.max_bytes"), "{err}");
}
