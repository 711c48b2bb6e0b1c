//! The debug console's tap: what sessions, the HTTP API and webhook delivery report for the
//! dashboard's live console.
//!
//! Cheap when nobody looks: every report first loads the app's watcher count (one relaxed
//! atomic load) and returns when it is zero, before building anything. When a console watches,
//! reports are held to [`RATE_CAP`] a second per app (the rest only counted, then announced as
//! "N not shown"), serialised once, and offered to each watcher's bounded queue with
//! `try_send`: a page that reads too slowly loses entries (counted too), it never slows the
//! session or publisher that reported.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use bytes::Bytes;
use herald_core::App;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;

/// Most entries a second one app's consoles are sent; the rest are counted.
pub(crate) const RATE_CAP: u32 = 200;
/// Entries queued for one console before it is considered slow and loses some.
const WATCHER_QUEUE: usize = 1024;
/// Longest text of a publication's data shown in the console.
const DATA_PREVIEW: usize = 200;

/// Consoles watching any app: the webhook delivery knows an app only by id, and skips the
/// table look-up with this one load while nobody watches anything.
static WATCHING: AtomicU64 = AtomicU64::new(0);

/// Each watched app's consoles, by app id.
static TAPS: LazyLock<Mutex<HashMap<Box<str>, Tap>>> = LazyLock::new(Mutex::default);

/// The consoles of one app and its rate cap.
#[derive(Default)]
struct Tap {
    watchers: Vec<Watcher>,
    cap: RateCap,
}

/// One console's queue, and what it lost because it was full.
struct Watcher {
    tx: mpsc::Sender<Bytes>,
    lost: Arc<AtomicU64>,
}

/// One-second windows of at most `cap` entries; what is over is counted.
#[derive(Debug)]
pub(crate) struct RateCap {
    cap: u32,
    window: Option<Instant>,
    taken: u32,
    skipped: u64,
}

impl Default for RateCap {
    fn default() -> Self {
        Self::new(RATE_CAP)
    }
}

/// What [`RateCap::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Send it; `skipped` entries of the windows before were not sent (announce them first).
    Yes {
        /// Entries not sent since the last announcement.
        skipped: u64,
    },
    /// Over the cap in this window: counted, not sent.
    No,
}

impl RateCap {
    pub(crate) fn new(cap: u32) -> Self {
        Self { cap, window: None, taken: 0, skipped: 0 }
    }

    /// Whether an entry at `now` may be sent.
    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        let skipped = self.roll(now);
        if self.taken >= self.cap {
            self.skipped += 1;
            return Admit::No;
        }
        self.taken += 1;
        Admit::Yes { skipped }
    }

    /// Starts a new window when the current one is over; returns what the old ones skipped.
    pub(crate) fn roll(&mut self, now: Instant) -> u64 {
        match self.window {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => 0,
            _ => {
                self.window = Some(now);
                self.taken = 0;
                std::mem::take(&mut self.skipped)
            }
        }
    }
}

/// One console entry. Only built when a console watches.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Entry<'a> {
    /// `open`, `close`, `subscribe`, `unsubscribe`, `publish`, `client_event`, `webhook`,
    /// `error`; and the console's own `sampled` and `lost`.
    pub(crate) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) socket_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) protocol: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) event: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) count: Option<u64>,
}

/// Whether a console watches `app`: the one load every report starts with.
#[inline]
fn watched(app: &App) -> bool {
    app.stats.watchers.load(Ordering::Relaxed) != 0
}

/// A connection opened.
#[inline]
pub(crate) fn opened(app: &App, socket_id: &str, protocol: &str) {
    if watched(app) {
        emit(
            &app.config.id,
            &Entry { kind: "open", socket_id: Some(socket_id), protocol: Some(protocol), ..Entry::default() },
        );
    }
}

/// A connection closed; `goodbye` is the close frame it was sent, if any (its code is shown).
#[inline]
pub(crate) fn closed(app: &App, socket_id: &str, goodbye: Option<&Bytes>) {
    if watched(app) {
        let code = goodbye.and_then(|f| close_code(f));
        let detail = if goodbye.is_none() { Some("connection lost") } else { None };
        emit(&app.config.id, &Entry { kind: "close", socket_id: Some(socket_id), code, detail, ..Entry::default() });
    }
}

/// A subscription (`subscribe`) or its end (`unsubscribe`).
#[inline]
pub(crate) fn subscription(app: &App, kind: &'static str, socket_id: &str, channel: &str) {
    if watched(app) {
        emit(&app.config.id, &Entry { kind, socket_id: Some(socket_id), channel: Some(channel), ..Entry::default() });
    }
}

/// A publication accepted from `source` (`http`, `wamp`, `dashboard`).
#[inline]
pub(crate) fn published(app: &App, source: &str, channel: &str, event: &str, data: &str) {
    if watched(app) {
        let preview = preview(data);
        let entry = Entry {
            kind: "publish",
            protocol: Some(source),
            channel: Some(channel),
            event: Some(event),
            detail: Some(&preview),
            ..Entry::default()
        };
        emit(&app.config.id, &entry);
    }
}

/// A client event relayed by a Pusher session.
#[inline]
pub(crate) fn client_event(app: &App, socket_id: &str, channel: &str, event: &str) {
    if watched(app) {
        let entry = Entry {
            kind: "client_event",
            socket_id: Some(socket_id),
            channel: Some(channel),
            event: Some(event),
            ..Entry::default()
        };
        emit(&app.config.id, &entry);
    }
}

/// An error a client was answered with (`code` when its wire has one).
#[inline]
pub(crate) fn error(app: &App, socket_id: &str, channel: Option<&str>, code: Option<u16>, message: &str) {
    if watched(app) {
        let entry = Entry {
            kind: "error",
            socket_id: Some(socket_id),
            channel,
            code,
            detail: Some(message),
            ..Entry::default()
        };
        emit(&app.config.id, &entry);
    }
}

/// A webhook request of the app `app_id` settled: `status` when one came back, `outcome` in words.
#[inline]
pub(crate) fn webhook(app_id: &str, url: &str, status: Option<u16>, outcome: &str, events: usize) {
    if WATCHING.load(Ordering::Relaxed) != 0 {
        let detail = format!("{outcome}: {url}");
        let entry = Entry {
            kind: "webhook",
            code: status,
            detail: Some(&detail),
            count: Some(events as u64),
            ..Entry::default()
        };
        emit(app_id, &entry);
    }
}

/// The cold path: under the cap, serialise once and offer to every console of the app.
#[cold]
fn emit(app_id: &str, entry: &Entry<'_>) {
    let mut taps = TAPS.lock();
    let Some(tap) = taps.get_mut(app_id) else { return };
    match tap.cap.admit(Instant::now()) {
        Admit::No => {}
        Admit::Yes { skipped } => {
            if skipped > 0 {
                let notice = Entry { kind: "sampled", count: Some(skipped), ..Entry::default() };
                offer(&mut tap.watchers, &sse(&notice));
            }
            offer(&mut tap.watchers, &sse(entry));
        }
    }
}

/// Announces what the rate cap held back once its window is over, though nothing new came:
/// called by the sampler every second.
pub(crate) fn flush_sampled() {
    if WATCHING.load(Ordering::Relaxed) == 0 {
        return;
    }
    let now = Instant::now();
    for tap in TAPS.lock().values_mut() {
        let skipped = tap.cap.roll(now);
        if skipped > 0 {
            let notice = Entry { kind: "sampled", count: Some(skipped), ..Entry::default() };
            offer(&mut tap.watchers, &sse(&notice));
        }
    }
}

/// Queues `frame` for each console; a full one counts a loss, a gone one is forgotten.
fn offer(watchers: &mut Vec<Watcher>, frame: &Bytes) {
    watchers.retain(|w| match w.tx.try_send(frame.clone()) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            w.lost.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    });
}

/// An entry as one Server-Sent Events message, stamped with the time.
pub(crate) fn sse(entry: &Entry<'_>) -> Bytes {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut value = serde_json::to_value(entry).unwrap_or_default();
    value["t"] = t.into();
    Bytes::from(format!("data: {value}\n\n"))
}

/// A console watching one app: its queue, until dropped.
pub(crate) struct Watch {
    pub(crate) rx: mpsc::Receiver<Bytes>,
    pub(crate) lost: Arc<AtomicU64>,
    app: Arc<App>,
}

impl Watch {
    /// Starts watching `app`.
    pub(crate) fn start(app: Arc<App>) -> Self {
        let (tx, rx) = mpsc::channel(WATCHER_QUEUE);
        let lost = Arc::new(AtomicU64::new(0));
        TAPS.lock()
            .entry(Box::from(app.config.id.as_str()))
            .or_default()
            .watchers
            .push(Watcher { tx, lost: Arc::clone(&lost) });
        app.stats.watchers.fetch_add(1, Ordering::Relaxed);
        WATCHING.fetch_add(1, Ordering::Relaxed);
        Self { rx, lost, app }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.rx.close();
        self.app.stats.watchers.fetch_sub(1, Ordering::Relaxed);
        WATCHING.fetch_sub(1, Ordering::Relaxed);
        let mut taps = TAPS.lock();
        if let Some(tap) = taps.get_mut(self.app.config.id.as_str()) {
            tap.watchers.retain(|w| !w.tx.is_closed());
            if tap.watchers.is_empty() {
                taps.remove(self.app.config.id.as_str());
            }
        }
    }
}

/// The status code of the close frame in `frames` (complete WebSocket frames, server side,
/// unmasked: a WAMP GOODBYE may come before the close).
fn close_code(frames: &[u8]) -> Option<u16> {
    let mut rest = frames;
    while rest.len() >= 2 {
        let opcode = rest[0] & 0x0f;
        let (len, head): (usize, usize) = match rest[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?])), 4),
            127 => (usize::try_from(u64::from_be_bytes(rest.get(2..10)?.try_into().ok()?)).ok()?, 10),
            n => (usize::from(n), 2),
        };
        let payload = rest.get(head..head.checked_add(len)?)?;
        if opcode == 0x8 {
            return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
        }
        rest = &rest[head + len..];
    }
    None
}

/// At most [`DATA_PREVIEW`] characters of `data`.
fn preview(data: &str) -> String {
    match data.char_indices().nth(DATA_PREVIEW) {
        Some((i, _)) => format!("{}…", &data[..i]),
        None => data.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_admits_so_many_a_second_and_announces_the_rest() {
        let mut cap = RateCap::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(cap.admit(t0), Admit::Yes { skipped: 0 });
        }
        assert_eq!(cap.admit(t0 + Duration::from_millis(500)), Admit::No);
        assert_eq!(cap.admit(t0 + Duration::from_millis(900)), Admit::No);
        // The next window sends again, and says how many the last one held back.
        assert_eq!(cap.admit(t0 + Duration::from_millis(1000)), Admit::Yes { skipped: 2 });
        assert_eq!(cap.admit(t0 + Duration::from_millis(1001)), Admit::Yes { skipped: 0 });
    }

    #[test]
    fn rolling_an_idle_window_reports_what_was_skipped_once() {
        let mut cap = RateCap::new(1);
        let t0 = Instant::now();
        assert_eq!(cap.admit(t0), Admit::Yes { skipped: 0 });
        assert_eq!(cap.admit(t0), Admit::No);
        assert_eq!(cap.roll(t0 + Duration::from_millis(10)), 0, "window not over");
        assert_eq!(cap.roll(t0 + Duration::from_secs(1)), 1);
        assert_eq!(cap.roll(t0 + Duration::from_secs(3)), 0);
    }

    #[test]
    fn a_full_console_loses_entries_and_never_blocks() {
        let (tx, mut rx) = mpsc::channel(2);
        let lost = Arc::new(AtomicU64::new(0));
        let mut watchers = vec![Watcher { tx, lost: Arc::clone(&lost) }];
        for _ in 0..5 {
            offer(&mut watchers, &Bytes::from_static(b"x"));
        }
        assert_eq!(lost.load(Ordering::Relaxed), 3);
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"x"));
        drop(rx);
        offer(&mut watchers, &Bytes::from_static(b"x"));
        assert!(watchers.is_empty(), "a closed console is forgotten");
    }

    #[test]
    fn close_codes_are_read_from_the_goodbye_frames() {
        let close = herald_protocol::ws::encode_close(4201, "Pong reply not received");
        assert_eq!(close_code(&close), Some(4201));
        let mut both = herald_protocol::ws::encode_text(b"[6,{},\"wamp.close.system_shutdown\"]").to_vec();
        both.extend_from_slice(&herald_protocol::ws::encode_close(1001, ""));
        assert_eq!(close_code(&both), Some(1001));
        assert_eq!(close_code(b""), None);
    }
}
