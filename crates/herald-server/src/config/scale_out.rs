//! The `[scale_out]` section: which Redis the nodes of a cluster share, the key prefix, and how
//! long Redis keeps publications for a node that lost its link.
//!
//! Only parsing and validation live here; the link itself is the `herald-redis` crate. Without
//! the section (which `HERALD__SCALE_OUT__REDIS_URL` also creates) herald is one process with
//! in-memory state.

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use super::layers::Sources;

/// Channel prefix when none is configured: the channels are `herald:{app_id}`.
const DEFAULT_PREFIX: &str = "herald";
/// Longest replay window accepted: a day of publications is more than Redis' memory is for.
const MAX_REPLAY_WINDOW_SECS: u64 = 86_400;

/// `[scale_out]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ScaleOutFile {
    redis_url: Option<String>,
    redis_cluster: Option<Vec<String>>,
    prefix: Option<String>,
    replay_window_secs: Option<u64>,
}

/// Validated scale-out settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleOutSettings {
    /// `redis://host:port/db` or `redis+unix:///path/to/redis.sock` (credentials allowed);
    /// empty when `redis_cluster` is set.
    pub redis_url: String,
    /// Seed nodes of a Redis Cluster (`redis://host:port`), instead of `redis_url`: publications
    /// are spread over the cluster's masters. Empty for a single Redis.
    pub redis_cluster: Vec<String>,
    /// Namespace of herald's Redis channels, so several clusters can share one Redis.
    pub prefix: String,
    /// How long each app's stream keeps publications, so a node whose link dropped delivers
    /// what was published meanwhile once it is back (`replay_window_secs`, default 60).
    pub replay_window: Duration,
}

impl ScaleOutSettings {
    /// The URL as it may be printed: credentials replaced by `<redacted>` (the seed URLs,
    /// comma-separated, for a cluster).
    pub fn redacted_url(&self) -> String {
        if self.redis_cluster.is_empty() {
            return herald_redis::redact_url(&self.redis_url);
        }
        self.redis_cluster.iter().map(|u| herald_redis::redact_url(u)).collect::<Vec<_>>().join(",")
    }
}

/// Builds the settings from the merged `[scale_out]` (the file with `HERALD__SCALE_OUT__*`
/// layered over it); `sources` names the layer at fault in errors.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the key when a URL cannot be used, both or neither of
/// `redis_url` and `redis_cluster` are set, the prefix is odd or the replay window is not 1 to
/// 86400 seconds.
pub(super) fn build(file: Option<&ScaleOutFile>, sources: &Sources) -> Result<Option<ScaleOutSettings>, ConfigError> {
    let Some(file) = file else { return Ok(None) };
    let (redis_url, redis_cluster) = match (file.redis_url.clone(), file.redis_cluster.clone()) {
        (Some(_), Some(_)) => {
            let problem = "and scale_out.redis_cluster are both set: name one Redis or one Redis Cluster".into();
            return Err(sources.invalid("scale_out.redis_url", problem));
        }
        (None, Some(seeds)) => {
            let invalid = |problem: String| sources.invalid("scale_out.redis_cluster", problem);
            if seeds.is_empty() {
                return Err(invalid("names no seed node".into()));
            }
            for seed in &seeds {
                herald_redis::check_url(seed).map_err(|problem| invalid(problem.to_string()))?;
                if seed.starts_with("redis+unix") || seed.starts_with("unix") {
                    return Err(invalid("a Redis Cluster is reached over TCP (redis:// or rediss://)".into()));
                }
            }
            (String::new(), seeds)
        }
        (Some(url), None) => {
            herald_redis::check_url(&url)
                .map_err(|problem| sources.invalid("scale_out.redis_url", problem.to_string()))?;
            (url, Vec::new())
        }
        (None, None) => {
            // Named by what is set, so that the message points at the line or variable.
            let set = ["scale_out.prefix", "scale_out.replay_window_secs"].into_iter().find(|k| sources.is_set(k));
            let problem = "(or scale_out.redis_cluster) is required to scale out".into();
            let origin = set.map_or_else(|| sources.origin(), |k| origin_of(sources, k));
            return Err(ConfigError::Invalid { origin, key: "scale_out.redis_url".into(), problem });
        }
    };
    let prefix = file.prefix.clone().unwrap_or_else(|| DEFAULT_PREFIX.to_owned());
    // No braces: in a Redis Cluster the first `{…}` of every key must be the shard's hash tag.
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':');
    if prefix.is_empty() || prefix.len() > 64 || !prefix.chars().all(valid) {
        let problem = format!("{prefix:?} must be 1-64 characters of A-Z a-z 0-9 _ - . :");
        return Err(sources.invalid("scale_out.prefix", problem));
    }
    let window = file.replay_window_secs.unwrap_or(herald_redis::DEFAULT_REPLAY_WINDOW.as_secs());
    if !(1..=MAX_REPLAY_WINDOW_SECS).contains(&window) {
        let problem = format!("{window} must be 1 to {MAX_REPLAY_WINDOW_SECS} seconds");
        return Err(sources.invalid("scale_out.replay_window_secs", problem));
    }
    Ok(Some(ScaleOutSettings { redis_url, redis_cluster, prefix, replay_window: Duration::from_secs(window) }))
}

/// `environment` or the file, as error messages name where `key` came from.
fn origin_of(sources: &Sources, key: &str) -> String {
    match sources.invalid(key, String::new()) {
        ConfigError::Invalid { origin, .. } => origin,
        _ => sources.origin(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Sources {
        Sources::default()
    }

    fn file(url: Option<&str>, prefix: Option<&str>) -> ScaleOutFile {
        ScaleOutFile {
            redis_url: url.map(Into::into),
            redis_cluster: None,
            prefix: prefix.map(Into::into),
            replay_window_secs: None,
        }
    }

    #[test]
    fn absent_section_is_single_node() {
        assert_eq!(build(None, &none()).ok().flatten(), None);
    }

    #[test]
    fn file_url_with_default_prefix() {
        let s = build(Some(&file(Some("redis://127.0.0.1:6379/0"), None)), &none());
        let s = s.ok().flatten();
        assert_eq!(s.map(|s| s.prefix), Some("herald".to_owned()));
    }

    #[test]
    fn bad_scheme_names_the_key() {
        let Err(e) = build(Some(&file(Some("http://x"), None)), &none()) else {
            panic!("accepted an http URL");
        };
        assert!(e.to_string().starts_with("defaults: scale_out.redis_url:"), "{e}");
    }

    #[test]
    fn prefix_without_url_is_refused() {
        let Err(e) = build(Some(&file(None, Some("x"))), &none()) else {
            panic!("accepted a section without a URL");
        };
        assert!(e.to_string().contains("scale_out.redis_url"), "{e}");
    }

    #[test]
    fn odd_prefix_is_refused() {
        let Err(e) = build(Some(&file(Some("redis://h"), Some("a b"))), &none()) else {
            panic!("accepted a prefix with a space");
        };
        assert!(e.to_string().contains("scale_out.prefix"), "{e}");
    }

    #[test]
    fn a_cluster_from_the_file() {
        let cluster = |seeds: &[&str]| ScaleOutFile {
            redis_cluster: Some(seeds.iter().map(|s| (*s).to_owned()).collect()),
            ..file(None, None)
        };
        let s = build(Some(&cluster(&["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])), &none());
        let s = s.ok().flatten().unwrap();
        assert_eq!((s.redis_url.as_str(), s.redis_cluster.len()), ("", 2));
        assert_eq!(s.redacted_url(), "redis://10.0.0.1:7000,redis://10.0.0.2:7000");
    }

    #[test]
    fn a_cluster_and_a_url_together_or_an_empty_cluster_are_refused() {
        let both = ScaleOutFile { redis_cluster: Some(vec!["redis://a:1".into()]), ..file(Some("redis://h"), None) };
        let Err(e) = build(Some(&both), &none()) else { panic!("accepted both") };
        assert!(e.to_string().contains("both set"), "{e}");
        let empty = ScaleOutFile { redis_cluster: Some(Vec::new()), ..file(None, None) };
        let Err(e) = build(Some(&empty), &none()) else { panic!("accepted no seeds") };
        assert!(e.to_string().contains("scale_out.redis_cluster"), "{e}");
        let unix = ScaleOutFile { redis_cluster: Some(vec!["redis+unix:///s.sock".into()]), ..file(None, None) };
        assert!(build(Some(&unix), &none()).is_err());
    }

    #[test]
    fn a_prefix_with_braces_is_refused() {
        let Err(e) = build(Some(&file(Some("redis://h"), Some("a{b}"))), &none()) else {
            panic!("accepted a prefix with braces");
        };
        assert!(e.to_string().contains("scale_out.prefix"), "{e}");
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
            redis_cluster: Vec::new(),
            prefix: "p".into(),
            replay_window: window,
        };
        assert_eq!(s.redacted_url(), "redis://<redacted>@h:6379/0");
        let s = ScaleOutSettings {
            redis_url: "redis+unix:///s.sock?pass=pw".into(),
            redis_cluster: Vec::new(),
            prefix: "p".into(),
            replay_window: window,
        };
        assert_eq!(s.redacted_url(), "redis+unix://<redacted>");
    }
}
