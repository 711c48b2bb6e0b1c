//! Prometheus `/metrics`, rendered by hand from the hub's atomic counters.
//!
//! Counting costs relaxed atomic adds on fields the hot paths already hold (herald-core
//! `stats`); all label work happens here, at scrape time. Labels are `app`, `protocol` and
//! `code` only: never channel names, whose number is unbounded.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use herald_core::Hub;
use herald_core::stats::{LATENCY_BOUNDS_US, Protocol, slow_consumers_total};
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::response::Body;
use crate::status::{API_CODES, ServerStatus};

/// The `/metrics` response.
pub(crate) fn response(hub: &Hub, status: &ServerStatus) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(render(hub, status))));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}

/// Renders every metric in the Prometheus text exposition format.
pub(crate) fn render(hub: &Hub, status: &ServerStatus) -> String {
    let mut out = String::with_capacity(4096);
    let registry = hub.apps();
    let mut apps: Vec<_> = registry.iter().collect();
    apps.sort_by(|a, b| a.config.id.cmp(&b.config.id));

    header(&mut out, "herald_connections", "gauge", "Open WebSocket connections per app.");
    for app in &apps {
        let _ = writeln!(out, "herald_connections{{app=\"{}\"}} {}", esc(&app.config.id), app.connection_count());
    }
    header(&mut out, "herald_protocol_connections", "gauge", "Open WebSocket connections per protocol.");
    for p in Protocol::ALL {
        let _ = writeln!(out, "herald_protocol_connections{{protocol=\"{}\"}} {}", p.label(), hub.stats().open(p));
    }
    header(&mut out, "herald_connections_opened_total", "counter", "WebSocket connections opened, per protocol.");
    for p in Protocol::ALL {
        let _ = writeln!(
            out,
            "herald_connections_opened_total{{protocol=\"{}\"}} {}",
            p.label(),
            hub.stats().opened.get(p)
        );
    }

    header(&mut out, "herald_sessions", "gauge", "Open client sessions per transport (every protocol over ws).");
    let http: Vec<_> = crate::http_transport::stats::sessions().into();
    let over_http: u64 = http.iter().map(|(_, n)| n).sum();
    let all: u64 = Protocol::ALL.iter().map(|p| hub.stats().open(*p)).sum();
    let _ = writeln!(out, "herald_sessions{{transport=\"ws\"}} {}", all.saturating_sub(over_http));
    for (transport, n) in http {
        let _ = writeln!(out, "herald_sessions{{transport=\"{transport}\"}} {n}");
    }
    header(&mut out, "herald_http_transport_requests_total", "counter", "Requests to the HTTP transports' URLs.");
    for (kind, n) in crate::http_transport::stats::requests() {
        let _ = writeln!(out, "herald_http_transport_requests_total{{kind=\"{kind}\"}} {n}");
    }

    header(&mut out, "herald_channels", "gauge", "Occupied channels (topics) per app.");
    let totals: Vec<_> = apps.iter().map(|a| hub.subscription_totals(a)).collect();
    for (app, (channels, _)) in apps.iter().zip(&totals) {
        let _ = writeln!(out, "herald_channels{{app=\"{}\"}} {channels}", esc(&app.config.id));
    }
    header(&mut out, "herald_subscriptions", "gauge", "Channel subscriptions per app.");
    for (app, (_, subs)) in apps.iter().zip(&totals) {
        let _ = writeln!(out, "herald_subscriptions{{app=\"{}\"}} {subs}", esc(&app.config.id));
    }

    header(&mut out, "herald_messages_in_total", "counter", "WebSocket messages received from clients.");
    for app in &apps {
        for p in Protocol::ALL {
            let n = app.stats.messages_in.get(p);
            let _ = writeln!(
                out,
                "herald_messages_in_total{{app=\"{}\",protocol=\"{}\"}} {n}",
                esc(&app.config.id),
                p.label()
            );
        }
    }
    header(&mut out, "herald_messages_out_total", "counter", "Messages queued to subscribers by fan-out.");
    for app in &apps {
        for p in Protocol::ALL {
            let n = app.stats.messages_out.get(p);
            let _ = writeln!(
                out,
                "herald_messages_out_total{{app=\"{}\",protocol=\"{}\"}} {n}",
                esc(&app.config.id),
                p.label()
            );
        }
    }
    header(&mut out, "herald_publications_total", "counter", "Publications accepted (HTTP API, client events, WAMP).");
    for app in &apps {
        let n = app.stats.publications.load(Ordering::Relaxed);
        let _ = writeln!(out, "herald_publications_total{{app=\"{}\"}} {n}", esc(&app.config.id));
    }

    let name = "herald_publish_latency_seconds";
    header(&mut out, name, "histogram", "Time to queue a publication to every local subscriber.");
    for app in &apps {
        let snap = app.stats.publish_latency.snapshot();
        let id = esc(&app.config.id);
        for (bound, n) in LATENCY_BOUNDS_US.iter().zip(&snap.cumulative) {
            let le = *bound as f64 / 1e6;
            let _ = writeln!(out, "{name}_bucket{{app=\"{id}\",le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{app=\"{id}\",le=\"+Inf\"}} {}", snap.count);
        let _ = writeln!(out, "{name}_sum{{app=\"{id}\"}} {}", snap.sum_ns as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{{app=\"{id}\"}} {}", snap.count);
    }

    let name = "herald_origin_refused_total";
    header(
        &mut out,
        name,
        "counter",
        "WebSocket upgrades refused (403) for their Origin; app=\"\" before a WAMP v2 realm is known.",
    );
    for app in &apps {
        let n = app.stats.origin_refused.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{app=\"{}\"}} {n}", esc(&app.config.id));
    }
    let _ = writeln!(out, "{name}{{app=\"\"}} {}", hub.stats().origin_refused_no_realm.load(Ordering::Relaxed));

    let name = "herald_connections_refused_total";
    header(&mut out, name, "counter", "WebSocket upgrades refused (429) by a per-address limit.");
    let (too_many, too_fast) = status.per_ip.refused();
    let _ = writeln!(out, "{name}{{reason=\"per_ip\"}} {too_many}");
    let _ = writeln!(out, "{name}{{reason=\"per_ip_rate\"}} {too_fast}");

    let name = "herald_slow_consumers_closed_total";
    header(&mut out, name, "counter", "Connections closed because they did not read fast enough.");
    let _ = writeln!(out, "{name} {}", slow_consumers_total());

    let name = "herald_http_api_responses_total";
    header(&mut out, name, "counter", "Pusher HTTP API responses by status code.");
    for (i, c) in status.api.counts.iter().enumerate() {
        let code = API_CODES.get(i).map_or_else(|| "other".to_owned(), u16::to_string);
        let _ = writeln!(out, "{name}{{code=\"{code}\"}} {}", c.load(Ordering::Relaxed));
    }

    let counters = hub.backend().counters();
    if !counters.is_empty() {
        let name = "herald_scale_out_total";
        header(&mut out, name, "counter", "The scale-out link's publications and recoveries, by kind.");
        for (kind, n) in counters {
            let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {n}");
        }
    }

    let history = hub.history_totals();
    let name = "herald_recoveries_total";
    header(&mut out, name, "counter", "Subscriptions that asked to recover missed publications, by result.");
    let _ = writeln!(out, "{name}{{result=\"replayed\"}} {}", history.recovered);
    let _ = writeln!(out, "{name}{{result=\"failed\"}} {}", history.failed);
    header(&mut out, "herald_recovered_publications_total", "counter", "Publications replayed by recoveries.");
    let _ = writeln!(out, "herald_recovered_publications_total {}", history.replayed);
    header(&mut out, "herald_history_bytes", "gauge", "Approximate bytes held by channel histories.");
    let _ = writeln!(out, "herald_history_bytes {}", history.bytes);
    header(&mut out, "herald_history_channels", "gauge", "Channels with a history held.");
    let _ = writeln!(out, "herald_history_channels {}", history.channels);
    let name = "herald_history_evictions_total";
    header(&mut out, name, "counter", "History entries dropped because the history memory budget was full.");
    let _ = writeln!(out, "{name} {}", history.evicted);

    if let Some(webhooks) = &status.webhooks {
        webhooks.render(&mut out, esc);
    }

    header(&mut out, "herald_draining", "gauge", "1 while a graceful shutdown is in progress.");
    let _ = writeln!(out, "herald_draining {}", u8::from(status.is_draining()));
    if let Some(limits) = crate::fd_limit::current() {
        header(&mut out, "process_max_fds", "gauge", "Maximum number of open file descriptors (soft limit).");
        let _ = writeln!(out, "process_max_fds {}", limits.soft);
    }
    if let Some(open) = crate::fd_limit::open_fds() {
        header(&mut out, "process_open_fds", "gauge", "Number of open file descriptors.");
        let _ = writeln!(out, "process_open_fds {open}");
    }
    header(&mut out, "herald_build_info", "gauge", "herald's version.");
    let _ = writeln!(out, "herald_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    out
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Escapes a label value (backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
