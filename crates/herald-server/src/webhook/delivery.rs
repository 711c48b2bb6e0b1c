//! One endpoint's delivery task: takes the endpoint's ordered events, debounces departures,
//! keeps the kinds the endpoint wants, groups them into requests and sends each request, signed,
//! until it is answered, retried for [`RETRY_FOR`](super::retry::RETRY_FOR) at most. A request is
//! done (delivered or given up) before the next one goes, so the endpoint gets its events in
//! order.
//!
//! Reads events only while a request has room: the rest waits in the bounded queue, whose
//! depth is the metric and whose overflow is dropped at the hub's side.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderValue;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::batch::Batcher;
use super::debounce::Debouncer;
use super::filter::Filter;
use super::item::{Hook, Item};
use super::metrics::AppCounters;
use super::retry::Backoff;
use super::sender::{Client, REQUEST_TIMEOUT};
use super::{body, sign};

/// An event (with its queue's receipt) and when it happened: the debounce counts from then,
/// not from when the event leaves a queue that an unresponsive endpoint let grow.
pub(crate) type Stamped = (Instant, Hook);

/// An endpoint and the app it belongs to.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The app id, for logs.
    pub(crate) app: String,
    /// The URL, for logs.
    pub(crate) url: String,
    /// The app's key (`X-Pusher-Key`).
    pub(crate) key: HeaderValue,
    /// The app's secret, the signing key. Never logged.
    pub(crate) secret: Arc<str>,
    pub(crate) filter: Filter,
    pub(crate) client: Client,
    pub(crate) window: Duration,
    pub(crate) max: usize,
    pub(crate) counters: Arc<AppCounters>,
}

/// How a request ended.
enum Outcome {
    Done,
    /// Stopped while waiting to retry: the events are still to send.
    Stopped(Vec<Hook>),
}

/// Delivers `events` to `ep` until `stop`, then sends what is left once each, within `flush`
/// after the stop.
pub(crate) async fn run(
    mut ep: Endpoint,
    mut events: mpsc::Receiver<Stamped>,
    stop: CancellationToken,
    flush: Duration,
) {
    let mut debounce = Debouncer::<Hook>::default();
    let mut batcher = Batcher::<Hook>::new(ep.window, ep.max);
    let mut left = Vec::new();
    'live: loop {
        let now = Instant::now();
        let filter = &ep.filter;
        debounce.release(now, &mut |e| keep(filter, &mut batcher, e, now));
        if let Some(batch) = batcher.take(now) {
            if let Outcome::Stopped(batch) = ep.send(batch, Some(&stop)).await {
                left = batch;
                break 'live;
            }
            continue;
        }
        let deadline = [debounce.deadline(), batcher.deadline()].into_iter().flatten().min();
        tokio::select! {
            biased;
            () = stop.cancelled() => break 'live,
            got = events.recv() => {
                let Some((at, first)) = got else { break 'live };
                let now = Instant::now();
                let mut taken = 1;
                debounce.push(first, at, &mut |e| keep(&ep.filter, &mut batcher, e, now));
                // What queued up meanwhile goes in the same request, as far as it has room.
                while batcher.len() < ep.max {
                    let Ok((at, e)) = events.try_recv() else { break };
                    taken += 1;
                    debounce.push(e, at, &mut |e| keep(&ep.filter, &mut batcher, e, now));
                }
                AppCounters::sub(&ep.counters.queued, taken);
            }
            () = sleep_until(deadline) => {}
        }
    }
    // Shutdown: what is queued, held or batched goes now, each request tried once.
    let give_up_at = Instant::now() + flush;
    events.close();
    let now = Instant::now();
    let mut taken = 0;
    while let Ok((at, e)) = events.try_recv() {
        taken += 1;
        debounce.push(e, at, &mut |e| keep(&ep.filter, &mut batcher, e, now));
    }
    AppCounters::sub(&ep.counters.queued, taken);
    debounce.flush(&mut |e| keep(&ep.filter, &mut batcher, e, now));
    let batches = std::iter::once(left).chain(batcher.flush()).filter(|b| !b.is_empty());
    for batch in batches {
        let n = batch.len();
        if Instant::now() >= give_up_at {
            AppCounters::add(&ep.counters.dropped_gave_up, n);
            continue;
        }
        let _ = tokio::time::timeout_at(give_up_at, ep.send(batch, None))
            .await
            .inspect_err(|_| AppCounters::add(&ep.counters.dropped_gave_up, n));
    }
}

/// Passes a debounced event on to the batch if the endpoint sends its kind.
fn keep(filter: &Filter, batcher: &mut Batcher<Hook>, hook: Hook, now: Instant) {
    if filter.sends(hook.event.kind()) {
        batcher.push(hook, now);
    } else {
        hook.settle();
    }
}

/// A request is over (delivered, refused or given up after retrying): its events are settled.
fn settled(batch: Vec<Hook>) -> Outcome {
    batch.into_iter().for_each(Item::settle);
    Outcome::Done
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Endpoint {
    /// Sends one request of `batch`, retrying while `stop` (if any) is not cancelled; with no
    /// `stop`, tries once.
    async fn send(&mut self, batch: Vec<Hook>, stop: Option<&CancellationToken>) -> Outcome {
        let n = batch.len();
        let body = body::encode(body::now_ms(), &batch);
        let signature = sign::signature(&self.secret, &body);
        let mut backoff = Backoff::new(Instant::now());
        loop {
            let timeout = REQUEST_TIMEOUT;
            let problem = match self.client.post(&self.key, &signature, body.clone(), timeout).await {
                Ok(status) if status.is_success() => {
                    crate::dashboard::tap::webhook(&self.app, &self.url, Some(status.as_u16()), "delivered", n);
                    AppCounters::add(&self.counters.sent, n);
                    return settled(batch);
                }
                Ok(status) if !status.is_server_error() => {
                    AppCounters::add(&self.counters.failed, 1);
                    AppCounters::add(&self.counters.dropped_rejected, n);
                    tracing::warn!(app = %self.app, url = %self.url, %status, events = n, "webhook refused; not retried");
                    crate::dashboard::tap::webhook(&self.app, &self.url, Some(status.as_u16()), "refused", n);
                    return settled(batch);
                }
                Ok(status) => status.to_string(),
                Err(e) => e.to_string(),
            };
            AppCounters::add(&self.counters.failed, 1);
            let Some(stop) = stop else {
                // The one try of a shutdown: the receipts are dropped unsettled, so a durable
                // queue keeps these events for whoever delivers next.
                AppCounters::add(&self.counters.dropped_gave_up, n);
                return Outcome::Done;
            };
            let Some(at) = backoff.next(Instant::now()) else {
                AppCounters::add(&self.counters.dropped_gave_up, n);
                tracing::warn!(app = %self.app, url = %self.url, %problem, events = n, "webhook dropped after retrying");
                crate::dashboard::tap::webhook(&self.app, &self.url, None, "dropped after retrying", n);
                return settled(batch);
            };
            tracing::debug!(app = %self.app, url = %self.url, %problem, "webhook failed; retrying");
            tokio::select! {
                () = tokio::time::sleep_until(at) => {}
                () = stop.cancelled() => return Outcome::Stopped(batch),
            }
        }
    }
}
