//! ZeroMQ PULL ingress: binds an endpoint that libzmq PUSH peers (php-zmq, pyzmq) connect to,
//! and hands every single-part message to a sink (EspoCRM's `ZeroMQSender`).
//!
//! The sink runs on the receive task and must not block: the EspoCRM sink publishes to the hub,
//! which only queues frames. Multi-part messages are dropped with a log line.

use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use zeromq::{PullSocket, Socket, SocketRecv, ZmqError};

/// Pause after a receive error that is not about one peer, so a broken socket cannot spin.
const ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// What receives each message.
pub(crate) type Sink = Box<dyn FnMut(Bytes) + Send>;

/// A bound PULL socket, not yet receiving.
pub(crate) struct PullIngress {
    socket: PullSocket,
    endpoint: String,
    sink: Sink,
}

impl std::fmt::Debug for PullIngress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullIngress").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl PullIngress {
    /// Binds `endpoint` (`tcp://host:port`; port 0 picks a free one).
    ///
    /// # Errors
    /// The bind error (address in use, bad endpoint...).
    pub(crate) async fn bind(endpoint: &str, sink: Sink) -> Result<Self, ZmqError> {
        let mut socket = PullSocket::new();
        let bound = socket.bind(endpoint).await?;
        Ok(Self { socket, endpoint: bound.to_string(), sink })
    }

    /// The endpoint actually bound (with the real port).
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Receives until `stop` is cancelled.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        loop {
            let received = tokio::select! {
                () = stop.cancelled() => break,
                r = self.socket.recv() => r,
            };
            match received {
                Ok(msg) if msg.len() == 1 => {
                    if let Some(frame) = msg.into_vec().pop() {
                        (self.sink)(frame);
                    }
                }
                Ok(msg) => {
                    tracing::warn!(endpoint = %self.endpoint, parts = msg.len(), "dropping a multi-part ZeroMQ message");
                }
                Err(ZmqError::NoMessage) => tokio::time::sleep(ERROR_BACKOFF).await,
                // One peer's broken stream; the socket and the other peers carry on.
                Err(e) => tracing::debug!(endpoint = %self.endpoint, error = %e, "ZeroMQ peer error"),
            }
        }
        for e in self.socket.close().await {
            tracing::debug!(error = %e, "closing the ZeroMQ socket");
        }
    }
}
