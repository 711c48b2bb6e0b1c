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
    assert_eq!((s.host.as_str(), s.port), ("0.0.0.0", 6001));
}

#[test]
fn laravel_env_names_define_the_app() {
    let e = env(&[("PUSHER_APP_ID", "12"), ("PUSHER_APP_KEY", "k"), ("PUSHER_APP_SECRET", "s")]);
    let s = load(&ServeArgs::default(), &e).unwrap();
    assert!(!s.dev_credentials);
    assert_eq!((s.apps[0].id.as_str(), s.apps[0].key.as_str(), s.apps[0].secret.as_str()), ("12", "k", "s"));
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
    let f = file("[[apps]]\nid = \"a\"\nkey = \"\"\nsecret = \"c\"\n");
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let err = load(&args, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("apps[0].key"), "{err}");
}

#[test]
fn duplicate_keys_are_refused() {
    let f = file("[[apps]]\nid = \"a\"\nkey = \"k\"\nsecret = \"c\"\n[[apps]]\nid = \"b\"\nkey = \"k\"\nsecret = \"c\"\n");
    let args = ServeArgs { config: Some(f.0.clone()), ..Default::default() };
    let err = load(&args, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("apps[1].key"), "{err}");
}

#[test]
fn describe_redacts_secrets() {
    let e = env(&[("PUSHER_APP_SECRET", "hunter2")]);
    let text = describe(&load(&ServeArgs::default(), &e).unwrap());
    assert!(!text.contains("hunter2"));
    assert!(text.contains("<redacted>"));
}
