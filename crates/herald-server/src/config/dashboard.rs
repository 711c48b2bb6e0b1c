//! The `[dashboard]` section: whether the operator's dashboard is served (on the metrics
//! listener only), its password, and who may reach it.
//!
//! Off by default. Turning it on without a metrics listener or without a password is refused
//! here, before anything binds: a dashboard nobody can reach, or anyone can use, is a mistake.

use serde::Deserialize;

use super::ConfigError;
use super::layers::Sources;
use crate::listen::forwarded::IpNet;

/// Addresses admitted when `allowed_addresses` is not set: the machine itself.
const LOOPBACK_NETS: [&str; 2] = ["127.0.0.0/8", "::1/128"];
/// Shortest password accepted: it is the only thing between a local user and every app.
const MIN_PASSWORD_LEN: usize = 12;

/// `[dashboard]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DashboardFile {
    enabled: Option<bool>,
    password: Option<String>,
    allowed_addresses: Option<Vec<String>>,
    allowed_origins: Option<Vec<String>>,
}

/// Validated dashboard settings.
#[derive(Clone, PartialEq, Eq)]
pub struct DashboardSettings {
    /// The password of the login form.
    pub password: String,
    /// Client addresses (after trusted proxies) that may reach `/dashboard`; others get 403.
    pub allowed_addresses: Vec<IpNet>,
    /// Origins, besides the dashboard's own, whose state-changing requests are accepted.
    pub allowed_origins: Vec<String>,
}

impl std::fmt::Debug for DashboardSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashboardSettings")
            .field("password", &"<redacted>")
            .field("allowed_addresses", &self.allowed_addresses)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

/// Builds the settings; `None` while the dashboard is off. `metrics_on` says whether the
/// metrics listener, the only one that serves the dashboard, exists.
///
/// # Errors
/// [`ConfigError::Invalid`] naming the key: on without a metrics listener or a password, a
/// short password, an address that is not a CIDR, an origin that is not `scheme://host[:port]`.
pub(super) fn build(
    file: Option<&DashboardFile>,
    metrics_on: bool,
    sources: &Sources,
) -> Result<Option<DashboardSettings>, ConfigError> {
    let Some(file) = file.filter(|f| f.enabled == Some(true)) else { return Ok(None) };
    if !metrics_on {
        let problem = "needs the metrics listener, which serves the dashboard: set server.metrics_port".into();
        return Err(sources.invalid("dashboard.enabled", problem));
    }
    let password = file.password.clone().unwrap_or_default();
    if password.is_empty() {
        return Err(sources.invalid("dashboard.password", "is required when dashboard.enabled = true".into()));
    }
    if password.chars().count() < MIN_PASSWORD_LEN {
        let problem = format!("must be at least {MIN_PASSWORD_LEN} characters");
        return Err(sources.invalid("dashboard.password", problem));
    }
    let mut allowed_addresses = Vec::new();
    match &file.allowed_addresses {
        None => allowed_addresses.extend(LOOPBACK_NETS.iter().filter_map(|n| n.parse::<IpNet>().ok())),
        Some(list) => {
            for (i, a) in list.iter().enumerate() {
                let net = a.parse::<IpNet>().map_err(|()| {
                    let key = format!("dashboard.allowed_addresses[{i}]");
                    sources.invalid(&key, format!("{a:?} is not an IP address or CIDR"))
                })?;
                allowed_addresses.push(net);
            }
        }
    }
    let mut allowed_origins = Vec::new();
    for (i, o) in file.allowed_origins.iter().flatten().enumerate() {
        let origin = o.trim_end_matches('/');
        let well_formed = origin.split_once("://").is_some_and(|(scheme, host)| {
            matches!(scheme, "http" | "https") && !host.is_empty() && !host.contains('/')
        });
        if !well_formed {
            let key = format!("dashboard.allowed_origins[{i}]");
            return Err(sources.invalid(&key, format!("{o:?} is not an origin such as \"https://ops.example.com\"")));
        }
        allowed_origins.push(origin.to_ascii_lowercase());
    }
    Ok(Some(DashboardSettings { password, allowed_addresses, allowed_origins }))
}
