//! The `[scale_out]` section: which Redis the nodes of a cluster share, the key prefix, and how
//! long Redis keeps publications for a node that lost its link.
//!
//! Only parsing and validation live here; the link itself is the `herald-redis` crate. Without
//! the section (and without `HERALD__SCALE_OUT__REDIS_URL`) herald is one process with
//! in-memory state, as before.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;

/// Channel prefix when none is configured: the channels are `herald:{app_id}`.
const DEFAULT_PREFIX: &str = "herald";
/// Longest replay window accepted: a day of publications is more than Redis' memory is for.
const MAX_REPLAY_WINDOW_SECS: u64 = 86_400;

/// `[scale_out]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScaleOutFile {
    redis_url: Option<String>,
    prefix: Option<String>,
    replay_window_secs: Option<u64>,
}

/// Validated scale-out settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleOutSettings {
    /// `redis://host:port/db` or `redis+unix:///path/to/redis.sock` (credentials allowed).
    pub redis_url: String,
    /// Namespace of herald's Redis channels, so several clusters can share one Redis.
    pub prefix: String,
    /// How long each app's stream keeps publications, so a node whose link dropped delivers
    /// what was published meanwhile once it is back (`replay_window_secs`, default 60).
    pub replay_window: Duration,
}

impl ScaleOutSettings {
    /// The URL as it may be printed: credentials replaced by `<redacted>`.
    pub fn redacted_url(&self) -> String {
        herald_redis::redact_url(&self.redis_url)
    }
}

/// Builds the settings from the file's `[scale_out]`, overridden by the environment
/// (`HERALD__SCALE_OUT__REDIS_URL`, `HERALD__SCALE_OUT__PREFIX`,
/// `HERALD__SCALE_OUT__REPLAY_WINDOW_SECS`).
///
/// # Errors
/// [`ConfigError::Invalid`] naming the key when the URL cannot be used, the prefix is odd or the
/// replay window is not 1 to 86400 seconds.
pub(super) fn build(
    file: Option<&ScaleOutFile>,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ScaleOutSettings>, ConfigError> {
    let from_env = |k: &str| env(k).filter(|v| !v.is_empty());
    let (url, url_origin) = match from_env("HERALD__SCALE_OUT__REDIS_URL") {
        Some(u) => (Some(u), "environment"),
        None => (file.and_then(|f| f.redis_url.clone()), origin),
    };
    let (prefix, prefix_origin) = match from_env("HERALD__SCALE_OUT__PREFIX") {
        Some(p) => (Some(p), "environment"),
        None => (file.and_then(|f| f.prefix.clone()), origin),
    };
    let Some(redis_url) = url else {
        if file.is_some() || prefix.is_some() {
            return Err(invalid(prefix_origin, "scale_out.redis_url", "is required to scale out".into()));
        }
        return Ok(None);
    };
    herald_redis::check_url(&redis_url)
        .map_err(|problem| invalid(url_origin, "scale_out.redis_url", problem.to_string()))?;
    let prefix = prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if prefix.is_empty() || prefix.len() > 64 || !prefix.chars().all(valid) {
        let problem = format!("{prefix:?} must be 1-64 characters of A-Z a-z 0-9 _ - . :");
        return Err(invalid(prefix_origin, "scale_out.prefix", problem));
    }
    let (window, window_origin) = match from_env("HERALD__SCALE_OUT__REPLAY_WINDOW_SECS") {
        Some(w) => {
            let secs = w.parse::<u64>().map_err(|_| {
                invalid("environment", "scale_out.replay_window_secs", format!("{w:?} is not a number of seconds"))
            })?;
            (Some(secs), "environment")
        }
        None => (file.and_then(|f| f.replay_window_secs), origin),
    };
    let window = window.unwrap_or(herald_redis::DEFAULT_REPLAY_WINDOW.as_secs());
    if !(1..=MAX_REPLAY_WINDOW_SECS).contains(&window) {
        let problem = format!("{window} must be 1 to {MAX_REPLAY_WINDOW_SECS} seconds");
        return Err(invalid(window_origin, "scale_out.replay_window_secs", problem));
    }
    Ok(Some(ScaleOutSettings { redis_url, prefix, replay_window: Duration::from_secs(window) }))
}

fn invalid(origin: &str, key: &str, problem: String) -> ConfigError {
    ConfigError::Invalid { origin: origin.to_owned(), key: key.to_owned(), problem }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |k| map.get(k).cloned()
    }

    fn file(url: Option<&str>, prefix: Option<&str>) -> ScaleOutFile {
        ScaleOutFile { redis_url: url.map(Into::into), prefix: prefix.map(Into::into), replay_window_secs: None }
    }

    #[test]
    fn absent_section_is_single_node() {
        assert_eq!(build(None, "f.toml", &env_of(&[])).ok().flatten(), None);
    }

    #[test]
    fn file_url_with_default_prefix() {
        let s = build(Some(&file(Some("redis://127.0.0.1:6379/0"), None)), "f.toml", &env_of(&[]));
        let s = s.ok().flatten();
        assert_eq!(s.map(|s| s.prefix), Some("herald".to_owned()));
    }

    #[test]
    fn environment_wins_and_unix_sockets_are_accepted() {
        let env = env_of(&[("HERALD__SCALE_OUT__REDIS_URL", "redis+unix:///run/redis.sock")]);
        let s = build(Some(&file(Some("redis://10.0.0.1"), Some("app1"))), "f.toml", &env).ok().flatten();
        assert_eq!(
            s,
            Some(ScaleOutSettings {
                redis_url: "redis+unix:///run/redis.sock".into(),
                prefix: "app1".into(),
                replay_window: Duration::from_secs(60),
            })
        );
    }

    #[test]
    fn bad_scheme_names_the_key() {
        let Err(e) = build(Some(&file(Some("http://x"), None)), "f.toml", &env_of(&[])) else {
            panic!("accepted an http URL");
        };
        assert!(e.to_string().starts_with("f.toml: scale_out.redis_url:"), "{e}");
    }

    #[test]
    fn prefix_without_url_is_refused() {
        let Err(e) = build(Some(&file(None, Some("x"))), "f.toml", &env_of(&[])) else {
            panic!("accepted a section without a URL");
        };
        assert!(e.to_string().contains("scale_out.redis_url"), "{e}");
    }

    #[test]
    fn odd_prefix_is_refused() {
        let Err(e) = build(Some(&file(Some("redis://h"), Some("a b"))), "f.toml", &env_of(&[])) else {
            panic!("accepted a prefix with a space");
        };
        assert!(e.to_string().contains("scale_out.prefix"), "{e}");
    }

    #[test]
    fn replay_window_from_file_or_environment_within_bounds() {
        let with_window = |secs| ScaleOutFile { replay_window_secs: Some(secs), ..file(Some("redis://h"), None) };
        let s = build(Some(&with_window(5)), "f.toml", &env_of(&[])).ok().flatten();
        assert_eq!(s.map(|s| s.replay_window), Some(Duration::from_secs(5)));
        let env = env_of(&[("HERALD__SCALE_OUT__REPLAY_WINDOW_SECS", "300")]);
        let s = build(Some(&with_window(5)), "f.toml", &env).ok().flatten();
        assert_eq!(s.map(|s| s.replay_window), Some(Duration::from_secs(300)));
        for (f, env, origin) in [
            (with_window(0), env_of(&[]), "f.toml"),
            (with_window(86_401), env_of(&[]), "f.toml"),
            (with_window(5), env_of(&[("HERALD__SCALE_OUT__REPLAY_WINDOW_SECS", "1m")]), "environment"),
        ] {
            let Err(e) = build(Some(&f), "f.toml", &env) else { panic!("accepted {f:?}") };
            assert!(e.to_string().starts_with(&format!("{origin}: scale_out.replay_window_secs:")), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let Err(e) = toml::from_str::<ScaleOutFile>("redis_url = \"redis://h\"\nredis_host = \"h\"\n") else {
            panic!("accepted an unknown key");
        };
        assert!(e.to_string().contains("redis_host"), "{e}");
    }

    #[test]
    fn credentials_are_redacted() {
        let window = Duration::from_secs(60);
        let s = ScaleOutSettings {
            redis_url: "redis://user:pw@h:6379/0".into(),
            prefix: "p".into(),
            replay_window: window,
        };
        assert_eq!(s.redacted_url(), "redis://<redacted>@h:6379/0");
        let s = ScaleOutSettings {
            redis_url: "redis+unix:///s.sock?pass=pw".into(),
            prefix: "p".into(),
            replay_window: window,
        };
        assert_eq!(s.redacted_url(), "redis+unix://<redacted>");
    }
}
