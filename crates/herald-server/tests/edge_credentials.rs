//! Credentials at start: a partial `PUSHER_APP_*` set and placeholder or short secrets stop
//! herald with exit code 64 naming the key; the built-in development app and a drop-in
//! profile keep the main listener on 127.0.0.1 unless a host is given.

#![allow(clippy::unwrap_used)]

use herald_test_support::process::{Herald, TempDir, herald_bin};

const GOOD_SECRET: &str = "a-long-random-test-secret-0123";

/// Starts herald expecting it to refuse; returns its stderr after checking the exit code.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let (code, stderr) = Herald::spawn_env(args, env, 1).err().expect("herald must refuse to start");
    assert_eq!(code, Some(64), "{stderr}");
    stderr
}

#[test]
fn a_partial_pusher_environment_exits_64_naming_the_missing_variables() {
    let args = ["serve", "--host", "127.0.0.1", "--port", "0"];
    let stderr = refused(&args, &[("PUSHER_APP_ID", "1"), ("PUSHER_APP_SECRET", GOOD_SECRET)]);
    assert!(stderr.contains("PUSHER_APP_KEY"), "{stderr}");
    let stderr = refused(&args, &[("PUSHER_APP_SECRET", GOOD_SECRET)]);
    assert!(stderr.contains("PUSHER_APP_ID, PUSHER_APP_KEY"), "{stderr}");
    let stderr = refused(&args, &[("PUSHER_APP_ID", "1"), ("PUSHER_APP_KEY", "key")]);
    assert!(stderr.contains("PUSHER_APP_SECRET"), "{stderr}");
}

#[test]
fn weak_secrets_exit_64_naming_the_key() {
    let args = ["serve", "--host", "127.0.0.1", "--port", "0"];
    for weak in ["", "CHANGE-ME", "changeme", "secret", "too-short", "CHANGE-ME-please-to-a-random-value"] {
        let env = [("PUSHER_APP_ID", "1"), ("PUSHER_APP_KEY", "key"), ("PUSHER_APP_SECRET", weak)];
        let stderr = refused(&args, &env);
        assert!(stderr.contains("PUSHER_APP_SECRET"), "{weak:?}: {stderr}");
        if weak.len() >= 9 {
            assert!(!stderr.contains(weak), "the secret is not echoed: {stderr}");
        }
    }

    let dir = TempDir::new("weak-secret");
    for weak in ["change-me", "short"] {
        let cfg = dir.write(
            "herald.toml",
            &format!(
                "[server]\nhost = \"127.0.0.1\"\nport = 0\n\n[[apps]]\nid = \"a\"\nkey = \"ka\"\nsecret = \"{GOOD_SECRET}\"\n\n\
                 [[apps]]\nid = \"b\"\nkey = \"kb\"\nsecret = \"{weak}\"\n"
            ),
        );
        let stderr = refused(&["serve", "-c", &cfg.display().to_string()], &[]);
        assert!(stderr.contains("apps[1].secret"), "{weak:?}: {stderr}");
    }
}

#[test]
fn the_shipped_espocrm_example_is_refused_until_its_secret_is_replaced() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/espocrm/herald-espocrm.toml");
    let out = std::process::Command::new(herald_bin())
        .args(["config", "check", "--config", example])
        .env_remove("PUSHER_APP_ID")
        .env_remove("PUSHER_APP_KEY")
        .env_remove("PUSHER_APP_SECRET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("apps[0].secret"), "{stderr}");
}

#[test]
fn good_credentials_from_the_environment_start() {
    let env = [("PUSHER_APP_ID", "1"), ("PUSHER_APP_KEY", "key"), ("PUSHER_APP_SECRET", GOOD_SECRET)];
    let h = Herald::spawn_env(&["serve", "--host", "127.0.0.1", "--port", "0"], &env, 1).unwrap();
    assert_eq!(h.addr().ip().to_string(), "127.0.0.1");
}

#[test]
fn the_development_app_binds_loopback_and_says_so() {
    let h = Herald::spawn(&["serve", "--port", "0"], 1).unwrap();
    assert_eq!(h.addr().ip().to_string(), "127.0.0.1", "no host given: loopback only");
    let warning = h.wait_log("DEVELOPMENT app");
    assert!(warning.contains("127.0.0.1 only"), "{warning}");

    // An explicit host is kept (a loopback address other than 127.0.0.1 shows it was taken).
    let h = Herald::spawn(&["serve", "--host", "127.0.0.2", "--port", "0"], 1).unwrap();
    assert_eq!(h.addr().ip().to_string(), "127.0.0.2");
    let h = Herald::spawn_env(&["serve", "--port", "0"], &[("HERALD__SERVER__HOST", "127.0.0.2")], 1).unwrap();
    assert_eq!(h.addr().ip().to_string(), "127.0.0.2");
}

#[test]
fn the_oro_profile_keeps_the_main_listener_on_loopback() {
    let env = [
        ("ORO_SECRET", "oro-kernel-secret"),
        ("ORO_WEBSOCKET_SERVER_DSN", "//127.0.0.1:0"),
        ("HERALD__SERVER__PORT", "0"),
    ];
    let h = Herald::spawn_env(&["serve", "--profile", "oro"], &env, 2).unwrap();
    let main = h.listening.iter().find(|(_, label)| label.is_none()).expect("the main listener").0;
    assert_eq!(main.ip().to_string(), "127.0.0.1");
}
