//! Redis URLs: which ones herald can use, and how they (and herald's other connection URLs, the
//! app store's PostgreSQL and MySQL ones) are printed without their credentials.

/// Why a Redis URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// Not `redis://`, `redis+unix://` or `unix://` (TLS, `rediss://`, is not built in).
    #[error("{0:?} is not a supported scheme (redis://, redis+unix://)")]
    Scheme(String),
    /// The Redis client refused it (no host, a bad port or database number...).
    #[error("cannot be used: {0}")]
    Refused(#[source] redis::RedisError),
}

/// Checks that the Redis client can connect with `url`, without connecting.
///
/// # Errors
/// [`UrlError`] saying what is wrong with it.
pub fn check_url(url: &str) -> Result<(), UrlError> {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    if !matches!(scheme, "redis" | "redis+unix" | "unix") {
        return Err(UrlError::Scheme(scheme.to_owned()));
    }
    redis::Client::open(url).map(drop).map_err(UrlError::Refused)
}

/// The URL as it may be printed: the user information before `@` is replaced by `<redacted>`;
/// a URL with a `pass=` or `password=` parameter keeps only its scheme; a string that is no URL
/// (such as PostgreSQL's `host=… password=…` form) is replaced whole. One rule for every
/// connection URL herald takes: it hides more than it must rather than parse each dialect.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<redacted>".into() };
    if rest.contains("pass=") || rest.contains("password=") {
        return format!("{scheme}://<redacted>");
    }
    match rest.split_once('@') {
        Some((_, host)) => format!("{scheme}://<redacted>@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_unix_urls_are_accepted() {
        for url in ["redis://127.0.0.1:6379/0", "redis://u:p@h", "redis+unix:///run/redis.sock", "unix:///s.sock"] {
            assert!(check_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        for (url, scheme) in [("http://x", "http"), ("rediss://x", "rediss"), ("localhost:6379", "")] {
            let err = check_url(url).err();
            assert!(matches!(&err, Some(UrlError::Scheme(s)) if s == scheme), "{url}: {err:?}");
        }
    }

    #[test]
    fn credentials_never_print() {
        assert_eq!(redact_url("redis://user:pw@h:6379/0"), "redis://<redacted>@h:6379/0");
        assert_eq!(redact_url("redis+unix:///s.sock?pass=pw"), "redis+unix://<redacted>");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("pw-only"), "<redacted>");
        // A password parameter hides the whole URL, user information included.
        assert_eq!(redact_url("redis://u@h/0?password=pw"), "redis://<redacted>");
    }

    #[test]
    fn database_urls_never_print_their_passwords() {
        assert_eq!(redact_url("postgres://herald:s3cr3t@db:5432/x"), "postgres://<redacted>@db:5432/x");
        assert_eq!(redact_url("mysql://root@localhost/x?socket=/s"), "mysql://<redacted>@localhost/x?socket=/s");
        assert_eq!(redact_url("host=/run/pg password=pw dbname=x"), "<redacted>");
        assert_eq!(redact_url("postgres://u@h/x?password=pw&a=b"), "postgres://<redacted>");
    }
}
