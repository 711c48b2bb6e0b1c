//! Per-address bounds on WebSocket connections: how many one client address may hold open
//! (`max_connections_per_ip`) and open per second (`max_new_connections_per_ip_per_second`).
//!
//! Only upgrades are counted: an HTTP API request is short and signed, a WebSocket is what a
//! flood holds on to. The address is the one `forwarded.rs` settled on, so clients behind a
//! trusted proxy are told apart. IPv6 clients are counted per /64, the block one host is
//! routinely given: counting single addresses would let one host open a connection from each.
//!
//! Memory stays bounded by the clients actually present: an address has an entry only while
//! it holds a connection or its current one-second window has not ended, and entries are
//! dropped on release or by a sweep at most once a second.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Length of a rate window.
const WINDOW: Duration = Duration::from_secs(1);

/// Bounds on the WebSocket upgrades of one client address; 0 turns a bound off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerIpLimits {
    /// Open WebSocket connections at once (`max_connections_per_ip`).
    pub max_connections: u32,
    /// New WebSocket connections per second (`max_new_connections_per_ip_per_second`).
    pub max_new_per_second: u32,
}

impl PerIpLimits {
    /// Whether any bound is on.
    pub fn any(&self) -> bool {
        self.max_connections > 0 || self.max_new_per_second > 0
    }
}

/// Why an upgrade is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PerIpRefusal {
    /// The address already holds `max_connections_per_ip` connections.
    #[error("Too many connections from your address")]
    TooMany,
    /// The address opened `max_new_connections_per_ip_per_second` connections this second.
    #[error("Too many new connections from your address; retry shortly")]
    TooFast {
        /// Whole seconds until the window ends (`Retry-After`).
        retry_after: u64,
    },
}

/// The connections of the whole process, by client address.
#[derive(Debug)]
pub(crate) struct PerIp {
    limits: PerIpLimits,
    table: Mutex<Table>,
    refused_open: AtomicU64,
    refused_rate: AtomicU64,
}

#[derive(Debug)]
struct Table {
    entries: HashMap<IpAddr, Entry>,
    last_sweep: Instant,
}

#[derive(Debug)]
struct Entry {
    open: u32,
    window_start: Instant,
    opened_in_window: u32,
}

impl Entry {
    /// Whether the entry says nothing that a fresh one would not.
    fn idle(&self, now: Instant) -> bool {
        self.open == 0 && now.duration_since(self.window_start) >= WINDOW
    }
}

/// One counted connection; releasing it (drop) gives the address its place back.
#[derive(Debug)]
pub(crate) struct PerIpSlot {
    owner: Arc<PerIp>,
    key: IpAddr,
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        self.owner.release(self.key, Instant::now());
    }
}

/// The address an upgrade is counted under: IPv6 reduced to its /64.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

impl PerIp {
    /// A table enforcing `limits` (which may be all off).
    pub(crate) fn new(limits: PerIpLimits) -> Self {
        Self {
            limits,
            table: Mutex::new(Table { entries: HashMap::new(), last_sweep: Instant::now() }),
            refused_open: AtomicU64::new(0),
            refused_rate: AtomicU64::new(0),
        }
    }

    /// Counts a new connection from `ip`: its slot, `None` when no limit is on (nothing to
    /// release), or why it is refused.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Option<PerIpSlot>, PerIpRefusal> {
        if !self.limits.any() {
            return Ok(None);
        }
        let key = key(ip);
        self.admit(key, Instant::now())?;
        Ok(Some(PerIpSlot { owner: Arc::clone(self), key }))
    }

    fn admit(&self, key: IpAddr, now: Instant) -> Result<(), PerIpRefusal> {
        let mut table = self.table.lock();
        if now.duration_since(table.last_sweep) >= WINDOW {
            table.entries.retain(|_, e| !e.idle(now));
            table.last_sweep = now;
        }
        let entry = table.entries.entry(key).or_insert(Entry { open: 0, window_start: now, opened_in_window: 0 });
        if now.duration_since(entry.window_start) >= WINDOW {
            entry.window_start = now;
            entry.opened_in_window = 0;
        }
        let refusal = if self.limits.max_connections > 0 && entry.open >= self.limits.max_connections {
            self.refused_open.fetch_add(1, Ordering::Relaxed);
            Some(PerIpRefusal::TooMany)
        } else if self.limits.max_new_per_second > 0 && entry.opened_in_window >= self.limits.max_new_per_second {
            self.refused_rate.fetch_add(1, Ordering::Relaxed);
            let left = WINDOW.saturating_sub(now.duration_since(entry.window_start));
            Some(PerIpRefusal::TooFast { retry_after: left.as_secs_f64().ceil().max(1.0) as u64 })
        } else {
            None
        };
        // A refusal needs counts above zero, so it never leaves an empty entry behind.
        if let Some(r) = refusal {
            return Err(r);
        }
        entry.open += 1;
        entry.opened_in_window += 1;
        Ok(())
    }

    fn release(&self, key: IpAddr, now: Instant) {
        let mut table = self.table.lock();
        let Some(entry) = table.entries.get_mut(&key) else { return };
        entry.open = entry.open.saturating_sub(1);
        if entry.idle(now) {
            table.entries.remove(&key);
        }
    }

    /// Upgrades refused so far: (over `max_connections_per_ip`, over the per-second rate).
    pub(crate) fn refused(&self) -> (u64, u64) {
        (self.refused_open.load(Ordering::Relaxed), self.refused_rate.load(Ordering::Relaxed))
    }

    /// Addresses with an entry now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table.lock().entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: u32, max_new_per_second: u32) -> PerIpLimits {
        PerIpLimits { max_connections, max_new_per_second }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn off_by_default_and_keeps_nothing() {
        let t = Arc::new(PerIp::new(PerIpLimits::default()));
        for _ in 0..1000 {
            assert!(t.acquire(ip("192.0.2.1")).unwrap().is_none());
        }
        assert_eq!(t.tracked(), 0);
    }

    #[test]
    fn concurrent_connections_are_bounded_and_released() {
        let t = Arc::new(PerIp::new(limits(2, 0)));
        let a = t.acquire(ip("192.0.2.1")).unwrap();
        let b = t.acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(t.acquire(ip("192.0.2.1")).unwrap_err(), PerIpRefusal::TooMany);
        assert!(t.acquire(ip("192.0.2.2")).is_ok(), "another address has its own count");
        drop(a);
        let c = t.acquire(ip("192.0.2.1")).unwrap();
        assert_eq!(t.refused(), (1, 0));
        drop((b, c));
        // Entries stay for the rest of their window only.
        t.release(ip("198.51.100.1"), Instant::now());
        t.admit(ip("198.51.100.9"), Instant::now() + WINDOW).unwrap();
        assert_eq!(t.tracked(), 1, "idle entries are swept");
    }

    #[test]
    fn new_connections_per_second_are_bounded_per_window() {
        let t = PerIp::new(limits(0, 3));
        let a = ip("203.0.113.7");
        let start = Instant::now();
        for _ in 0..3 {
            t.admit(a, start).unwrap();
        }
        assert_eq!(t.admit(a, start + Duration::from_millis(10)), Err(PerIpRefusal::TooFast { retry_after: 1 }));
        t.admit(a, start + WINDOW).unwrap();
        assert_eq!(t.refused(), (0, 1));
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let t = Arc::new(PerIp::new(limits(1, 0)));
        let _a = t.acquire(ip("2001:db8:1:2::1")).unwrap();
        assert!(t.acquire(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(t.acquire(ip("2001:db8:1:3::1")).is_ok());
    }

    #[test]
    fn an_entry_ends_with_its_last_connection_and_window() {
        let t = PerIp::new(limits(0, 1));
        let now = Instant::now();
        t.admit(ip("192.0.2.1"), now).unwrap();
        assert!(t.admit(ip("192.0.2.1"), now).is_err());
        t.release(ip("192.0.2.1"), now + WINDOW);
        assert_eq!(t.tracked(), 0);
    }
}
