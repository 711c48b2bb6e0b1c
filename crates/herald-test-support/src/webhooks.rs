//! A webhook receiver on 127.0.0.1:0: every event of every request it gets, as `(name,
//! channel)`, in the order of the requests; each answered `200 {}`.

use std::net::SocketAddr;

use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::WAIT;

/// The receiver's address and what it got.
pub struct Receiver {
    /// Where herald posts (`http://{addr}/…`).
    pub addr: SocketAddr,
    events: UnboundedReceiver<(String, String)>,
}

impl Receiver {
    /// Starts one.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let tx = tx.clone();
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        for e in body["events"].as_array().into_iter().flatten() {
                            let name = e["name"].as_str().unwrap_or("").to_owned();
                            let _ = tx.send((name, e["channel"].as_str().unwrap_or("").to_owned()));
                        }
                        let ok = http_body_util::Full::new(bytes::Bytes::from_static(b"{}"));
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(ok))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(tcp);
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(io, service));
            }
        });
        Self { addr, events }
    }

    /// The next event, within [`WAIT`].
    pub async fn next(&mut self) -> (String, String) {
        tokio::time::timeout(WAIT, self.events.recv()).await.expect("a webhook in time").unwrap()
    }

    /// The next event, within `wait`; `None` when none came.
    pub async fn next_within(&mut self, wait: std::time::Duration) -> Option<(String, String)> {
        tokio::time::timeout(wait, self.events.recv()).await.ok().flatten()
    }

    /// The name of the next event for `channel` (events of other channels are skipped).
    pub async fn next_for(&mut self, channel: &str) -> String {
        loop {
            let (name, ch) = self.next().await;
            if ch == channel {
                return name;
            }
        }
    }

    /// The events received until one for `marker`, which is left out.
    pub async fn until(&mut self, marker: &str) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        loop {
            let (name, channel) = self.next().await;
            if channel == marker {
                return seen;
            }
            seen.push((name, channel));
        }
    }
}
