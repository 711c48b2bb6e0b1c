//! What the process as a whole reports and shares across listeners: readiness (draining or
//! not), the HTTP API's response counters and the per-address connection table.
//!
//! A leaf on purpose: the accept loop, the HTTP router, the health and metrics endpoints and the
//! shutdown all hold a [`ServerStatus`], and none of them may be needed to define it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hyper::StatusCode;

use crate::listen::per_ip::{PerIp, PerIpLimits};

/// The status codes the HTTP API answers with; anything else is counted as `other`.
pub(crate) const API_CODES: [u16; 9] = [200, 400, 401, 403, 404, 405, 413, 422, 500];

/// HTTP API responses by status code.
#[derive(Debug, Default)]
pub(crate) struct ApiCounters {
    /// One counter per [`API_CODES`] entry, then `other`.
    pub(crate) counts: [AtomicU64; API_CODES.len() + 1],
}

impl ApiCounters {
    /// Counts one response.
    pub(crate) fn record(&self, status: StatusCode) {
        let i = API_CODES.iter().position(|c| *c == status.as_u16()).unwrap_or(API_CODES.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// What the health and metrics endpoints report about the process as a whole.
#[derive(Debug)]
pub(crate) struct ServerStatus {
    /// Set once a drain starts; never cleared.
    draining: AtomicBool,
    /// HTTP API responses by status code.
    pub(crate) api: ApiCounters,
    /// WebSocket connections by client address, shared by every listener.
    pub(crate) per_ip: Arc<PerIp>,
    /// The webhooks' counters, when an app has webhooks.
    pub(crate) webhooks: Option<Arc<crate::webhook::metrics::WebhookMetrics>>,
    /// The `[app_store]` lookups' counters, when apps come from a table.
    pub(crate) app_store: Option<Arc<crate::app_store::StoreMetrics>>,
}

impl ServerStatus {
    /// A status enforcing these per-address connection limits.
    pub(crate) fn new(per_ip: PerIpLimits) -> Self {
        Self {
            draining: AtomicBool::new(false),
            api: ApiCounters::default(),
            per_ip: Arc::new(PerIp::new(per_ip)),
            webhooks: None,
            app_store: None,
        }
    }

    /// Marks the process as draining: `/ready` fails from now on.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether a drain has started.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_count_as_other() {
        let c = ApiCounters::default();
        c.record(StatusCode::OK);
        c.record(StatusCode::IM_A_TEAPOT);
        assert_eq!(c.counts[0].load(Ordering::Relaxed), 1);
        assert_eq!(c.counts[API_CODES.len()].load(Ordering::Relaxed), 1);
    }
}
