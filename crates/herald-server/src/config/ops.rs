//! The operations keys of `[server]` and `[[listeners]]`: TLS files, the metrics listener,
//! the reverse-proxy path prefix and trusted proxies, SO_REUSEPORT, the pid file and the
//! per-address connection limits.
//!
//! Only parsing and validation live here; nothing is read from disk but the config itself
//! (certificates are loaded by `tls.rs` before any port is bound).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

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

/// Builds [`OpsSettings`] from the file's `[server]`, overridden by the environment.
///
/// Environment keys: `HERALD__SERVER__TLS_CERT`, `..._TLS_KEY`, `..._TLS_PASSPHRASE`,
/// `..._METRICS_PORT`, `..._PATH_PREFIX`, `..._TRUSTED_PROXIES` (comma-separated),
/// `..._PID_FILE`, `..._MAX_CONNECTIONS_PER_IP`, `..._MAX_NEW_CONNECTIONS_PER_IP_PER_SECOND`,
/// and laravel-websockets' `LARAVEL_WEBSOCKETS_SSL_LOCAL_CERT`,
/// `LARAVEL_WEBSOCKETS_SSL_LOCAL_PK`, `LARAVEL_WEBSOCKETS_SSL_PASSPHRASE`.
pub(super) fn build(
    server: &ServerSection,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<OpsSettings, ConfigError> {
    let from_env = |keys: &[&str]| keys.iter().find_map(|k| env(k).filter(|v| !v.is_empty()));
    let mut o = OpsSettings::default();

    let cert = from_env(&["HERALD__SERVER__TLS_CERT", "LARAVEL_WEBSOCKETS_SSL_LOCAL_CERT"])
        .map(PathBuf::from)
        .or_else(|| server.tls_cert.clone());
    let key = from_env(&["HERALD__SERVER__TLS_KEY", "LARAVEL_WEBSOCKETS_SSL_LOCAL_PK"])
        .map(PathBuf::from)
        .or_else(|| server.tls_key.clone());
    let pass = from_env(&["HERALD__SERVER__TLS_PASSPHRASE", "LARAVEL_WEBSOCKETS_SSL_PASSPHRASE"])
        .or_else(|| server.tls_passphrase.clone());
    o.tls = tls_files(cert, key, pass, origin, "server")?;
    if let Some(t) = server.tls_handshake_timeout {
        if t == 0 {
            return Err(invalid(origin, "server.tls_handshake_timeout", "must be at least 1 second".into()));
        }
        o.tls_handshake_timeout = Duration::from_secs(t);
    }

    let metrics_port = match env("HERALD__SERVER__METRICS_PORT") {
        Some(p) => Some(
            p.parse::<u16>()
                .map_err(|_| invalid("environment", "HERALD__SERVER__METRICS_PORT", format!("{p:?} is not a port")))?,
        ),
        None => server.metrics_port,
    };
    let metrics_host = server.metrics_host.clone().unwrap_or_else(|| METRICS_HOST.to_owned());
    if metrics_host.parse::<IpAddr>().is_err() && metrics_host != "localhost" {
        return Err(invalid(origin, "server.metrics_host", format!("{metrics_host:?} is not an IP address")));
    }
    o.metrics_addr = metrics_port.map(|p| (metrics_host, p));

    let prefix = env("HERALD__SERVER__PATH_PREFIX").or_else(|| server.path_prefix.clone());
    o.path_prefix = match prefix.as_deref() {
        None | Some("" | "/") => None,
        Some(p) => Some(path_prefix(p).map_err(|problem| invalid(origin, "server.path_prefix", problem))?),
    };

    let proxies: Vec<String> = match env("HERALD__SERVER__TRUSTED_PROXIES") {
        Some(list) => list.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect(),
        None => server.trusted_proxies.clone().unwrap_or_default(),
    };
    for (i, p) in proxies.iter().enumerate() {
        let net = p.parse::<IpNet>().map_err(|()| {
            invalid(origin, &format!("server.trusted_proxies[{i}]"), format!("{p:?} is not an IP address or CIDR"))
        })?;
        o.trusted_proxies.push(net);
    }

    o.reuse_port = server.reuse_port.unwrap_or(false);
    o.pid_file = env("HERALD__SERVER__PID_FILE").map(PathBuf::from).or_else(|| server.pid_file.clone());

    let count = |var: &str, file_value: Option<u32>| -> Result<u32, ConfigError> {
        match env(var) {
            Some(v) => {
                v.trim().parse().map_err(|_| invalid("environment", var, format!("{v:?} is not a whole number")))
            }
            None => Ok(file_value.unwrap_or(0)),
        }
    };
    o.per_ip = PerIpLimits {
        max_connections: count("HERALD__SERVER__MAX_CONNECTIONS_PER_IP", server.max_connections_per_ip)?,
        max_new_per_second: count(
            "HERALD__SERVER__MAX_NEW_CONNECTIONS_PER_IP_PER_SECOND",
            server.max_new_connections_per_ip_per_second,
        )?,
    };
    Ok(o)
}

/// The TLS files of an extra listener (`[[listeners]]` with `tls_cert`/`tls_key`).
pub(super) fn listener_tls(l: &ListenerFile, index: usize, origin: &str) -> Result<Option<TlsFiles>, ConfigError> {
    tls_files(l.tls_cert.clone(), l.tls_key.clone(), l.tls_passphrase.clone(), origin, &format!("listeners[{index}]"))
}

pub(super) fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    passphrase: Option<String>,
    origin: &str,
    section: &str,
) -> Result<Option<TlsFiles>, ConfigError> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            Ok(Some(TlsFiles { cert, key, passphrase: passphrase.filter(|p| !p.is_empty()).map(Passphrase::new) }))
        }
        (None, None) if passphrase.is_some() => {
            Err(invalid(origin, &format!("{section}.tls_passphrase"), "given without tls_cert and tls_key".into()))
        }
        (None, None) => Ok(None),
        (Some(_), None) => Err(invalid(origin, &format!("{section}.tls_key"), "tls_cert needs tls_key too".into())),
        (None, Some(_)) => Err(invalid(origin, &format!("{section}.tls_cert"), "tls_key needs tls_cert too".into())),
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

fn invalid(origin: &str, key: &str, problem: String) -> ConfigError {
    ConfigError::Invalid { origin: origin.to_owned(), key: key.to_owned(), problem }
}

/// The `[server]` lines `herald config check` prints for these settings (secrets redacted).
pub(super) fn describe(o: &OpsSettings, out: &mut String) {
    use std::fmt::Write;
    if let Some(t) = &o.tls {
        let _ = writeln!(out, "tls_cert = {:?}\ntls_key = {:?}", t.cert.display(), t.key.display());
        if t.passphrase.is_some() {
            let _ = writeln!(out, "tls_passphrase = \"<redacted>\"");
        }
    }
    let _ = writeln!(out, "tls_handshake_timeout = {}", o.tls_handshake_timeout.as_secs());
    if let Some((host, port)) = &o.metrics_addr {
        let _ = writeln!(out, "metrics_host = {host:?}\nmetrics_port = {port}");
    }
    if let Some(p) = &o.path_prefix {
        let _ = writeln!(out, "path_prefix = {p:?}");
    }
    let proxies: Vec<String> = o.trusted_proxies.iter().map(|n| format!("{:?}", n.to_string())).collect();
    let _ = writeln!(out, "trusted_proxies = [{}]", proxies.join(", "));
    let _ = writeln!(out, "reuse_port = {}", o.reuse_port);
    if let Some(p) = &o.pid_file {
        let _ = writeln!(out, "pid_file = {:?}", p.display());
    }
    let _ = writeln!(out, "max_connections_per_ip = {}", o.per_ip.max_connections);
    let _ = writeln!(out, "max_new_connections_per_ip_per_second = {}", o.per_ip.max_new_per_second);
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
        let e = tls_files(Some("c.pem".into()), None, None, "f.toml", "server").unwrap_err();
        assert!(e.to_string().contains("server.tls_key"), "{e}");
    }
}
