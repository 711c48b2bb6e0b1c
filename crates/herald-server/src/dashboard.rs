//! The operator's dashboard, served under `/dashboard` on the metrics listener only: live
//! charts per app, a debug console of what happens in an app, and an event creator.
//!
//! Off unless `[dashboard] enabled = true` (with a password and a metrics listener:
//! `config/dashboard.rs`). Its pages are embedded in the binary (`dashboard/assets/`), so it
//! needs nothing at run time but the process itself.
//!
//! - `auth.rs`: the password, session cookies, the brake on wrong passwords, address and
//!   origin rules.
//! - `api.rs`: the routes and their answers.
//! - `series.rs`: the sampler task and its bounded rings, for the charts.
//! - `tap.rs`: what sessions, the HTTP API and webhooks report to a watching console.

mod api;
mod auth;
pub(crate) mod series;
pub(crate) mod tap;

use std::sync::Arc;

use herald_core::Hub;
use tokio_util::sync::CancellationToken;

pub(crate) use api::{ConsoleBody, route};

use crate::config::DashboardSettings;

/// The dashboard of one herald: its settings, sessions and chart rings.
#[derive(Debug)]
pub(crate) struct Dashboard {
    settings: DashboardSettings,
    sessions: auth::Sessions,
    brake: auth::LoginBrake,
    series: Arc<series::Series>,
    /// Cancelled when herald stops: console streams end then.
    stop: CancellationToken,
}

impl Dashboard {
    /// A dashboard with these settings; its sampler runs until `stop` is cancelled.
    pub(crate) fn start(settings: DashboardSettings, hub: &Arc<Hub>, stop: &CancellationToken) -> Arc<Self> {
        let series = Arc::new(series::Series::default());
        tokio::spawn(series::run(Arc::clone(hub), Arc::clone(&series), stop.clone()));
        Arc::new(Self {
            settings,
            sessions: auth::Sessions::default(),
            brake: auth::LoginBrake::default(),
            series,
            stop: stop.clone(),
        })
    }
}

/// Whether `path` is the dashboard's.
pub(crate) fn is_dashboard_path(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/dashboard/")
}
