//! HTTP publish rate: signed `POST /apps/{id}/events` as fast as a few keep-alive connections
//! allow, to a channel nobody subscribes to, so the number is the cost of the API itself
//! (parse, verify the signature, look the channel up, answer).

use crate::publisher::{self, HttpPublisher, Pacer, Publisher};
use crate::report::Record;
use crate::scenario::{Ctx, Window, round2};
use crate::stats::Percentiles;
use crate::target::Protocol;

/// A rate no publisher pool reaches, so every publisher sends back to back.
const UNLIMITED: f64 = 10_000_000.0;
/// The channel published to; nobody subscribes to it.
const CHANNEL: &str = "bench-http";

/// Runs the scenario and emits one record (a note only, for a WAMP target).
pub async fn run(ctx: &Ctx, conns: usize, duration_s: f64, payload: usize) -> Record {
    let mut r = ctx.record("http_publish");
    if ctx.target.protocol != Protocol::Pusher {
        r.note = Some("the HTTP API exists only for Pusher targets".into());
        r.emit();
        return r;
    }
    let mut pool: Vec<Publisher> =
        (0..conns.max(1)).map(|id| Publisher::Http(HttpPublisher::new(ctx.target.clone(), id))).collect();
    // One untimed request per connection so connection setup is not measured.
    publisher::run(&mut pool, &Pacer::new(UNLIMITED, 0.2), CHANNEL, 0, payload).await;
    let window = Window::open(ctx);
    let stats = publisher::run(&mut pool, &Pacer::new(UNLIMITED, duration_s), CHANNEL, 1, payload).await;
    let end = window.close(ctx);
    let pct = Percentiles::of(&stats.response.borrow());
    r.step = Some(format!("{conns} conns"));
    r.payload = Some(payload as u64);
    r.requests_per_s = Some(round2(stats.sent.get() as f64 / end.seconds.max(1e-6)));
    r.p50_ms = Some(pct.p50_ms);
    r.p99_ms = Some(pct.p99_ms);
    r.max_ms = Some(pct.max_ms);
    r.server_cpu_pct = end.server_cpu_pct.map(round2);
    r.gen_cpu_pct = Some(round2(end.gen_cpu_pct));
    r.failed = Some(stats.errors.get());
    r.note = stats.first_error.borrow().clone();
    if let Some(Publisher::Http(h)) = pool.first().filter(|_| r.note.is_none())
        && h.connects() > 2
    {
        r.note = Some(format!("server closed keep-alive: publisher 0 opened {} connections", h.connects()));
    }
    r.emit();
    r
}
