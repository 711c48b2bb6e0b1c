//! Who may use the dashboard: the password, the session cookie it earns, the per-address
//! brake on wrong passwords, and the address and origin rules.
//!
//! The session table and the brake's table are bounded, so neither grows with what strangers
//! send.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use hyper::HeaderMap;
use hyper::header;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::DashboardSettings;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "herald_dashboard";
/// How long a session lasts after login.
pub(crate) const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at once; the oldest goes when a new one would not fit.
const MAX_SESSIONS: usize = 64;
/// Wrong passwords one address may try in [`ATTEMPT_WINDOW`] before it gets 429.
pub(crate) const MAX_FAILURES: u32 = 5;
/// The window the wrong passwords are counted over.
const ATTEMPT_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered; when full, the stalest go.
const MAX_TRACKED: usize = 4096;

/// The live sessions.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    /// Token (hex) to expiry.
    table: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    /// A new session's token.
    pub(crate) fn open(&self, now: Instant) -> String {
        let token = hex::encode(rand::random::<[u8; 32]>());
        let mut table = self.table.lock();
        table.retain(|_, expiry| *expiry > now);
        if table.len() >= MAX_SESSIONS
            && let Some(oldest) = table.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            table.remove(&oldest);
        }
        table.insert(token.clone(), now + SESSION_TTL);
        token
    }

    /// Whether the request's cookie names a live session.
    pub(crate) fn valid(&self, headers: &HeaderMap, now: Instant) -> bool {
        let Some(token) = cookie(headers) else { return false };
        self.table.lock().get(token).is_some_and(|expiry| *expiry > now)
    }

    /// Ends the request's session, if any.
    pub(crate) fn close(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers) {
            self.table.lock().remove(token);
        }
    }
}

/// The session token of the request's `Cookie` header.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Wrong passwords per address.
#[derive(Debug, Default)]
pub(crate) struct LoginBrake {
    table: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl LoginBrake {
    /// Whether `addr` has used up its wrong passwords for now.
    pub(crate) fn blocked(&self, addr: IpAddr, now: Instant) -> bool {
        self.table
            .lock()
            .get(&addr)
            .is_some_and(|(since, n)| now.duration_since(*since) < ATTEMPT_WINDOW && *n >= MAX_FAILURES)
    }

    /// Counts one wrong password from `addr`.
    pub(crate) fn failed(&self, addr: IpAddr, now: Instant) {
        let mut table = self.table.lock();
        if table.len() >= MAX_TRACKED && !table.contains_key(&addr) {
            table.retain(|_, (since, _)| now.duration_since(*since) < ATTEMPT_WINDOW);
            if table.len() >= MAX_TRACKED {
                // Still full of fresh failures: forget one rather than grow.
                if let Some(k) = table.keys().next().copied() {
                    table.remove(&k);
                }
            }
        }
        let entry = table.entry(addr).or_insert((now, 0));
        if now.duration_since(entry.0) >= ATTEMPT_WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

/// Whether `given` is the password, in time that does not depend on where they differ (both
/// are hashed first, so the length does not show either).
pub(crate) fn password_matches(settings: &DashboardSettings, given: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(settings.password.as_bytes());
    a.ct_eq(&b).into()
}

/// Whether the client address may reach the dashboard.
pub(crate) fn address_allowed(settings: &DashboardSettings, client: IpAddr) -> bool {
    settings.allowed_addresses.iter().any(|n| n.contains(client))
}

/// Whether a state-changing request comes from the dashboard's own page (its `Origin` is this
/// listener as the request's `Host` names it) or from an allowed origin. No `Origin`: refused.
pub(crate) fn origin_allowed(settings: &DashboardSettings, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return false };
    let origin = origin.to_ascii_lowercase();
    let own =
        headers.get(header::HOST).and_then(|v| v.to_str().ok()).map(|h| format!("http://{}", h.to_ascii_lowercase()));
    own.as_deref() == Some(origin.as_str()) || settings.allowed_origins.contains(&origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn settings() -> DashboardSettings {
        DashboardSettings {
            password: "correct horse battery".into(),
            allowed_addresses: vec!["127.0.0.0/8".parse().unwrap()],
            allowed_origins: vec!["https://ops.example.com".into()],
        }
    }

    #[test]
    fn sessions_are_bounded_and_expire() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let first = s.open(t0);
        for _ in 0..MAX_SESSIONS {
            s.open(t0 + Duration::from_secs(1));
        }
        assert_eq!(s.table.lock().len(), MAX_SESSIONS);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("a=b; {COOKIE}={first}")).unwrap());
        assert!(!s.valid(&h, t0), "the oldest session made room");
        let last = s.open(t0 + Duration::from_secs(2));
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("{COOKIE}={last}")).unwrap());
        assert!(s.valid(&h, t0 + Duration::from_secs(3)));
        assert!(!s.valid(&h, t0 + SESSION_TTL + Duration::from_secs(3)));
    }

    #[test]
    fn the_brake_blocks_after_so_many_failures_then_lets_go() {
        let b = LoginBrake::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(!b.blocked(ip, t0));
            b.failed(ip, t0);
        }
        assert!(b.blocked(ip, t0));
        assert!(!b.blocked("127.0.0.2".parse().unwrap(), t0));
        assert!(!b.blocked(ip, t0 + ATTEMPT_WINDOW));
    }

    #[test]
    fn password_and_origin_rules() {
        let s = settings();
        assert!(password_matches(&s, "correct horse battery"));
        assert!(!password_matches(&s, "correct horse batter"));
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9601"));
        assert!(!origin_allowed(&s, &h), "no Origin");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://127.0.0.1:9601"));
        assert!(origin_allowed(&s, &h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.example"));
        assert!(!origin_allowed(&s, &h));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://ops.example.com"));
        assert!(origin_allowed(&s, &h));
    }
}
