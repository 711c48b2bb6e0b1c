//! The subscriber task: reads the app channels and delivers the other nodes' publications into
//! the local hub, resubscribing after a lost connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use herald_core::{App, Hub};
use redis::aio::PubSub;
use redis::{Client, Msg};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::connect::{BACKOFF_MIN, PING_EVERY, RESPONSE_TIMEOUT, back_off, connect_subscriber};
use crate::inbound::{Inbound, Verdict};
use crate::state::LinkState;

/// Delivers other nodes' publications into the local hub.
pub(crate) struct Subscriber {
    pub(crate) client: Client,
    /// App of each Redis channel.
    pub(crate) apps: HashMap<Arc<str>, Arc<App>>,
    pub(crate) inbound: Inbound,
    pub(crate) state: Arc<LinkState>,
    pub(crate) hub: Arc<Hub>,
}

impl Subscriber {
    pub(crate) async fn run(mut self, mut first: Option<PubSub>, stop: CancellationToken) {
        let names: Vec<Arc<str>> = self.apps.keys().cloned().collect();
        let mut backoff = BACKOFF_MIN;
        loop {
            let pubsub = match first.take() {
                Some(p) => p,
                None => match connect_subscriber(&self.client, &names).await {
                    Ok(p) => {
                        tracing::info!("scale-out: redis subscription is back");
                        p
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "scale-out: redis subscriber still unreachable");
                        if back_off(&mut backoff, &stop).await {
                            continue;
                        }
                        return;
                    }
                },
            };
            self.state.subscriber_up.store(true, Ordering::Release);
            backoff = BACKOFF_MIN;
            let stopped = self.pump(pubsub, &stop).await;
            self.state.subscriber_up.store(false, Ordering::Release);
            if stopped {
                return;
            }
            tracing::warn!("scale-out: redis subscription lost; reconnecting");
        }
    }

    /// Delivers messages until the connection ends (false) or `stop` fires (true).
    async fn pump(&mut self, pubsub: PubSub, stop: &CancellationToken) -> bool {
        let (mut sink, mut stream) = pubsub.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(m) => self.on_message(&m),
                    None => return false,
                },
                _ = ping.tick() => {
                    let answer = timeout(RESPONSE_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(answer, Ok(Ok(_))) {
                        return false;
                    }
                }
                () = stop.cancelled() => return true,
            }
        }
    }

    fn on_message(&mut self, msg: &Msg) {
        let channel = msg.get_channel_name();
        let Some(app) = self.apps.get(channel) else { return };
        match self.inbound.receive(msg.get_payload_bytes()) {
            Verdict::Deliver(publication) => {
                self.hub.deliver(app, &publication);
                self.state.received.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Own | Verdict::Duplicate => {}
            Verdict::Foreign { error, first } => {
                self.state.refused_version.fetch_add(1, Ordering::Relaxed);
                // Every envelope of that node would log the same line: once per node and version.
                if first {
                    tracing::error!(
                        channel,
                        "scale-out: {error}; run one herald version per Redis prefix during a rolling upgrade \
                         (its publications are not delivered on this node)"
                    );
                }
            }
            Verdict::Malformed(error) => {
                tracing::warn!(%error, channel, "scale-out: envelope ignored");
            }
        }
    }
}
