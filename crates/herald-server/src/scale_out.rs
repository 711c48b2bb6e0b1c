//! Scale-out: several herald nodes share every publication through Redis pub/sub.
//!
//! Without `[scale_out]` herald is one process and the hub gets [`LocalBackend`]. With it, the
//! hub gets a [`RedisBackend`]: every publication accepted on this node (HTTP API, client
//! events, WAMP publishes, ingress: they all end in `Hub::publish`) is delivered locally as
//! before and queued for Redis, where the other nodes read it and call `Hub::deliver`.
//! What crosses nodes is the [`envelope`]; how it travels is [`redis`]. There is no cluster
//! protocol of our own: nodes never talk to each other, only to Redis.

pub(crate) mod envelope;
pub(crate) mod redis;

use std::sync::Arc;

use herald_core::{AppRegistry, Backend, LocalBackend};

use crate::config::ScaleOutSettings;
pub(crate) use self::redis::{RedisBackend, RedisLink};

/// Why the scale-out backend could not be set up (a configuration problem: exit code 64).
#[derive(Debug, thiserror::Error)]
pub enum ScaleOutError {
    /// The Redis URL was refused by the client library.
    #[error("scale_out.redis_url {url}: {source}")]
    Url {
        /// The URL, credentials redacted.
        url: String,
        /// Why the client refused it.
        #[source]
        source: ::redis::RedisError,
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
    let (backend, link) = RedisBackend::connect(settings, apps).await?;
    Ok((backend, Some(link)))
}
