//! Scale-out wiring: which backend the hub gets, from the `[scale_out]` settings.
//!
//! Without `[scale_out]` herald is one process and the hub gets [`LocalBackend`]. With it, the
//! hub gets the Redis backend of `herald-redis` (on one Redis, or on a Redis Cluster when
//! `redis_cluster` is set), which shares every publication accepted on this node with the
//! others and delivers theirs here.

use std::sync::Arc;

use herald_core::{AppRegistry, Backend, LocalBackend};
use herald_redis::{RedisBackend, RedisLink, UrlError};

use crate::config::ScaleOutSettings;

/// Why the scale-out backend could not be set up (a configuration problem: exit code 64).
#[derive(Debug, thiserror::Error)]
pub enum ScaleOutError {
    /// The Redis URL cannot be used.
    #[error("scale_out.redis_url {url}: {source}")]
    Url {
        /// The URL, credentials redacted.
        url: String,
        /// Why it cannot be used.
        #[source]
        source: UrlError,
    },
    /// `[[apps.history]]` with `redis_cluster`: the channels' shared histories live on one Redis.
    #[error(
        "apps[{app}].history: history is not available on a Redis Cluster yet (scale_out.redis_cluster); use scale_out.redis_url or remove [[apps.history]]"
    )]
    HistoryOnCluster {
        /// The id of the first app with history.
        app: String,
    },
}

/// The backend for these settings, and the Redis link to run when there is one.
///
/// Connects to Redis before returning (bounded by a short timeout), so that a node that
/// starts while Redis is up is subscribed before it accepts its first client; when Redis is
/// down the node still starts, reports the backend as down and keeps reconnecting.
///
/// # Errors
/// [`ScaleOutError`] when the URL cannot be used.
pub(crate) async fn start(
    settings: Option<&ScaleOutSettings>,
    apps: &AppRegistry,
) -> Result<(Arc<dyn Backend>, Option<RedisLink>), ScaleOutError> {
    let Some(settings) = settings else { return Ok((Arc::new(LocalBackend), None)) };
    // On one Redis a Lua script sequences each history channel's publications across nodes;
    // on a Redis Cluster the channel's history keys would have to share its shard's slot, which
    // the sharded publisher does not arrange yet. Refused rather than each node numbering alone.
    if !settings.redis_cluster.is_empty()
        && let Some(app) = apps.iter().find(|a| !a.config.history.is_empty())
    {
        return Err(ScaleOutError::HistoryOnCluster { app: app.config.id.clone() });
    }
    let connected = if settings.redis_cluster.is_empty() {
        RedisBackend::connect(&settings.redis_url, &settings.prefix, apps).await
    } else {
        RedisBackend::connect_cluster(&settings.redis_cluster, &settings.prefix, apps).await
    };
    let (backend, link) = connected.map_err(|source| ScaleOutError::Url { url: settings.redacted_url(), source })?;
    Ok((backend, Some(link.with_replay_window(settings.replay_window))))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use herald_core::AppConfig;
    use herald_core::app::HistoryConfig;

    use super::*;

    #[tokio::test]
    async fn history_on_a_redis_cluster_is_refused_before_connecting() {
        let app = |id: &str, history: Vec<HistoryConfig>| AppConfig {
            id: id.into(),
            key: format!("k{id}"),
            secret: "s".into(),
            history,
            ..AppConfig::default()
        };
        let history = vec![HistoryConfig { channels: "orders-*".into(), ..HistoryConfig::default() }];
        let apps = AppRegistry::new(vec![app("1", Vec::new()), app("2", history)]).unwrap();
        // Nothing listens there: the refusal comes first.
        let settings = ScaleOutSettings {
            redis_url: String::new(),
            redis_cluster: vec!["redis://127.0.0.1:1".into()],
            prefix: "p".into(),
            replay_window: Duration::from_secs(60),
        };
        let err = start(Some(&settings), &apps).await.err().unwrap();
        assert!(matches!(&err, ScaleOutError::HistoryOnCluster { app } if app == "2"), "{err}");
        assert!(err.to_string().contains("history is not available on a Redis Cluster yet"), "{err}");
    }
}
