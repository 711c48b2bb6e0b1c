//! Oro's DSN strings (`ORO_WEBSOCKET_*_DSN`, `ORO_DB_DSN`), split the way PHP's `parse_url`
//! splits them, with Oro's defaults: scheme `tcp`, host `""`, port 8080.
//!
//! Only the shapes Oro documents are promised: `//host:port/path?query`,
//! `scheme://user:pass@host:port/path?query`, `[v6]` hosts and the bare `host:port` that
//! `parse_url` also reads as host and port. Anything else becomes a path with an empty host,
//! which the callers report.

use std::fmt;

/// A DSN split into its parts.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct Dsn {
    /// `tcp`, `ssl`, `postgres`...; `None` when absent.
    pub(crate) scheme: Option<String>,
    /// User name, percent-decoded.
    pub(crate) user: Option<String>,
    /// Password, percent-decoded. Never printed.
    pub(crate) password: Option<String>,
    /// Host without brackets; empty when the DSN names none.
    pub(crate) host: String,
    /// Port, when given.
    pub(crate) port: Option<u16>,
    /// Path as written (with its leading `/`).
    pub(crate) path: String,
    /// Query string without the `?`.
    pub(crate) query: String,
}

impl fmt::Debug for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dsn")
            .field("scheme", &self.scheme)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("path", &self.path)
            .field("query", &self.query)
            .finish()
    }
}

/// A DSN whose port is not a number from 0 to 65535.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid port")]
pub(crate) struct BadPort(pub(crate) String);

impl Dsn {
    /// Splits `s` like PHP `parse_url`.
    ///
    /// # Errors
    /// [`BadPort`] when a port is given but is not a valid number.
    pub(crate) fn parse(s: &str) -> Result<Self, BadPort> {
        let s = s.trim();
        let s = s.split_once('#').map_or(s, |(before, _)| before);
        let mut dsn = Dsn::default();
        let rest = match scheme_end(s) {
            Some(i) => {
                dsn.scheme = Some(s[..i].to_ascii_lowercase());
                Some(&s[i + 3..])
            }
            None => s.strip_prefix("//"),
        };
        let rest = match rest {
            Some(r) => r,
            // `host:port` with nothing before it: parse_url reads a host and a port too.
            None if bare_host_port(s) => s,
            None => {
                let (path, query) = s.split_once('?').unwrap_or((s, ""));
                dsn.path = path.to_owned();
                dsn.query = query.to_owned();
                return Ok(dsn);
            }
        };
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if let Some(u) = userinfo {
            let (user, pass) = match u.split_once(':') {
                Some((user, pass)) => (user, Some(pass)),
                None => (u, None),
            };
            dsn.user = Some(decode(user));
            dsn.password = pass.map(decode);
        }
        let (host, port) = split_host_port(hostport);
        dsn.host = host.to_owned();
        if let Some(p) = port.filter(|p| !p.is_empty()) {
            dsn.port = Some(p.parse().map_err(|_| BadPort(p.to_owned()))?);
        }
        let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
        dsn.path = path.to_owned();
        dsn.query = query.to_owned();
        Ok(dsn)
    }

    /// The value of query parameter `name` (form-decoded), if present.
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| decode(&v.replace('+', " ")))
        })
    }
}

/// Index of `://` when the DSN starts with a scheme (`[A-Za-z][A-Za-z0-9+.-]*`).
fn scheme_end(s: &str) -> Option<usize> {
    let i = s.find("://")?;
    let scheme = &s[..i];
    let mut bytes = scheme.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic());
    (first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b"+.-".contains(&b))).then_some(i)
}

/// `host:port[/...]` with a numeric port and no scheme.
fn bare_host_port(s: &str) -> bool {
    let head = s.split(['/', '?']).next().unwrap_or("");
    head.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && !h.contains(':') && !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())
    })
}

fn split_host_port(hostport: &str) -> (&str, Option<&str>) {
    if let Some(v6) = hostport.strip_prefix('[') {
        return match v6.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':')),
            None => (hostport, None),
        };
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (hostport, None),
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (Option<String>, String, Option<u16>, String, String) {
        let d = Dsn::parse(s).unwrap();
        (d.scheme, d.host, d.port, d.path, d.query)
    }

    #[test]
    fn oro_documented_shapes() {
        assert_eq!(parts("//0.0.0.0:8080"), (None, "0.0.0.0".into(), Some(8080), String::new(), String::new()));
        assert_eq!(parts("//127.0.0.1"), (None, "127.0.0.1".into(), None, String::new(), String::new()));
        assert_eq!(parts("//*:8080/ws"), (None, "*".into(), Some(8080), "/ws".into(), String::new()));
        assert_eq!(
            parts("tcp://127.0.0.1:8080/ws?user_agent=x"),
            (Some("tcp".into()), "127.0.0.1".into(), Some(8080), "/ws".into(), "user_agent=x".into())
        );
        assert_eq!(parts("0.0.0.0:8080"), (None, "0.0.0.0".into(), Some(8080), String::new(), String::new()));
        assert_eq!(parts("//[::]:8080"), (None, "::".into(), Some(8080), String::new(), String::new()));
        // parse_url("127.0.0.1") is a path: no host.
        assert_eq!(parts("127.0.0.1").1, "");
        assert_eq!(parts("").1, "");
        assert!(Dsn::parse("//0.0.0.0:99999").is_err());
        assert!(Dsn::parse("//0.0.0.0:80a").is_err());
    }

    #[test]
    fn database_urls_with_credentials() {
        let d =
            Dsn::parse("postgres://oro%40db:p%3Ass@127.0.0.1:5432/oro_db?sslmode=disable&serverVersion=13.7").unwrap();
        assert_eq!(d.scheme.as_deref(), Some("postgres"));
        assert_eq!(d.user.as_deref(), Some("oro@db"));
        assert_eq!(d.password.as_deref(), Some("p:ss"));
        assert_eq!((d.host.as_str(), d.port, d.path.as_str()), ("127.0.0.1", Some(5432), "/oro_db"));
        assert_eq!(d.query_param("sslmode").as_deref(), Some("disable"));
        assert!(!format!("{d:?}").contains("p:ss"), "the password is never printed");
    }
}
