//! Tests of `config::load`: precedence, defaults, credentials and the keys errors name.

use std::io::Write;

use super::*;

fn env(map: &[(&str, &str)]) -> Env {
    Env::from_pairs(map.iter().copied())
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
    let (s, sources) = load_with_sources(&ServeArgs::default(), &e).unwrap();
    let text = describe(&s, &sources);
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
    let text = describe(&s, &load_with_sources(&args, &env(&[])).unwrap().1);
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

fn err_of(args: &ServeArgs, vars: &[(&str, &str)]) -> String {
    load(args, &env(vars)).unwrap_err().to_string()
}

#[test]
fn any_key_is_reachable_from_the_environment() {
    let creds = [("PUSHER_APP_ID", "12"), ("PUSHER_APP_KEY", "k"), ("PUSHER_APP_SECRET", SECRET)];
    let mut vars = creds.to_vec();
    vars.extend([
        ("HERALD__APPS__0__ENABLE_CLIENT_MESSAGES", "true"),
        ("HERALD__APPS__0__ALLOWED_ORIGINS", "https://a.example, https://b.example"),
        ("HERALD__SERVER__TRUSTED_PROXIES", "10.0.0.1"),
        ("HERALD__SERVER__SHUTDOWN_GRACE", "3"),
        ("HERALD__HISTORY__SNAPSHOT_FILE", "/tmp/h.json"),
    ]);
    let s = load(&ServeArgs::default(), &env(&vars)).unwrap();
    assert!(s.apps[0].enable_client_messages);
    assert_eq!(s.apps[0].allowed_origins, ["https://a.example", "https://b.example"]);
    assert_eq!(s.ops.trusted_proxies.len(), 1);
    assert_eq!(s.shutdown_grace, Duration::from_secs(3));
    assert_eq!(s.history.snapshot_file.as_deref(), Some(std::path::Path::new("/tmp/h.json")));
    // An id made of digits stays text.
    let s = load(
        &ServeArgs::default(),
        &env(&[("HERALD__APPS__0__ID", "123"), ("HERALD__APPS__0__KEY", "k"), ("HERALD__APPS__0__SECRET", SECRET)]),
    )
    .unwrap();
    assert_eq!((s.apps[0].id.as_str(), s.dev_credentials), ("123", false));
}

#[test]
fn per_app_variables_alone_shape_the_development_app() {
    let s = load(&ServeArgs::default(), &env(&[("HERALD__APPS__0__ENABLE_CLIENT_MESSAGES", "true")])).unwrap();
    assert!(s.dev_credentials && s.apps[0].enable_client_messages);
    assert_eq!((s.apps[0].key.as_str(), s.host.as_str()), ("app-key", "127.0.0.1"));
}

#[test]
fn unknown_or_unusable_variables_are_named() {
    let args = ServeArgs::default();
    let err = err_of(&args, &[("HERALD__SERVER__PROT", "7000")]);
    assert!(err.starts_with("environment: HERALD__SERVER__PROT:") && err.contains("unknown field"), "{err}");
    let err = err_of(&args, &[("HERALD__SERVR__PORT", "7000")]);
    assert!(err.starts_with("environment: HERALD__SERVR__PORT:"), "{err}");
    let err = err_of(&args, &[("HERALD__SERVER__PORT", "seventy")]);
    assert!(err.starts_with("environment: HERALD__SERVER__PORT:"), "{err}");
    let err = err_of(&args, &[("HERALD__SERVER__PORT", "70000")]);
    assert!(err.starts_with("environment: HERALD__SERVER__PORT:"), "{err}");
    let err = err_of(&args, &[("HERALD__APPS__2__ID", "x")]);
    assert!(err.starts_with("environment: HERALD__APPS__2__ID:") && err.contains("entries"), "{err}");
    let err = err_of(&args, &[("HERALD__SCALE_OUT__REPLAY_WINDOW_SECS", "1m")]);
    assert!(err.starts_with("environment: HERALD__SCALE_OUT__REPLAY_WINDOW_SECS:"), "{err}");
    // A value the schema takes but validation refuses is named by its variable too.
    let err = err_of(&args, &[("HERALD__APPS__0__ACTIVITY_TIMEOUT", "0")]);
    assert!(err.starts_with("environment: HERALD__APPS__0__ACTIVITY_TIMEOUT:"), "{err}");
    // Empty means unset.
    assert!(load(&args, &env(&[("HERALD__SERVER__PORT", "")])).is_ok());
}

#[test]
fn scale_out_from_the_environment_over_the_file() {
    let f = file("[scale_out]\nredis_url = \"redis://10.0.0.1\"\nprefix = \"app1\"\n");
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let s = load(&args, &env(&[("HERALD__SCALE_OUT__REDIS_URL", "redis+unix:///run/redis.sock")])).unwrap();
    let so = s.scale_out.unwrap();
    assert_eq!((so.redis_url.as_str(), so.prefix.as_str()), ("redis+unix:///run/redis.sock", "app1"));
    let vars = [("HERALD__SCALE_OUT__REDIS_CLUSTER", "redis://a:1, redis://b:2,redis://c:3")];
    let so = load(&ServeArgs::default(), &env(&vars)).unwrap().scale_out.unwrap();
    assert_eq!(so.redis_cluster, ["redis://a:1", "redis://b:2", "redis://c:3"]);
    let err = err_of(&ServeArgs::default(), &[("HERALD__SCALE_OUT__PREFIX", "p")]);
    assert!(err.starts_with("environment: scale_out.redis_url:"), "{err}");
}

#[test]
fn reverb_variables_configure_the_default_app_and_listener() {
    let vars = [
        ("REVERB_APP_ID", "417301"),
        ("REVERB_APP_KEY", "reverb-key"),
        ("REVERB_APP_SECRET", SECRET),
        ("REVERB_SERVER_HOST", "127.0.0.1"),
        ("REVERB_SERVER_PORT", "8080"),
        ("REVERB_APP_ACTIVITY_TIMEOUT", "30"),
        ("REVERB_APP_MAX_MESSAGE_SIZE", "10000"),
        ("REVERB_APP_ACCEPT_CLIENT_EVENTS_FROM", "members"),
    ];
    let s = load(&ServeArgs::default(), &env(&vars)).unwrap();
    assert_eq!((s.apps[0].id.as_str(), s.apps[0].key.as_str()), ("417301", "reverb-key"));
    assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", 8080));
    assert_eq!((s.apps[0].activity_timeout, s.apps[0].max_message_bytes), (30, 10_000));
    assert!(s.apps[0].enable_client_messages);
    // HERALD__ beats the alias; the flag beats both.
    let mut more = vars.to_vec();
    more.push(("HERALD__SERVER__PORT", "7000"));
    assert_eq!(load(&ServeArgs::default(), &env(&more)).unwrap().port, 7000);
    assert_eq!(load(&ServeArgs { port: Some(7001), ..Default::default() }, &env(&more)).unwrap().port, 7001);
    // Reverb's set beats Pusher's.
    more.extend([("PUSHER_APP_ID", "1"), ("PUSHER_APP_KEY", "pusher-key"), ("PUSHER_APP_SECRET", SECRET)]);
    assert_eq!(load(&ServeArgs::default(), &env(&more)).unwrap().apps[0].key, "reverb-key");
    let err = err_of(&ServeArgs::default(), &[("REVERB_APP_KEY", "k")]);
    assert!(err.starts_with("environment: REVERB_APP_ID, REVERB_APP_SECRET: missing"), "{err}");
    let err = err_of(
        &ServeArgs::default(),
        &[("REVERB_APP_ID", "1"), ("REVERB_APP_KEY", "k"), ("REVERB_APP_SECRET", "short")],
    );
    assert!(err.starts_with("environment: REVERB_APP_SECRET:"), "{err}");
}

#[test]
fn soketi_variables_configure_the_default_app() {
    let vars = [
        ("SOKETI_DEFAULT_APP_ID", "app-1"),
        ("SOKETI_DEFAULT_APP_KEY", "soketi-key"),
        ("SOKETI_DEFAULT_APP_SECRET", SECRET),
        ("SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES", "true"),
        ("SOKETI_DEFAULT_APP_MAX_CONNS", "250"),
        ("SOKETI_EVENT_MAX_SIZE_IN_KB", "100"),
        ("SOKETI_PRESENCE_MAX_MEMBERS", "50"),
        ("SOKETI_PORT", "6002"),
        ("SOKETI_SHUTDOWN_GRACE_PERIOD", "3000"),
        (
            "SOKETI_DEFAULT_APP_WEBHOOKS",
            r#"[{"url":"https://hooks.example/x","event_types":["channel_occupied"],"headers":{"X-Token":"tok-123"}}]"#,
        ),
    ];
    let s = load(&ServeArgs::default(), &env(&vars)).unwrap();
    let a = &s.apps[0];
    assert_eq!((a.key.as_str(), a.max_connections, a.max_event_data_bytes), ("soketi-key", 250, 102_400));
    assert!(a.enable_client_messages);
    assert_eq!((a.max_presence_members, s.port, s.shutdown_grace.as_secs()), (50, 6002, 3));
    assert_eq!(a.webhooks[0].url, "https://hooks.example/x");
    let err = err_of(&ServeArgs::default(), &[("SOKETI_DEFAULT_APP_WEBHOOKS", r#"[{"url":"x","lambda":{}}]"#)]);
    assert!(err.starts_with("environment: SOKETI_DEFAULT_APP_WEBHOOKS:"), "{err}");
}

#[test]
fn other_servers_variables_never_rewrite_the_file_s_apps() {
    let f = file(&format!("[[apps]]\nid = \"a\"\nkey = \"file-key\"\nsecret = \"{SECRET}\"\n"));
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let vars = [
        ("PUSHER_APP_ID", "1"),
        ("PUSHER_APP_KEY", "pusher-key"),
        ("PUSHER_APP_SECRET", SECRET),
        ("SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES", "true"),
    ];
    let s = load(&args, &env(&vars)).unwrap();
    assert_eq!((s.apps.len(), s.apps[0].key.as_str(), s.apps[0].enable_client_messages), (1, "file-key", false));
    let s = load(&args, &env(&[("HERALD__APPS__0__ENABLE_CLIENT_MESSAGES", "true")])).unwrap();
    assert!(s.apps[0].enable_client_messages, "HERALD__ does reach the file's apps");
}

#[test]
fn describe_names_every_value_s_source() {
    let f = file(&format!(
        "[server]\nport = 7000\n[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"{SECRET}\"\n[[apps.webhooks]]\nurl = \
         \"https://h.example/\"\nheaders = {{ Authorization = \"Bearer tok-9\" }}\n"
    ));
    let args = ServeArgs { config: Some(f.0.clone()), host: Some("127.0.0.1".into()), ..Default::default() };
    let vars = [("HERALD__APPS__0__MAX_CONNECTIONS", "9"), ("HERALD__SCALE_OUT__REDIS_URL", "redis://u:pw-77@h:6379")];
    let (s, sources) = load_with_sources(&args, &env(&vars)).unwrap();
    let text = describe(&s, &sources);
    let path = f.0.display();
    for line in [
        format!("port = 7000  # file {path}"),
        "host = \"127.0.0.1\"  # flag --host".to_owned(),
        "max_connections = 9  # env HERALD__APPS__0__MAX_CONNECTIONS".to_owned(),
        format!("url = \"https://h.example/\"  # file {path}"),
        "secret = \"<redacted>\"".to_owned(),
        "outbox_max_frames = ".to_owned(),
        "[history]".to_owned(),
        "redis_url = \"redis://<redacted>@h:6379\"  # env HERALD__SCALE_OUT__REDIS_URL".to_owned(),
        "enable_client_messages = false  # default".to_owned(),
    ] {
        assert!(text.contains(&line), "{line:?} missing from:\n{text}");
    }
    for secret in [SECRET, "tok-9", "pw-77"] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    assert!(toml::from_str::<toml::Table>(&text).is_ok(), "not TOML:\n{text}");
}

#[test]
fn a_listener_can_be_added_from_the_environment() {
    let vars = [("HERALD__LISTENERS__0__PORT", "7100"), ("HERALD__LISTENERS__0__PROTOCOL", "pusher")];
    let s = load(&ServeArgs::default(), &env(&vars)).unwrap();
    assert_eq!((s.listeners.len(), s.listeners[0].port), (1, 7100));
    let err = err_of(&ServeArgs::default(), &vars[..1]);
    assert!(err.starts_with("environment:") && err.contains("protocol"), "{err}");
}
