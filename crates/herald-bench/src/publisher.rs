//! Publishing at a paced rate: Pusher events through the signed HTTP API over keep-alive
//! HTTP/1.1 connections, or WAMP v2 PUBLISH messages from a dedicated session.
//!
//! A step's publishes are spread over a small pool of publishers that claim send slots from one
//! [`Pacer`]. With HTTP, each publisher waits for its response before its next request, so the
//! pool size bounds the requests in flight; a server that answers only after writing to every
//! subscriber (or closes the connection after each request) shows up as an achieved rate below
//! the target, which the report states. With `--tls` the HTTP connections are `https://`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use herald_protocol::pusher::rest_sign::sign_request;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

use crate::clock;
use crate::error::BenchError;
use crate::payload;
use crate::pusher;
use crate::stats::new_histogram;
use crate::target::{Protocol, Target};
use crate::wamp;
use crate::ws_client::{WsConn, tcp_connect};

/// Hands out send times at a fixed rate between a start and an end.
#[derive(Debug)]
pub struct Pacer {
    /// When the first slot is due ([`clock::now_us`] microseconds).
    start_us: u64,
    /// Microseconds between slots.
    interval_us: f64,
    /// No slot is handed out at or after this time, even if the publishers lag.
    end_us: u64,
    /// Slots handed out so far.
    next: Cell<u64>,
}

impl Pacer {
    /// `rate` slots per second for `seconds`, starting now.
    pub fn new(rate: f64, seconds: f64) -> Self {
        let start_us = clock::now_us();
        Self {
            start_us,
            interval_us: 1e6 / rate.max(1e-3),
            end_us: start_us + (seconds * 1e6) as u64,
            next: Cell::new(0),
        }
    }

    /// The due time of the next slot, or `None` once the window is over.
    pub fn claim(&self) -> Option<u64> {
        let k = self.next.get();
        let due = self.start_us + (k as f64 * self.interval_us) as u64;
        if due >= self.end_us || clock::now_us() >= self.end_us {
            return None;
        }
        self.next.set(k + 1);
        Some(due)
    }
}

/// What the publishers of one phase did.
#[derive(Debug)]
pub struct PublishStats {
    /// Publishes the server accepted (HTTP 200, or WAMP frames written).
    pub sent: Cell<u64>,
    /// Publishes that failed.
    pub errors: Cell<u64>,
    /// The first failure.
    pub first_error: RefCell<Option<String>>,
    /// Time from request to response (HTTP only), microseconds.
    pub response: RefCell<Histogram<u64>>,
}

impl Default for PublishStats {
    fn default() -> Self {
        Self {
            sent: Cell::new(0),
            errors: Cell::new(0),
            first_error: RefCell::new(None),
            response: RefCell::new(new_histogram()),
        }
    }
}

/// One publishing connection.
#[derive(Debug)]
pub enum Publisher {
    /// A keep-alive HTTP/1.1 connection to the Pusher HTTP API.
    Http(HttpPublisher),
    /// A WAMP v2 session.
    Wamp(WampPublisher),
}

impl Publisher {
    /// Opens publisher number `id` for the target's protocol.
    ///
    /// # Errors
    /// The WAMP session could not be joined (HTTP connects lazily).
    pub async fn open(target: &Rc<Target>, id: usize) -> Result<Self, BenchError> {
        match target.protocol {
            Protocol::Pusher => Ok(Self::Http(HttpPublisher::new(Rc::clone(target), id))),
            Protocol::Wamp2 => Ok(Self::Wamp(WampPublisher::open(target).await?)),
        }
    }

    /// Opens `n` publishers (at least one) on `target`, numbered from 0.
    ///
    /// # Errors
    /// The first publisher that could not be opened.
    pub async fn open_pool(target: &Rc<Target>, n: usize) -> Result<Vec<Self>, BenchError> {
        let mut pool = Vec::with_capacity(n.max(1));
        for id in 0..n.max(1) {
            pool.push(Self::open(target, id).await?);
        }
        Ok(pool)
    }

    /// Publishes one stamped payload of `size` bytes in `phase` to `channel`.
    ///
    /// # Errors
    /// The connection failed or the server refused the publish.
    pub async fn publish(&mut self, channel: &str, phase: u32, size: usize) -> Result<(), BenchError> {
        match self {
            Self::Http(p) => p.publish(channel, phase, size).await,
            Self::Wamp(p) => p.publish(channel, phase, size),
        }
    }
}

/// Drives `pool` until `pacer` runs out of slots: each publisher claims a slot, sleeps until it
/// is due and publishes.
pub async fn run(pool: &mut [Publisher], pacer: &Pacer, channel: &str, phase: u32, size: usize) -> PublishStats {
    let stats = PublishStats::default();
    let drivers = pool.iter_mut().map(|p| async {
        while let Some(due) = pacer.claim() {
            tokio::time::sleep_until(clock::instant_at(due).into()).await;
            let t0 = clock::now_us();
            match p.publish(channel, phase, size).await {
                Ok(()) => {
                    stats.sent.set(stats.sent.get() + 1);
                    stats.response.borrow_mut().saturating_record((clock::now_us() - t0).max(1));
                }
                Err(e) => {
                    stats.errors.set(stats.errors.get() + 1);
                    stats.first_error.borrow_mut().get_or_insert_with(|| e.to_string());
                }
            }
        }
    });
    futures_util::future::join_all(drivers).await;
    stats
}

/// Publishes through `POST /apps/{id}/events`, signed, over one keep-alive connection that is
/// reopened when the server closes it.
#[derive(Debug)]
pub struct HttpPublisher {
    /// The server and credentials.
    target: Rc<Target>,
    /// This publisher's number, which spreads its connections over the source addresses.
    id: usize,
    /// The open connection, if any.
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Connections opened so far.
    connects: usize,
    /// `/apps/{id}/events`.
    path: String,
}

impl HttpPublisher {
    /// A publisher that connects on first use.
    pub fn new(target: Rc<Target>, id: usize) -> Self {
        let path = format!("/apps/{}/events", target.app.id);
        Self { target, id, sender: None, connects: 0, path }
    }

    /// Connections this publisher has opened (more than one: the server closed keep-alive).
    pub fn connects(&self) -> usize {
        self.connects
    }

    /// A connection ready for the next request, reopened if the server closed the last one.
    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, BenchError> {
        let alive = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !alive {
            let source = self.target.source_for(self.id + 7 * self.connects);
            self.connects += 1;
            let stream = tcp_connect(self.target.server, source).await?;
            // The connection futures differ in type (plain or TLS stream); the sender does not.
            let sender = match &self.target.tls {
                None => {
                    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                    tokio::task::spawn_local(async move {
                        let _ = conn.await;
                    });
                    sender
                }
                Some(tls) => {
                    let stream = tls.handshake(stream, self.target.server).await?;
                    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                    tokio::task::spawn_local(async move {
                        let _ = conn.await;
                    });
                    sender
                }
            };
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or(BenchError::Closed)
    }

    /// Sends one signed event and waits for the `200`.
    ///
    /// # Errors
    /// The connection failed or the status was not 200.
    pub async fn publish(&mut self, channel: &str, phase: u32, size: usize) -> Result<(), BenchError> {
        let host = self.target.server.to_string();
        let (key, secret) = (self.target.app.key.clone(), self.target.app.secret.clone());
        let path = self.path.clone();
        let sender = self.ready().await?;
        let data = payload::stamp(phase, clock::now_us(), size);
        let body = pusher::event_body(channel, "bench", &data);
        let now_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let query = sign_request("POST", &path, &[], &body, &key, &secret, now_unix as i64);
        let req = hyper::Request::post(format!("{path}?{query}"))
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        let status = resp.status();
        resp.into_body().collect().await?;
        if status == hyper::StatusCode::OK { Ok(()) } else { Err(BenchError::HttpStatus(status.as_u16())) }
    }
}

/// A WAMP v2 session that publishes. Its socket is owned by a task that also answers the
/// router's pings (Crossbar drops a session that ignores them), so publishing is a send into
/// that task's queue.
#[derive(Debug)]
pub struct WampPublisher {
    /// Frames for the session task to send.
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// The last PUBLISH request id.
    request: u64,
}

impl WampPublisher {
    /// Joins the target's realm and starts the session task.
    ///
    /// # Errors
    /// The connection or HELLO failed.
    pub async fn open(target: &Target) -> Result<Self, BenchError> {
        let mut conn =
            WsConn::connect(target.server, None, target.tls.as_ref(), &target.ws_path, Some(wamp::SUBPROTOCOL)).await?;
        wamp::join(&mut conn, &target.realm).await?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::task::spawn_local(async move {
            loop {
                tokio::select! {
                    frame = rx.recv() => match frame {
                        Some(f) => if conn.send_text(&f).await.is_err() { return },
                        None => return conn.close().await,
                    },
                    r = conn.next_data() => if r.is_err() { return },
                }
            }
        });
        Ok(Self { tx, request: 0 })
    }

    /// Queues one stamped PUBLISH.
    ///
    /// # Errors
    /// The session task has ended.
    pub fn publish(&mut self, topic: &str, phase: u32, size: usize) -> Result<(), BenchError> {
        self.request += 1;
        let data = payload::stamp(phase, clock::now_us(), size);
        self.tx.send(wamp::publish_message(self.request, topic, &data)).map_err(|_| BenchError::Closed)
    }
}
