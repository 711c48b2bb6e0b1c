//! The subscribers of a run: opening them at a bounded pace and concurrency, keeping each one
//! reading and recording deliveries, and closing them all.
//!
//! Every subscriber is one task on the generator's single thread. Opening is paced (at most
//! `rate` new connections per second) and bounded (at most `in_flight` handshakes at once, 200
//! by default): a server's listen backlog is 128–1024, and a burst beyond it turns into SYN
//! retransmits that measure the kernel, not the server.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::clock;
use crate::error::BenchError;
use crate::payload;
use crate::pusher;
use crate::stats::{Deliveries, Percentiles, new_histogram};
use crate::target::{Protocol, Target};
use crate::wamp;
use crate::ws_client::WsConn;

/// How long one subscriber may take from TCP connect to confirmed subscription.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// How fast and how wide a fleet grows.
#[derive(Clone, Copy, Debug)]
pub struct RampLimits {
    /// Most handshakes in flight at once.
    pub in_flight: usize,
    /// Most new connections per second (`None`: as fast as `in_flight` allows).
    pub rate: Option<f64>,
}

/// What one [`Fleet::grow`] achieved.
#[derive(Clone, Debug)]
pub struct RampOutcome {
    /// Subscribers now open and subscribed.
    pub opened: usize,
    /// Subscribers that failed to open.
    pub failed: usize,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Wall-clock seconds the ramp took.
    pub seconds: f64,
    /// Time from connect to confirmed subscription.
    pub open_time: Percentiles,
}

/// The set of open subscribers and the delivery counters they write into.
#[derive(Debug)]
pub struct Fleet {
    /// The server and protocol.
    target: Rc<Target>,
    /// One task per subscriber; aborting a task drops (closes) its socket.
    tasks: Vec<JoinHandle<()>>,
    /// Subscribers opened so far (also the index of the next one, which picks its source).
    next_index: usize,
    /// Counters shared by every subscriber task.
    deliveries: Rc<Deliveries>,
}

impl Fleet {
    /// An empty fleet for `target`.
    pub fn new(target: Rc<Target>) -> Self {
        Self { target, tasks: Vec::new(), next_index: 0, deliveries: Rc::new(Deliveries::default()) }
    }

    /// The delivery counters of this fleet.
    pub fn deliveries(&self) -> &Rc<Deliveries> {
        &self.deliveries
    }

    /// Subscribers currently open.
    pub fn len(&self) -> usize {
        self.tasks.iter().filter(|t| !t.is_finished()).count()
    }

    /// Whether no subscriber is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Opens `count` more subscribers and returns once each has subscribed or failed.
    pub async fn grow(&mut self, count: usize, limits: RampLimits) -> RampOutcome {
        let started = clock::now_us();
        let permits = Arc::new(Semaphore::new(limits.in_flight.max(1)));
        let (tx, mut rx) = mpsc::unbounded_channel::<Result<u64, BenchError>>();
        for k in 0..count {
            if let Some(rate) = limits.rate.filter(|r| *r > 0.0) {
                let due = started + (k as f64 * 1e6 / rate) as u64;
                tokio::time::sleep_until(clock::instant_at(due).into()).await;
            }
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                break;
            };
            let index = self.next_index;
            self.next_index += 1;
            let target = Rc::clone(&self.target);
            let deliveries = Rc::clone(&self.deliveries);
            let tx = tx.clone();
            self.tasks.push(tokio::task::spawn_local(async move {
                let t0 = clock::now_us();
                let opened = tokio::time::timeout(OPEN_TIMEOUT, open(&target, index)).await;
                drop(permit);
                let conn = match opened {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    Err(_) => {
                        let _ = tx.send(Err(BenchError::Timeout));
                        return;
                    }
                };
                let _ = tx.send(Ok(clock::now_us() - t0));
                drop(tx);
                receive(conn, target.protocol, &deliveries).await;
            }));
        }
        drop(tx);
        let mut outcome =
            RampOutcome { opened: 0, failed: 0, first_error: None, seconds: 0.0, open_time: Percentiles::default() };
        let mut hist = new_histogram();
        while let Some(r) = rx.recv().await {
            match r {
                Ok(us) => {
                    outcome.opened += 1;
                    hist.saturating_record(us.max(1));
                }
                Err(e) => {
                    outcome.failed += 1;
                    outcome.first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        self.tasks.retain(|t| !t.is_finished());
        outcome.seconds = (clock::now_us() - started) as f64 / 1e6;
        outcome.open_time = Percentiles::of(&hist);
        outcome
    }

    /// Closes every subscriber (the sockets are dropped; the server sees EOF).
    pub fn close(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.close();
    }
}

/// Connects subscriber `index` and subscribes it to the target's channel or topic.
///
/// # Errors
/// Whatever the connection or the protocol dialogue failed with.
pub async fn open(target: &Target, index: usize) -> Result<WsConn, BenchError> {
    let source = target.source_for(index);
    match target.protocol {
        Protocol::Pusher => {
            let mut conn = WsConn::connect(target.server, source, target.tls.as_ref(), &target.ws_path, None).await?;
            pusher::subscribe(&mut conn, &target.channel).await?;
            Ok(conn)
        }
        Protocol::Wamp2 => {
            let mut conn =
                WsConn::connect(target.server, source, target.tls.as_ref(), &target.ws_path, Some(wamp::SUBPROTOCOL))
                    .await?;
            wamp::join(&mut conn, &target.realm).await?;
            wamp::subscribe(&mut conn, &target.channel).await?;
            Ok(conn)
        }
    }
}

/// Reads deliveries until the connection ends, recording each one's latency.
async fn receive(mut conn: WsConn, protocol: Protocol, deliveries: &Deliveries) {
    loop {
        let Ok(frame) = conn.next_data().await else {
            return deliveries.connection_lost();
        };
        if let Some(stamp) = payload::find(&frame) {
            deliveries.record(stamp.phase, conn.last_read_us().saturating_sub(stamp.sent_us));
        } else if protocol == Protocol::Pusher && pusher::is_ping(&frame) && conn.send_text(pusher::PONG).await.is_err()
        {
            return deliveries.connection_lost();
        }
    }
}
