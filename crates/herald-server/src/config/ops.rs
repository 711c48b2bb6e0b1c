//! The operations keys of `[server]` and `[[listeners]]`: TLS files, the metrics listener,
//! the reverse-proxy path prefix and trusted proxies, SO_REUSEPORT, the pid file and the
//! per-address connection limits.
//!
//! Only parsing and validation live here; nothing is read from disk but the config itself
//! (certificates are loaded by `tls.rs` before any port is bound).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::layers::Sources;
use super::{ConfigError, ListenerFile, ServerSection};
use crate::listen::forwarded::IpNet;
use crate::listen::per_ip::PerIpLimits;
use crate::tls::{Passphrase, TlsFiles};

/// Default address of the separate metrics listener: loopback, never public by accident.
const METRICS_HOST: &str = "127.0.0.1";

/// Validated operations settings.
#[derive(Clone, Debug)]
pub struct OpsSettings {
    /// Certificate and key of the main listener; `None` serves plain HTTP/WS.
    pub tls: Option<TlsFiles>,
    /// Longest a client may take to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Where `/metrics` and the detailed `/health` are served (with `/up` and `/ready`); `None`:
    /// nowhere, the main listener never serves them.
    pub metrics_addr: Option<(String, u16)>,
    /// A path prefix a reverse proxy forwards (e.g. `/ws`), stripped before routing.
    pub path_prefix: Option<String>,
    /// Peers whose `X-Forwarded-For` header is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Bind listeners with SO_REUSEPORT, so a new herald can take over the port.
    pub reuse_port: bool,
    /// Where the running herald writes its pid, for `herald restart` and `--takeover`.
    pub pid_file: Option<PathBuf>,
    /// WebSocket connections one client address may hold and open (`listen/per_ip.rs`).
    pub per_ip: PerIpLimits,
}

impl Default for OpsSettings {
    fn default() -> Self {
        Self {
            tls: None,
            tls_handshake_timeout: Duration::from_secs(10),
            metrics_addr: None,
            path_prefix: None,
            trusted_proxies: Vec::new(),
            reuse_port: false,
            pid_file: None,
            per_ip: PerIpLimits::default(),
        }
    }
}

/// Builds [`OpsSettings`] from the merged `[server]` (file, aliases, environment already
/// layered by `config/layers.rs`); `sources` names the layer at fault in errors.
pub(super) fn build(server: &ServerSection, sources: &Sources) -> Result<OpsSettings, ConfigError> {
    let mut o = OpsSettings::default();
    let nonempty = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
    o.tls = tls_files(
        nonempty(&server.tls_cert),
        nonempty(&server.tls_key),
        server.tls_passphrase.clone().filter(|p| !p.is_empty()),
        sources,
        "server",
    )?;
    if let Some(t) = server.tls_handshake_timeout {
        if t == 0 {
            return Err(sources.invalid("server.tls_handshake_timeout", "must be at least 1 second".into()));
        }
        o.tls_handshake_timeout = Duration::from_secs(t);
    }

    let metrics_host = server.metrics_host.clone().unwrap_or_else(|| METRICS_HOST.to_owned());
    if metrics_host.parse::<IpAddr>().is_err() && metrics_host != "localhost" {
        return Err(sources.invalid("server.metrics_host", format!("{metrics_host:?} is not an IP address")));
    }
    o.metrics_addr = server.metrics_port.map(|p| (metrics_host, p));

    o.path_prefix = match server.path_prefix.as_deref() {
        None | Some("" | "/") => None,
        Some(p) => Some(path_prefix(p).map_err(|problem| sources.invalid("server.path_prefix", problem))?),
    };

    for (i, p) in server.trusted_proxies.iter().flatten().enumerate() {
        let net = p.parse::<IpNet>().map_err(|()| {
            sources.invalid(&format!("server.trusted_proxies[{i}]"), format!("{p:?} is not an IP address or CIDR"))
        })?;
        o.trusted_proxies.push(net);
    }

    o.reuse_port = server.reuse_port.unwrap_or(false);
    o.pid_file = nonempty(&server.pid_file);
    o.per_ip = PerIpLimits {
        max_connections: server.max_connections_per_ip.unwrap_or(0),
        max_new_per_second: server.max_new_connections_per_ip_per_second.unwrap_or(0),
    };
    Ok(o)
}

/// The TLS files of an extra listener (`[[listeners]]` with `tls_cert`/`tls_key`).
pub(super) fn listener_tls(l: &ListenerFile, index: usize, sources: &Sources) -> Result<Option<TlsFiles>, ConfigError> {
    tls_files(l.tls_cert.clone(), l.tls_key.clone(), l.tls_passphrase.clone(), sources, &format!("listeners[{index}]"))
}

pub(super) fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    passphrase: Option<String>,
    sources: &Sources,
    section: &str,
) -> Result<Option<TlsFiles>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            Ok(Some(TlsFiles { cert, key, passphrase: passphrase.filter(|p| !p.is_empty()).map(Passphrase::new) }))
        }
        (None, None) if passphrase.is_some() => {
            Err(sources.invalid(&format!("{section}.tls_passphrase"), "given without tls_cert and tls_key".into()))
        }
        (None, None) => Ok(None),
        (Some(_), None) => Err(sources.invalid(&format!("{section}.tls_key"), "tls_cert needs tls_key too".into())),
        (None, Some(_)) => Err(sources.invalid(&format!("{section}.tls_cert"), "tls_key needs tls_cert too".into())),
    }
}

/// Normalises a prefix to `/segment[/segment...]` without a trailing slash.
fn path_prefix(p: &str) -> Result<String, String> {
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with '/'"));
    }
    if p.contains(['?', '#', ' ']) || p.contains("//") {
        return Err(format!("{p:?} must be a plain path such as \"/ws\""));
    }
    Ok(p.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_normalised_and_checked() {
        assert_eq!(path_prefix("/ws/").unwrap(), "/ws");
        assert_eq!(path_prefix("/a/b").unwrap(), "/a/b");
        assert!(path_prefix("ws").is_err());
        assert!(path_prefix("/ws?x").is_err());
    }

    #[test]
    fn cert_without_key_is_refused() {
        let e = tls_files(Some("c.pem".into()), None, None, &Sources::default(), "server").unwrap_err();
        assert!(e.to_string().contains("server.tls_key"), "{e}");
    }
}
