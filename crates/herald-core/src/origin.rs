//! Origin allow-lists: which web pages may open a connection to an app.
//!
//! A browser names the page's origin in the `Origin` header of every WebSocket upgrade and
//! cross-origin request. An app's `allowed_origins` holds patterns; an empty list admits any
//! origin (what Pusher does when no list is set). Scheme and port are respected when a pattern
//! gives them and ignored when it does not.

/// One entry of `allowed_origins`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginPattern {
    scheme: Option<String>,
    host: HostPattern,
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    /// `*`: every host.
    Any,
    /// `*.example.com`: subdomains of `example.com` (the suffix is stored with its dot).
    Subdomains(String),
    /// `example.com`.
    Exact(String),
}

/// An `Origin` header value split into its parts (`https://app.example.com:8443`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin<'a> {
    scheme: &'a str,
    host: String,
    port: Option<u16>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// Splits `host[:port]`, keeping IPv6 brackets with the host.
fn host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match s.rfind(':') {
        Some(i) if !s[i..].contains(']') => (&s[..i], Some(s[i + 1..].parse::<u16>().ok()?)),
        _ => (s, None),
    };
    (!host.is_empty()).then_some((host, port))
}

fn parse_origin(value: &str) -> Option<Origin<'_>> {
    let (scheme, rest) = value.split_once("://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if scheme.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return None;
    }
    let (host, port) = host_port(rest)?;
    Some(Origin { scheme, host: host.to_ascii_lowercase(), port })
}

impl OriginPattern {
    /// Parses `*`, `host`, `*.host`, or any of these behind `scheme://` and before `:port`.
    /// `None` when the entry is not of that form.
    #[must_use]
    pub fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        let (scheme, rest) = match entry.split_once("://") {
            Some((s, r)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
                (Some(s.to_ascii_lowercase()), r)
            }
            Some(_) => return None,
            None => (None, entry),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@', ' ']) {
            return None;
        }
        let (host, port) = host_port(rest)?;
        let host = host.to_ascii_lowercase();
        let host = if host == "*" {
            HostPattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return None;
            }
            HostPattern::Subdomains(format!(".{suffix}"))
        } else if host.contains('*') {
            return None;
        } else {
            HostPattern::Exact(host)
        };
        Some(Self { scheme, host, port })
    }

    fn admits(&self, origin: &Origin<'_>) -> bool {
        let scheme_ok = self.scheme.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(origin.scheme));
        let host_ok = match &self.host {
            HostPattern::Any => true,
            HostPattern::Subdomains(suffix) => origin.host.ends_with(suffix.as_str()),
            HostPattern::Exact(h) => *h == origin.host,
        };
        let port_ok = match self.port {
            None => self.scheme.is_none() || origin.port.is_none_or(|p| Some(p) == default_port(origin.scheme)),
            Some(p) => origin.port.or_else(|| default_port(origin.scheme)) == Some(p),
        };
        scheme_ok && host_ok && port_ok
    }
}

/// Whether a request with this `Origin` header may connect, given the app's allow-list.
///
/// An empty list admits everything. With a list, a request without an `Origin` header (a
/// server-side client, which no browser page can impersonate) is admitted, and a browser
/// request must match an entry; `null` and malformed origins never match.
#[must_use]
pub fn allowed(patterns: &[String], origin: Option<&str>) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let Some(origin) = origin else { return true };
    let Some(origin) = parse_origin(origin.trim()) else { return false };
    patterns.iter().filter_map(|p| OriginPattern::parse(p)).any(|p| p.admits(&origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn empty_list_admits_everything() {
        assert!(allowed(&[], Some("https://evil.example")));
        assert!(allowed(&[], None));
    }

    #[test]
    fn wildcard_hosts_match_subdomains_only() {
        let l = list(&["*.example.com"]);
        assert!(allowed(&l, Some("https://app.example.com")));
        assert!(allowed(&l, Some("http://a.b.example.com:8080")));
        assert!(!allowed(&l, Some("https://example.com")));
        assert!(!allowed(&l, Some("https://evilexample.com")));
        assert!(!allowed(&l, Some("https://example.com.evil.net")));
    }

    #[test]
    fn scheme_and_port_are_respected_when_given() {
        let l = list(&["https://app.example.com"]);
        assert!(allowed(&l, Some("https://app.example.com")));
        assert!(allowed(&l, Some("https://app.example.com:443")));
        assert!(!allowed(&l, Some("http://app.example.com")));
        assert!(!allowed(&l, Some("https://app.example.com:8443")));
        let l = list(&["http://localhost:8080"]);
        assert!(allowed(&l, Some("http://localhost:8080")));
        assert!(!allowed(&l, Some("http://localhost:8081")));
        assert!(!allowed(&l, Some("http://localhost")));
        let l = list(&["localhost"]);
        assert!(allowed(&l, Some("http://localhost:3000")));
        assert!(allowed(&l, Some("https://LOCALHOST")));
    }

    #[test]
    fn null_and_malformed_origins_never_match_a_list() {
        let l = list(&["*"]);
        assert!(allowed(&l, Some("https://anything.test")));
        assert!(!allowed(&l, Some("null")));
        assert!(!allowed(&l, Some("https://a.test/path")));
        assert!(allowed(&l, None), "no Origin header: not a browser page");
    }

    #[test]
    fn invalid_entries_are_refused() {
        for bad in ["", "https://", "a/b", "*.", "a*.example.com", "1https://x", "x:99999"] {
            assert!(OriginPattern::parse(bad).is_none(), "{bad:?}");
        }
        for good in ["*", "example.com", "*.example.com", "https://*.example.com:8443", "[::1]:8080"] {
            assert!(OriginPattern::parse(good).is_some(), "{good:?}");
        }
    }
}
