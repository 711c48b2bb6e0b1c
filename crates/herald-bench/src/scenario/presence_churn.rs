//! Presence churn: each client joins a presence channel as its own user, waits for the
//! acknowledgement, leaves, and joins again, for a fixed time. Reports joins per second and the
//! time from `pusher:subscribe` to `pusher_internal:subscription_succeeded`.
//!
//! With `--also`, the clients are spread round-robin over `--server` and those nodes: on a
//! cluster every join and leave is a change of shared state, so the figure is the cluster's
//! presence rate, next to the one node's.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use hdrhistogram::Histogram;
use herald_protocol::pusher::socket_auth;
use serde_json::Value;

use crate::clock;
use crate::error::BenchError;
use crate::report::Record;
use crate::scenario::{Ctx, Window, round2};
use crate::stats::{Percentiles, new_histogram};
use crate::target::Target;
use crate::ws_client::WsConn;

/// What the clients counted.
#[derive(Default)]
struct Tally {
    joins: u64,
    failed: u64,
    first_error: Option<String>,
}

/// Runs `conns` clients for `duration_s` seconds over `--server` and `also`; emits one record.
pub async fn run(ctx: &Ctx, conns: usize, duration_s: f64, also: &[SocketAddr]) -> Record {
    let mut r = ctx.record("presence_churn");
    if also.iter().any(|a| !a.ip().is_loopback()) {
        r.note = Some("--also must name loopback addresses: benchmarks stay on 127.0.0.0/8".into());
        r.emit();
        return r;
    }
    let nodes: Vec<SocketAddr> = std::iter::once(ctx.target.server).chain(also.iter().copied()).collect();
    let hist = Rc::new(RefCell::new(new_histogram()));
    let tally = Rc::new(RefCell::new(Tally::default()));
    let window = Window::open(ctx);
    let until = clock::now_us() + (duration_s * 1e6) as u64;
    let mut tasks = Vec::new();
    for i in 0..conns {
        let target = Target { server: nodes[i % nodes.len()], ..Target::clone(&ctx.target) };
        let (hist, tally) = (Rc::clone(&hist), Rc::clone(&tally));
        tasks.push(tokio::task::spawn_local(async move {
            if let Err(e) = churn(&target, i, until, &hist, &tally).await {
                let mut t = tally.borrow_mut();
                t.failed += 1;
                t.first_error.get_or_insert_with(|| e.to_string());
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let end = window.close(ctx);
    let tally = tally.borrow();
    let lat = Percentiles::of(&hist.borrow());
    r.step = Some(format!("{conns} clients on {} node(s)", nodes.len()));
    r.subs = Some(conns as u64);
    r.rate_achieved = Some(round2(tally.joins as f64 / end.seconds.max(1e-6)));
    r.p50_ms = Some(lat.p50_ms);
    r.p90_ms = Some(lat.p90_ms);
    r.p99_ms = Some(lat.p99_ms);
    r.max_ms = Some(lat.max_ms);
    r.server_cpu_pct = end.server_cpu_pct.map(round2);
    r.gen_cpu_pct = Some(round2(end.gen_cpu_pct));
    r.rss_kb = end.server_rss_kb;
    r.failed = Some(tally.failed);
    r.note = tally.first_error.clone();
    r.emit();
    r
}

/// One client: join, await the acknowledgement, leave, until `until`.
async fn churn(
    target: &Target,
    index: usize,
    until: u64,
    hist: &RefCell<Histogram<u64>>,
    tally: &RefCell<Tally>,
) -> Result<(), BenchError> {
    let channel = format!("presence-{}", target.channel);
    let mut conn =
        WsConn::connect(target.server, target.source_for(index), target.tls.as_ref(), &target.ws_path, None).await?;
    let socket_id = loop {
        let m: Value = serde_json::from_slice(&conn.next_data().await?)?;
        if m["event"] == "pusher:connection_established" {
            let data: Value = serde_json::from_str(m["data"].as_str().unwrap_or("{}"))?;
            break data["socket_id"].as_str().unwrap_or_default().to_owned();
        }
    };
    let channel_data = serde_json::json!({"user_id": format!("u{index}"), "user_info": {"n": index}}).to_string();
    let auth =
        socket_auth::channel_auth(&target.app.key, &target.app.secret, &socket_id, &channel, Some(&channel_data));
    let subscribe = serde_json::json!({"event": "pusher:subscribe",
        "data": {"channel": channel, "auth": auth, "channel_data": channel_data}})
    .to_string();
    let unsubscribe = serde_json::json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}).to_string();
    while clock::now_us() < until {
        let sent = clock::now_us();
        conn.send_text(subscribe.as_bytes()).await?;
        loop {
            let m: Value = serde_json::from_slice(&conn.next_data().await?)?;
            match m["event"].as_str().unwrap_or("") {
                "pusher_internal:subscription_succeeded" => break,
                "pusher:error" | "pusher:subscription_error" => return Err(BenchError::Refused(m["data"].to_string())),
                "pusher:ping" => conn.send_text(crate::pusher::PONG).await?,
                _ => {}
            }
        }
        let _ = hist.borrow_mut().record(conn.last_read_us().saturating_sub(sent).max(1));
        tally.borrow_mut().joins += 1;
        conn.send_text(unsubscribe.as_bytes()).await?;
    }
    conn.close().await;
    Ok(())
}
