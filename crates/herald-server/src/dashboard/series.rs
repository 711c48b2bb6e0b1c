//! The dashboard's charts: per app, one point a second for ten minutes and one a minute for a
//! day, sampled from the counters herald keeps anyway (connections, occupied channels,
//! messages in and out).
//!
//! The sampler task reads them once a second, so the charts cost nothing on the hot paths;
//! every ring is bounded, and an app that is no longer served loses its rings.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_core::stats::Protocol;
use herald_core::{App, Hub};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::tap;

/// Points of the per-second series: ten minutes.
pub(crate) const SECONDS: usize = 600;
/// Points of the per-minute series: a day.
pub(crate) const MINUTES: usize = 1440;

/// One point of a chart.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Point {
    /// Unix time of the point's start, in seconds.
    pub(crate) t: u64,
    /// Open connections.
    pub(crate) connections: f64,
    /// Occupied channels.
    pub(crate) channels: f64,
    /// Client messages received, per second.
    pub(crate) messages_in: f64,
    /// Messages queued to subscribers, per second.
    pub(crate) messages_out: f64,
}

/// A bounded ring of points, oldest first.
#[derive(Debug)]
pub(crate) struct Ring {
    points: VecDeque<Point>,
    cap: usize,
}

impl Ring {
    pub(crate) fn new(cap: usize) -> Self {
        Self { points: VecDeque::with_capacity(cap.min(64)), cap }
    }

    pub(crate) fn push(&mut self, p: Point) {
        if self.points.len() == self.cap {
            self.points.pop_front();
        }
        self.points.push_back(p);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    fn json(&self, step: u64) -> Value {
        let col = |f: fn(&Point) -> f64| self.points.iter().map(|p| round(f(p))).collect::<Vec<_>>();
        json!({
            "step": step,
            "t": self.points.iter().map(|p| p.t).collect::<Vec<_>>(),
            "connections": col(|p| p.connections),
            "channels": col(|p| p.channels),
            "messages_in": col(|p| p.messages_in),
            "messages_out": col(|p| p.messages_out),
        })
    }
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The rings of one app, and what the next sample needs to turn totals into rates.
#[derive(Debug)]
pub(crate) struct AppSeries {
    pub(crate) seconds: Ring,
    pub(crate) minutes: Ring,
    /// The last totals of messages in and out.
    last: Option<(u64, u64)>,
    /// The minute being summed: its start and the per-second points so far.
    minute: Option<(u64, Point, u32)>,
}

impl Default for AppSeries {
    fn default() -> Self {
        Self { seconds: Ring::new(SECONDS), minutes: Ring::new(MINUTES), last: None, minute: None }
    }
}

impl AppSeries {
    /// Records the sample taken at unix second `t`: gauges as they are, message totals since
    /// start (turned into rates against the previous sample).
    pub(crate) fn record(&mut self, t: u64, connections: u64, channels: u64, total_in: u64, total_out: u64) {
        let (rate_in, rate_out) = match self.last {
            Some((i, o)) => (total_in.saturating_sub(i), total_out.saturating_sub(o)),
            None => (0, 0),
        };
        self.last = Some((total_in, total_out));
        let p = Point {
            t,
            connections: connections as f64,
            channels: channels as f64,
            messages_in: rate_in as f64,
            messages_out: rate_out as f64,
        };
        self.seconds.push(p);
        let start = t - t % 60;
        match &mut self.minute {
            Some((s, sum, n)) if *s == start => {
                sum.connections += p.connections;
                sum.channels += p.channels;
                sum.messages_in += p.messages_in;
                sum.messages_out += p.messages_out;
                *n += 1;
            }
            _ => {
                // A minute is over: its point is the mean of its seconds.
                if let Some((s, sum, n)) = self.minute.take() {
                    self.minutes.push(mean(s, sum, n));
                }
                self.minute = Some((start, p, 1));
            }
        }
    }

    /// Both series as JSON; the minute being summed is shown as it stands.
    pub(crate) fn json(&self) -> Value {
        let mut minutes = self.minutes.json(60);
        if let Some((s, sum, n)) = self.minute {
            let p = mean(s, sum, n);
            let mut add = |key: &str, v: Value| {
                if let Some(a) = minutes.get_mut(key).and_then(Value::as_array_mut) {
                    a.push(v);
                }
            };
            add("t", p.t.into());
            add("connections", round(p.connections).into());
            add("channels", round(p.channels).into());
            add("messages_in", round(p.messages_in).into());
            add("messages_out", round(p.messages_out).into());
        }
        json!({ "seconds": self.seconds.json(1), "minutes": minutes })
    }
}

fn mean(t: u64, sum: Point, n: u32) -> Point {
    let n = f64::from(n.max(1));
    Point {
        t,
        connections: sum.connections / n,
        channels: sum.channels / n,
        messages_in: sum.messages_in / n,
        messages_out: sum.messages_out / n,
    }
}

/// Every app's rings, by app id.
#[derive(Debug, Default)]
pub(crate) struct Series {
    apps: Mutex<HashMap<String, AppSeries>>,
}

impl Series {
    /// The app's series as JSON (empty ones before the first sample).
    pub(crate) fn json(&self, app_id: &str) -> Value {
        self.apps.lock().get(app_id).map_or_else(|| AppSeries::default().json(), AppSeries::json)
    }

    /// Samples every app once.
    pub(crate) fn sample(&self, hub: &Hub, t: u64) {
        // Owned handles: the registry may be swapped while the sampler runs.
        let apps: Vec<Arc<App>> = hub.apps().iter().cloned().collect();
        let readings: Vec<_> = apps
            .iter()
            .map(|app| {
                let (channels, _) = hub.subscription_totals(app);
                let total = |c: &herald_core::stats::PerProtocol| Protocol::ALL.iter().map(|p| c.get(*p)).sum::<u64>();
                (
                    app.config.id.clone(),
                    app.connection_count() as u64,
                    channels as u64,
                    total(&app.stats.messages_in),
                    total(&app.stats.messages_out),
                )
            })
            .collect();
        let mut rings = self.apps.lock();
        rings.retain(|id, _| readings.iter().any(|r| &r.0 == id));
        for (id, connections, channels, total_in, total_out) in readings {
            rings.entry(id).or_default().record(t, connections, channels, total_in, total_out);
        }
    }
}

/// Samples every second until `stop` is cancelled.
pub(crate) async fn run(hub: Arc<Hub>, series: Arc<Series>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        series.sample(&hub, t);
        tap::flush_sampled();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_bounded_and_keep_the_newest() {
        let mut r = Ring::new(3);
        for t in 0..5 {
            r.push(Point { t, ..Point::default() });
        }
        assert_eq!(r.len(), 3);
        assert_eq!(r.points.front().map(|p| p.t), Some(2));
        assert_eq!(r.points.back().map(|p| p.t), Some(4));
    }

    #[test]
    fn totals_become_rates_and_minutes_are_means() {
        let mut s = AppSeries::default();
        // 60 seconds of minute 0: 10 messages a second in, connections 0 then 2.
        for i in 0..60u64 {
            s.record(120 + i, if i < 30 { 0 } else { 2 }, 1, 10 * i, 5 * i);
        }
        assert_eq!(s.seconds.len(), 60);
        let first = s.seconds.points[0];
        assert_eq!((first.messages_in, first.messages_out), (0.0, 0.0), "no rate before a second sample");
        assert_eq!(s.seconds.points[1].messages_in, 10.0);
        assert_eq!(s.minutes.len(), 0, "the minute is not over yet");
        s.record(180, 2, 1, 600, 300);
        assert_eq!(s.minutes.len(), 1);
        let m = s.minutes.points[0];
        assert_eq!(m.t, 120);
        assert_eq!(m.connections, 1.0);
        assert!((m.messages_in - 10.0 * 59.0 / 60.0).abs() < 1e-9);
        let json = s.json();
        assert_eq!(json["minutes"]["t"].as_array().map(Vec::len), Some(2), "the open minute is shown");
    }

    #[test]
    fn a_day_of_seconds_leaves_bounded_rings() {
        let mut s = AppSeries::default();
        for t in 0..(86_400 + 7_200) {
            s.record(t, 1, 1, t, t);
        }
        assert_eq!(s.seconds.len(), SECONDS);
        assert_eq!(s.minutes.len(), MINUTES);
    }
}
