//! Scale-out wiring: which backend the hub gets, from the `[scale_out]` settings.
//!
//! Without `[scale_out]` herald is one process and the hub gets [`LocalBackend`]. With it, the
//! hub gets the Redis backend of `herald-redis`, which shares every publication accepted on this
//! node with the others and delivers theirs here.

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
    let (backend, link) = RedisBackend::connect(&settings.redis_url, &settings.prefix, apps)
        .await
        .map_err(|source| ScaleOutError::Url { url: settings.redacted_url(), source })?;
    Ok((backend, Some(link.with_replay_window(settings.replay_window))))
}
