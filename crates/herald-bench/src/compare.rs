//! The side-by-side comparison: reads the JSON lines of any number of runs (servers,
//! repetitions) and renders Markdown tables, one row per server, protocol and transport (TLS
//! results are rows of their own, "herald (tls)", right below the plain row). Where a step was
//! repeated, the median of the repetitions is shown. The "max deliveries/s" column is computed
//! from the `max` steps themselves (see [`counts_for_max`]), not from the run's summary line.

use std::fmt::Write as _;

use crate::report::Record;
use crate::target::Protocol;

/// A row key: server label, protocol, and whether the clients spoke TLS.
type Key = (String, Option<Protocol>, bool);

/// The row key of a record.
fn key_of(r: &Record) -> Key {
    (r.server.clone(), r.protocol, r.tls)
}

/// The row label: the server, with ` (tls)` for TLS rows.
fn row_name(k: &Key) -> String {
    if k.2 { format!("{} (tls)", k.0) } else { k.0.clone() }
}

/// Renders the comparison of `records`.
pub fn render(records: &[Record]) -> String {
    let mut keys: Vec<Key> = Vec::new();
    for r in records {
        let k = key_of(r);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    // Rows in order of first appearance, except that a TLS row follows its plain row (the
    // plain and TLS runs of a server are usually far apart in a results file).
    let mut ordered: Vec<Key> = Vec::with_capacity(keys.len());
    for k in keys.iter().filter(|k| !k.2) {
        ordered.push(k.clone());
        let tls = (k.0.clone(), k.1, true);
        if keys.contains(&tls) {
            ordered.push(tls);
        }
    }
    let orphans: Vec<Key> = keys.iter().filter(|k| k.2 && !ordered.contains(k)).cloned().collect();
    ordered.extend(orphans);
    let keys = ordered;
    let mut out = String::new();
    out.push_str("| server | protocol | start-up ms | idle RSS MB | KB/conn 1k | KB/conn 10k | KB/conn 18k | connect conn/s | HTTP publish req/s |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for k in &keys {
        let rows = Rows { records, key: k };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row_name(k),
            protocol_name(k.1),
            fmt(rows.median("startup", None, |r| r.startup_ms), 1),
            fmt(rows.median("idle", None, |r| r.rss_base_kb.map(|v| v as f64 / 1024.0)), 0),
            fmt(rows.median("idle", Some("1000"), |r| r.rss_kb_per_conn), 2),
            fmt(rows.median("idle", Some("10000"), |r| r.rss_kb_per_conn), 2),
            fmt(rows.median("idle", Some("18000"), |r| r.rss_kb_per_conn), 2),
            fmt(rows.median("connect", None, |r| r.connects_per_s), 0),
            fmt(rows.median("http_publish", None, |r| r.requests_per_s), 0),
        );
    }
    out.push('\n');
    out.push_str("| server | protocol | 1k×10/s p50 / p99 ms | 10k×10/s p50 / p99 ms | max deliveries/s | server µs/delivery at max | p99 at max ms |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for k in &keys {
        let rows = Rows { records, key: k };
        // The kernel's floor (`write_floor`) fills the fan-out columns of its own row.
        let fan = |step: &str, field: fn(&Record) -> Option<f64>| {
            rows.median("fanout", Some(step), field).or_else(|| rows.median("write_floor", Some(step), field))
        };
        let pair = |step: &str| format!("{} / {}", fmt(fan(step, |r| r.p50_ms), 2), fmt(fan(step, |r| r.p99_ms), 2));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            row_name(k),
            protocol_name(k.1),
            pair("1000x10/s"),
            pair("10000x10/s"),
            fmt(rows.median_best_max(|r| r.delivered_per_s), 0),
            fmt(rows.median_best_max(|r| r.server_us_per_delivery), 2),
            fmt(rows.median_best_max(|r| r.p99_ms), 2),
        );
    }
    out.push('\n');
    out.push_str("| server | protocol | scenario | step | p50 ms | p99 ms | max ms | deliveries/s | ratio | server CPU % | generator CPU % | note |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in records.iter().filter(|r| {
        r.scenario == "fanout"
            || r.scenario == "write_floor"
            || (r.scenario == "max" && r.step.as_deref() != Some("summary"))
    }) {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.display_name(),
            protocol_name(r.protocol),
            r.scenario,
            r.step.as_deref().unwrap_or(""),
            fmt(r.p50_ms, 2),
            fmt(r.p99_ms, 2),
            fmt(r.max_ms, 1),
            fmt(r.delivered_per_s, 0),
            fmt(r.ratio, 4),
            fmt(r.server_cpu_pct, 0),
            fmt(r.gen_cpu_pct, 0),
            r.note.as_deref().unwrap_or("").replace('|', "/"),
        );
    }
    let skipped: Vec<&Record> = records.iter().filter(|r| r.scenario == "cross_node").collect();
    if let Some(r) = skipped.first() {
        let _ = writeln!(out, "\ncross-node: {}", r.note.as_deref().unwrap_or("no result"));
    }
    out
}

/// The records of one row key.
struct Rows<'a> {
    records: &'a [Record],
    key: &'a Key,
}

impl Rows<'_> {
    /// Median over repetitions of `field` taken from each run's best `max` step (highest
    /// deliveries/s among the steps that count, see [`counts_for_max`]).
    fn median_best_max(&self, field: impl Fn(&Record) -> Option<f64>) -> Option<f64> {
        let mine = self.records.iter().filter(|r| key_of(r) == *self.key && counts_for_max(r));
        // Runs are told apart by their step sequence: a new run starts where a step name repeats.
        let mut runs: Vec<Vec<&Record>> = Vec::new();
        for r in mine {
            let repeated = runs.last().is_some_and(|run| run.iter().any(|x| x.step == r.step));
            if runs.is_empty() || repeated {
                runs.push(Vec::new());
            }
            if let Some(run) = runs.last_mut() {
                run.push(r);
            }
        }
        let delivered = |r: &Record| r.delivered_per_s.unwrap_or(0.0);
        let mut v: Vec<f64> = runs
            .iter()
            .filter_map(|run| {
                let best = run.iter().max_by(|a, b| delivered(a).total_cmp(&delivered(b)))?;
                field(best)
            })
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }

    /// Median of `field` over this key's records of `scenario` (and `step`, when given).
    fn median(&self, scenario: &str, step: Option<&str>, field: impl Fn(&Record) -> Option<f64>) -> Option<f64> {
        let mut v: Vec<f64> = self
            .records
            .iter()
            .filter(|r| key_of(r) == *self.key && r.scenario == scenario)
            .filter(|r| step.is_none_or(|s| r.step.as_deref() == Some(s)))
            .filter_map(field)
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(v[v.len() / 2])
    }
}

/// A `max` step counts when everything it published arrived within a bounded tail, whether or
/// not the publishers kept the target rate: a server that slows its publishers down is
/// saturated, and what it delivered then is its capacity.
fn counts_for_max(r: &Record) -> bool {
    r.scenario == "max"
        && r.step.as_deref() != Some("summary")
        && r.ratio.is_some_and(|x| x >= MAX_RATIO)
        && r.p99_ms.is_some_and(|p| p <= MAX_P99_MS)
}

/// Delivery ratio a `max` step needs to count.
const MAX_RATIO: f64 = 0.999;
/// Highest p99 (ms) a `max` step may have to count.
const MAX_P99_MS: f64 = 1000.0;

/// `pusher`, `wamp2` or empty.
fn protocol_name(p: Option<Protocol>) -> &'static str {
    match p {
        Some(Protocol::Pusher) => "pusher",
        Some(Protocol::Wamp2) => "wamp2",
        None => "",
    }
}

/// A number with `decimals` places, or an em dash.
fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_repetitions_fill_the_row() {
        let mk = |p99: f64| Record {
            server: "herald".into(),
            protocol: Some(Protocol::Pusher),
            scenario: "fanout".into(),
            step: Some("1000x10/s".into()),
            p50_ms: Some(1.0),
            p99_ms: Some(p99),
            ..Record::default()
        };
        let table = render(&[mk(3.0), mk(9.0), mk(4.0)]);
        assert!(table.contains("| herald | pusher | 1.00 / 4.00 | — / — |"), "{table}");
    }

    #[test]
    fn max_is_the_best_complete_step_of_each_run() {
        let step = |name: &str, delivered: f64, ratio: f64| Record {
            server: "s".into(),
            scenario: "max".into(),
            step: Some(name.into()),
            delivered_per_s: Some(delivered),
            ratio: Some(ratio),
            p99_ms: Some(10.0),
            ..Record::default()
        };
        // Two runs: the second's last step lost deliveries and does not count.
        let records = [
            step("a", 100.0, 1.0),
            step("b", 200.0, 1.0),
            step("a", 100.0, 1.0),
            step("b", 300.0, 1.0),
            step("c", 900.0, 0.5),
        ];
        let key = ("s".to_owned(), None, false);
        let rows = Rows { records: &records, key: &key };
        // Per run: 200 and 300; the median of two picks the upper one.
        assert_eq!(rows.median_best_max(|r| r.delivered_per_s), Some(300.0));
    }

    #[test]
    fn tls_results_are_a_row_of_their_own_below_the_plain_row() {
        let mk = |server: &str, tls: bool, kb: f64| Record {
            server: server.into(),
            protocol: Some(Protocol::Pusher),
            tls,
            scenario: "idle".into(),
            step: Some("10000".into()),
            rss_kb_per_conn: Some(kb),
            ..Record::default()
        };
        let table = render(&[mk("herald", false, 1.8), mk("soketi", false, 7.8), mk("herald", true, 4.5)]);
        let rows: Vec<&str> = table.lines().skip(2).take(3).collect();
        assert!(rows[0].starts_with("| herald | pusher |") && rows[0].contains("| 1.80 |"), "{table}");
        assert!(rows[1].starts_with("| herald (tls) | pusher |") && rows[1].contains("| 4.50 |"), "{table}");
        assert!(rows[2].starts_with("| soketi | pusher |"), "{table}");
    }
}
