//! Tests of the Oro configuration: ORO_* variables, the [oro] section, flags and log levels.

use std::collections::HashMap;

use super::*;

fn args(profile: bool) -> ServeArgs {
    ServeArgs { profile: profile.then(|| "oro".to_owned()), ..ServeArgs::default() }
}

fn run(
    args: &ServeArgs,
    file: Option<&OroFile>,
    vars: &[(&str, &str)],
) -> Result<(Option<OroListener>, Vec<AppConfig>), Invalid> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let env = |k: &str| map.get(k).cloned();
    let mut apps = Vec::new();
    let l = configure(args, file, "herald.toml", &env, &mut apps)?;
    Ok((l, apps))
}

fn oro(l: &OroListener) -> &OroSettings {
    &l.settings
}

#[test]
fn off_without_the_flag_or_section() {
    assert!(run(&args(false), None, &[("ORO_SECRET", "s")]).unwrap().0.is_none());
}

#[test]
fn oro_environment_configures_the_listener_and_app() {
    let (l, apps) = run(
        &args(true),
        None,
        &[
            ("ORO_SECRET", "ThisTokenIsNotSoSecretChangeIt"),
            ("ORO_WEBSOCKET_SERVER_DSN", "//0.0.0.0:8080"),
            ("ORO_WEBSOCKET_FRONTEND_DSN", "//*:443/ws"),
            ("ORO_WEBSOCKET_BACKEND_DSN", "tcp://127.0.0.1:8080"),
            ("ORO_DB_DSN", "postgres://oro:pw@127.0.0.1:5432/oro_db?sslmode=disable&serverVersion=13.7"),
        ],
    )
    .unwrap();
    let l = l.unwrap();
    assert_eq!((l.host.as_str(), l.port), ("0.0.0.0", 8080));
    assert_eq!(l.settings.app, "oro");
    let o = oro(&l);
    assert_eq!(o.secret.0, "ThisTokenIsNotSoSecretChangeIt");
    assert_eq!(o.frontend.as_ref().map(|d| (d.host.as_str(), d.path.as_str())), Some(("*", "/ws")));
    assert_eq!(o.backend.as_ref().map(|d| d.port), Some(Some(8080)));
    assert_eq!(o.db.as_ref().map(|d| d.path.as_str()), Some("/oro_db"));
    assert!(!format!("{o:?}").contains("ThisTokenIsNotSoSecretChangeIt"), "secrets stay out of Debug");
    assert!(!format!("{o:?}").contains("pw"), "so do database passwords");
    assert_eq!(apps.len(), 1);
    assert_eq!((apps[0].id.as_str(), apps[0].secret.as_str()), ("oro", "ThisTokenIsNotSoSecretChangeIt"));
}

#[test]
fn server_dsn_like_parse_url_with_default_port_and_defaults() {
    let (l, _) = run(&args(true), None, &[("ORO_SECRET", "s"), ("ORO_WEBSOCKET_SERVER_DSN", "//127.0.0.1")]).unwrap();
    let l = l.unwrap();
    assert_eq!((l.host.as_str(), l.port), ("127.0.0.1", 8080));
    let (l, _) = run(&args(true), None, &[("ORO_SECRET", "s")]).unwrap();
    let l = l.unwrap();
    assert_eq!((l.host.as_str(), l.port), ("0.0.0.0", 8080), "Oro's default //0.0.0.0:8080");
}

#[test]
fn empty_host_refuses_to_start_naming_the_variable() {
    let err = run(&args(true), None, &[("ORO_SECRET", "s"), ("ORO_WEBSOCKET_SERVER_DSN", ":8080")]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("ORO_WEBSOCKET_SERVER_DSN") && msg.contains("no host"), "{msg}");
    let err =
        run(&args(true), None, &[("ORO_SECRET", "s"), ("ORO_WEBSOCKET_SERVER_DSN", "//0.0.0.0:99999")]).unwrap_err();
    assert!(err.to_string().contains("ORO_WEBSOCKET_SERVER_DSN"));
}

#[test]
fn host_and_port_flags_override_the_dsn() {
    let a = ServeArgs { host: Some("127.0.0.1".into()), port: Some(0), ..args(true) };
    let (l, _) = run(&a, None, &[("ORO_SECRET", "s"), ("ORO_WEBSOCKET_SERVER_DSN", "//0.0.0.0:8080")]).unwrap();
    let l = l.unwrap();
    assert_eq!((l.host.as_str(), l.port), ("127.0.0.1", 0));
    // --host fills a DSN without host.
    let a = ServeArgs { host: Some("127.0.0.1".into()), ..args(true) };
    assert!(run(&a, None, &[("ORO_SECRET", "s"), ("ORO_WEBSOCKET_SERVER_DSN", ":8080")]).is_ok());
}

#[test]
fn secret_is_required_and_brace_free() {
    let err = run(&args(true), None, &[]).unwrap_err().to_string();
    assert!(err.contains("ORO_SECRET"), "{err}");
    let err = run(&args(true), None, &[("ORO_SECRET", "a{b}")]).unwrap_err().to_string();
    assert!(err.contains("ORO_SECRET") && err.contains('{'), "{err}");
}

#[test]
fn database_must_be_postgres_and_falls_back_to_oro_db_url() {
    let (l, _) = run(&args(true), None, &[("ORO_SECRET", "s"), ("ORO_DB_URL", "postgresql://u@db/oro")]).unwrap();
    assert_eq!(oro(&l.unwrap()).db.as_ref().map(|d| d.host.as_str()), Some("db"));
    let err = run(&args(true), None, &[("ORO_SECRET", "s"), ("ORO_DB_DSN", "mysql://u@db/oro")]).unwrap_err();
    assert!(err.to_string().contains("ORO_DB_DSN"));
}

#[test]
fn file_section_enables_and_environment_wins() {
    let file: OroFile = toml::from_str(
        r#"
        app = "crm"
        secret = "from-file"
        server_dsn = "//127.0.0.1:9000"
        allowed_origins = ["crm.example.com"]
        publishers = "backend"
        share_broadcasts = true
        application_close = "normal"
        ping_interval = 0.5
        [[routes]]
        channel = "acme/chat/{user_id}"
        access = "secured"
        requirements = { user_id = '\d+' }
        "#,
    )
    .unwrap();
    let (l, apps) = run(&args(false), Some(&file), &[("ORO_SECRET", "from-env")]).unwrap();
    let l = l.unwrap();
    assert_eq!((l.host.as_str(), l.port), ("127.0.0.1", 9000));
    let o = oro(&l);
    assert_eq!((o.app.as_str(), o.secret.0.as_str()), ("crm", "from-env"));
    assert_eq!(o.publishers, Publishers::Backend);
    assert!(o.share_broadcasts);
    assert_eq!(o.application_close, AppClose::Normal);
    assert_eq!(o.ping_interval, Duration::from_millis(500));
    assert_eq!(o.routes.len(), 1);
    assert_eq!(apps[0].id, "crm");
}

#[test]
fn bad_routes_and_intervals_are_config_errors() {
    let file: OroFile = toml::from_str("[[routes]]\nchannel = \"a/{x}\"\naccess = \"secured\"\n").unwrap();
    let err = run(&args(true), Some(&file), &[("ORO_SECRET", "s")]).unwrap_err().to_string();
    assert!(err.contains("oro.routes"), "{err}");
    let file: OroFile = toml::from_str("ping_interval = 0").unwrap();
    assert!(run(&args(true), Some(&file), &[("ORO_SECRET", "s")]).is_err());
    assert!(toml::from_str::<OroFile>("bogus = 1").is_err(), "unknown keys are refused");
}

#[test]
fn existing_app_is_reused() {
    let map: HashMap<&str, &str> = [("ORO_SECRET", "s")].into();
    let env = |k: &str| map.get(k).map(|v| (*v).to_owned());
    let mut apps = vec![AppConfig { id: "oro".into(), key: "k".into(), secret: "own".into(), ..AppConfig::default() }];
    configure(&args(true), None, "f", &env, &mut apps).unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].secret, "own");
}

#[test]
fn the_oro_app_is_the_profile_s_own_unless_broadcasts_are_shared() {
    let (_, apps) = run(&args(true), None, &[("ORO_SECRET", "s")]).unwrap();
    assert!(apps[0].profile_only, "closed to the main listener by default");
    let file: OroFile = toml::from_str("share_broadcasts = true").unwrap();
    let (_, apps) = run(&args(true), Some(&file), &[("ORO_SECRET", "s")]).unwrap();
    assert!(!apps[0].profile_only);
    let map: HashMap<&str, &str> = [("ORO_SECRET", "s")].into();
    let env = |k: &str| map.get(k).map(|v| (*v).to_owned());
    let mut apps = vec![
        AppConfig { id: "oro".into(), key: "k".into(), secret: "own".into(), wamp: true, ..AppConfig::default() },
        AppConfig { id: "other".into(), key: "o".into(), secret: "x".into(), ..AppConfig::default() },
    ];
    configure(&args(true), None, "f", &env, &mut apps).unwrap();
    assert!(apps[0].profile_only, "an [[apps]] entry of the Oro app is closed too, wamp or not");
    assert!(!apps[1].profile_only, "other apps are left alone");
}

#[test]
fn log_levels_follow_oro() {
    let level = |verbose: u8, quiet: bool, env: Option<&str>| {
        let a = ServeArgs { verbose, quiet, app_env: env.map(str::to_owned), ..args(true) };
        Some(log_directives(&a))
    };
    assert_eq!(level(0, false, None), Some("warn"));
    assert_eq!(level(0, false, Some("prod")), Some("warn"));
    assert_eq!(level(1, false, None), Some("warn,herald_server::profile::oro=info"));
    assert_eq!(level(2, false, None), Some("info"));
    assert_eq!(level(3, false, None), Some("debug"));
    assert_eq!(level(0, true, None), Some("error"));
    assert_eq!(level(0, false, Some("dev")), Some("info"));
    assert_eq!(level(1, false, Some("dev")), Some("debug"));
}

#[test]
fn describe_leaves_secrets_out() {
    let (l, _) =
        run(&args(true), None, &[("ORO_SECRET", "sekrit"), ("ORO_DB_DSN", "postgres://oro:pw-123@db:5432/oro")])
            .unwrap();
    let l = l.unwrap();
    let mut out = String::new();
    oro(&l).describe(&l.host, l.port, &mut out);
    assert!(out.contains("[oro]") && out.contains("postgres://db:5432/oro") && out.contains("publishers = \"any\""));
    assert!(!out.contains("sekrit") && !out.contains("pw-123"), "{out}");
}
