//! Opening the command connection, and the timings every reconnect, ping and shutdown of the
//! link follows. The backend connects once at start; the publisher and reader tasks reconnect
//! with the same helpers after a lost connection (the reader's connection is `subscriber::open`).

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisResult};
use tokio_util::sync::CancellationToken;

pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that stops answering pings is replaced (half-open TCP links).
pub(crate) const PING_EVERY: Duration = Duration::from_secs(5);
/// How long a stopping node keeps trying to hand its queue to Redis.
pub(crate) const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// Opens the command connection.
pub(crate) async fn connect_publisher(client: &Client) -> RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    client.get_multiplexed_async_connection_with_config(&config).await
}

/// Sleeps for the current backoff (doubling it) unless `stop` fires first; false on stop.
pub(crate) async fn back_off(backoff: &mut Duration, stop: &CancellationToken) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = stop.cancelled() => false,
    }
}
