//! Result lines: one JSON object per measured step (printed as soon as the step ends), a
//! readable line per step for people watching a run, and the side-by-side comparison built
//! from the JSON lines of several runs (see [`crate::compare`]).

use std::io::Write as _;

use serde::{Deserialize, Serialize};

use crate::target::{Labels, Protocol};

/// One measured step. Fields that do not apply to a scenario are left out of the JSON.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    /// Server label (`herald`, `soketi`, …).
    pub server: String,
    /// Server version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Configuration that matters for the numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knobs: Option<String>,
    /// Protocol spoken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The clients spoke TLS (`wss://`, `https://`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    /// `startup`, `idle`, `connect`, `fanout`, `max`, `http_publish`, `cross_node`.
    pub scenario: String,
    /// Which step of the scenario (e.g. `1000x10/s`, `summary`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// Subscribers (or connections) open during the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subs: Option<u64>,
    /// Payload bytes per event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<u64>,
    /// Publishes (or requests) per second asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_target: Option<f64>,
    /// Publishes (or requests) per second achieved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_achieved: Option<f64>,
    /// Latency median, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// Latency 90th percentile, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90_ms: Option<f64>,
    /// Latency 99th percentile, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Largest latency, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    /// Deliveries received per second of the measurement window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_per_s: Option<f64>,
    /// Deliveries received ÷ (publishes accepted × subscribers) for the step's own publishes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Server CPU over the window, percent of one core (process tree).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_pct: Option<f64>,
    /// Server CPU time per delivery, µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_us_per_delivery: Option<f64>,
    /// Generator CPU over the window, percent of one core (self-check: keep it under ~70%).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gen_cpu_pct: Option<f64>,
    /// Server RSS (process tree) at the end of the step, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kb: Option<u64>,
    /// Server RSS before any client connected, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_base_kb: Option<u64>,
    /// (RSS with N idle subscribers − baseline) ÷ N, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kb_per_conn: Option<f64>,
    /// Kernel TCP memory (all sockets on the machine), KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_mem_kb: Option<u64>,
    /// Connections opened per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connects_per_s: Option<f64>,
    /// Seconds the connection phase took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_s: Option<f64>,
    /// Connections or publishes that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<u64>,
    /// HTTP requests per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_s: Option<f64>,
    /// Time from start to accepting connections, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_ms: Option<f64>,
    /// Anything a reader must know: first error, why a step stopped, why a scenario is skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Record {
    /// A record for `scenario` carrying the target's labels.
    pub fn new(labels: &Labels, protocol: Option<Protocol>, scenario: &str) -> Self {
        Self {
            server: labels.server.clone(),
            version: labels.version.clone(),
            knobs: labels.knobs.clone(),
            protocol,
            tls: labels.tls,
            scenario: scenario.to_owned(),
            ..Self::default()
        }
    }

    /// Prints the JSON line on stdout and the readable line on stderr, both flushed at once so
    /// a run that is cut short keeps every finished step.
    pub fn emit(&self) {
        if let Ok(line) = serde_json::to_string(self) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        eprintln!("{}", self.readable());
    }

    /// The server label as the tables show it: `herald`, or `herald (tls)` for TLS results.
    pub fn display_name(&self) -> String {
        if self.tls { format!("{} (tls)", self.server) } else { self.server.clone() }
    }

    /// One line for a person: the scenario, the step and whichever figures it has.
    pub fn readable(&self) -> String {
        let mut s =
            format!("{:<10} {:<12} {:<18}", self.display_name(), self.scenario, self.step.as_deref().unwrap_or(""));
        let mut add = |label: &str, v: Option<String>| {
            if let Some(v) = v {
                s.push_str(&format!(" {label}={v}"));
            }
        };
        add("subs", self.subs.map(|v| v.to_string()));
        add("rate", self.rate_achieved.map(|v| format!("{v:.0}/s")));
        add("p50", self.p50_ms.map(|v| format!("{v:.2}ms")));
        add("p99", self.p99_ms.map(|v| format!("{v:.2}ms")));
        add("max", self.max_ms.map(|v| format!("{v:.1}ms")));
        add("deliv", self.delivered_per_s.map(|v| format!("{v:.0}/s")));
        add("ratio", self.ratio.map(|v| format!("{v:.4}")));
        add("srv_cpu", self.server_cpu_pct.map(|v| format!("{v:.0}%")));
        add("us/deliv", self.server_us_per_delivery.map(|v| format!("{v:.2}")));
        add("gen_cpu", self.gen_cpu_pct.map(|v| format!("{v:.0}%")));
        add("rss", self.rss_kb.map(|v| format!("{}MB", v / 1024)));
        add("KB/conn", self.rss_kb_per_conn.map(|v| format!("{v:.2}")));
        add("tcp_mem", self.tcp_mem_kb.map(|v| format!("{}MB", v / 1024)));
        add("conn/s", self.connects_per_s.map(|v| format!("{v:.0}")));
        add("req/s", self.requests_per_s.map(|v| format!("{v:.0}")));
        add("startup", self.startup_ms.map(|v| format!("{v:.1}ms")));
        add("failed", self.failed.filter(|f| *f > 0).map(|v| v.to_string()));
        add("note", self.note.clone());
        s
    }
}
