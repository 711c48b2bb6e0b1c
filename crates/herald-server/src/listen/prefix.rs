//! The reverse proxy's path prefix (`[server] path_prefix`): removed from the front of a
//! request path before routing, the same way for requests hyper parsed and for the raw request
//! heads of the Oro upgrade.

use hyper::Request;

/// The request path as the client sent it, before the proxy prefix was stripped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OriginalPath(pub(crate) String);

/// What is left of `path` once `prefix` is removed (`/ws/app/key` -> `/app/key`, `/ws` -> `/`);
/// `None` for a path outside the prefix (`/wsx` is not under `/ws`), which is left alone.
pub(crate) fn strip<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    match path.strip_prefix(prefix) {
        Some("") => Some("/"),
        Some(r) if r.starts_with('/') => Some(r),
        _ => None,
    }
}

/// Removes `prefix` from the front of the request's path, remembering the original path.
pub(crate) fn strip_request<B>(req: &mut Request<B>, prefix: &str) {
    let path = req.uri().path();
    let Some(rest) = strip(path, prefix) else { return };
    let pq = match req.uri().query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_owned(),
    };
    let original = OriginalPath(path.to_owned());
    let mut parts = req.uri().clone().into_parts();
    let Ok(pq) = pq.parse() else { return };
    parts.path_and_query = Some(pq);
    if let Ok(uri) = hyper::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
        req.extensions_mut().insert(original);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(path: &str) -> (String, Option<OriginalPath>) {
        let mut req = Request::builder().uri(path).body(()).unwrap();
        strip_request(&mut req, "/ws");
        (req.uri().to_string(), req.extensions().get::<OriginalPath>().cloned())
    }

    #[test]
    fn prefix_is_stripped_and_remembered() {
        let (uri, orig) = stripped("/ws/app/key?protocol=7");
        assert_eq!(uri, "/app/key?protocol=7");
        assert_eq!(orig, Some(OriginalPath("/ws/app/key".into())));
        assert_eq!(stripped("/ws").0, "/");
    }

    #[test]
    fn paths_outside_the_prefix_are_untouched() {
        assert_eq!(stripped("/app/key"), ("/app/key".to_owned(), None));
        assert_eq!(stripped("/wsx/app").0, "/wsx/app");
        assert_eq!(strip("/wsx", "/ws"), None);
        assert_eq!(strip("/ws/", "/ws"), Some("/"));
    }
}
