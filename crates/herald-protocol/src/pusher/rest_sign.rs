//! Signing and verification of Pusher HTTP API requests ("Authentication" in Pusher's HTTP API reference), both sides.
//!
//! Verification is pure: the current time is a parameter and the app secret comes from a
//! caller-supplied lookup. Mapping a failure to an HTTP status (401, 400) happens at the edge.

use std::borrow::Cow;

use md5::{Digest, Md5};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::socket_auth::{sign, signature_matches};

/// The only `auth_version` there is.
pub const AUTH_VERSION: &str = "1.0";

/// `auth_timestamp` must be less than this many seconds away from the server clock, the window
/// the hosted service enforces.
pub const TIMESTAMP_WINDOW_S: u64 = 600;

/// Query characters [`sign_request`] leaves unescaped: RFC 3986 unreserved ones.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The parts of an HTTP API request that the signature covers.
#[derive(Debug, Clone, Copy)]
pub struct RestRequest<'a> {
    /// HTTP method, any case (it is upper-cased for signing).
    pub method: &'a str,
    /// Request path as received, including any prefix the client was configured with.
    pub path: &'a str,
    /// Raw query string without the `?`, still percent-encoded.
    pub query: &'a str,
    /// Raw request body.
    pub body: &'a [u8],
}

/// Why an HTTP API request was refused. The texts follow the hosted service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestAuthError {
    /// A required query parameter is absent (`body_md5` is required only with a body).
    #[error("{}", missing_param_text(.0))]
    MissingParam(&'static str),
    /// No app has this `auth_key`.
    #[error("Unknown auth_key")]
    UnknownKey,
    /// `auth_version` is not `1.0`.
    #[error("Version not supported")]
    UnsupportedVersion,
    /// `auth_timestamp` is 600 s or more away from the server clock.
    #[error("Timestamp expired: Given timestamp ({given}) not within 600s of server time ({now})")]
    TimestampExpired {
        /// The request's `auth_timestamp`, unix seconds.
        given: i64,
        /// The server time used for the check, unix seconds.
        now: i64,
    },
    /// `body_md5` is not the MD5 of the body.
    #[error("Invalid body_md5: it does not match the MD5 of the request body")]
    BodyMd5Mismatch,
    /// `auth_signature` does not match.
    #[error(
        "Invalid signature: you should have sent HmacSHA256Hex({string_to_sign:?}, your_secret_key), but you sent {sent:?}"
    )]
    BadSignature {
        /// What the signature must be computed over (method, path and sorted query).
        string_to_sign: String,
        /// The `auth_signature` as received.
        sent: String,
    },
    /// The query is not decodable (invalid UTF-8 after percent-decoding), repeats an `auth_*`
    /// or `body_md5` parameter, or has an `auth_timestamp` that is not an integer.
    #[error("Malformed query string")]
    MalformedQuery,
}

fn missing_param_text(name: &str) -> String {
    match name {
        "auth_timestamp" => "Timestamp required".to_owned(),
        "auth_version" => "Version required".to_owned(),
        "auth_key" => "Key required".to_owned(),
        "auth_signature" => "Signature required".to_owned(),
        other => format!("Missing parameter {other}"),
    }
}

/// Decoded query parameters of a verified request. Keys are lower-cased, as for signing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    params: Vec<(String, String)>,
}

impl QueryParams {
    /// The first value of parameter `k` (lower-case name).
    pub fn get(&self, k: &str) -> Option<&str> {
        self.params.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    /// Every value given for `k` or `k[]`, in query order.
    pub fn get_all<'q>(&'q self, k: &'q str) -> impl Iterator<Item = &'q str> + 'q {
        self.params.iter().filter(move |(key, _)| base_key(key) == k).map(|(_, v)| v.as_str())
    }

    /// All parameters in query order, `auth_*` included.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// The checks that need no body: `auth_key` known, `auth_version` 1.0, timestamp in the window.
/// Servers run this before reading a request body, so an unauthenticated client cannot make
/// them buffer or wait for one; [`verify_request`] repeats them with the signature.
///
/// # Errors
/// [`RestAuthError`] names the first check that failed.
pub fn precheck(query: &str, key_known: impl FnOnce(&str) -> bool, now_unix: i64) -> Result<(), RestAuthError> {
    let params = parse_query(query)?;
    let key = unique_param(&params, "auth_key")?.ok_or(RestAuthError::MissingParam("auth_key"))?;
    let timestamp = unique_param(&params, "auth_timestamp")?.ok_or(RestAuthError::MissingParam("auth_timestamp"))?;
    let version = unique_param(&params, "auth_version")?.ok_or(RestAuthError::MissingParam("auth_version"))?;
    unique_param(&params, "auth_signature")?.ok_or(RestAuthError::MissingParam("auth_signature"))?;
    if !key_known(key) {
        return Err(RestAuthError::UnknownKey);
    }
    if version != AUTH_VERSION {
        return Err(RestAuthError::UnsupportedVersion);
    }
    let given: i64 = timestamp.parse().map_err(|_| RestAuthError::MalformedQuery)?;
    if now_unix.abs_diff(given) >= TIMESTAMP_WINDOW_S {
        return Err(RestAuthError::TimestampExpired { given, now: now_unix });
    }
    Ok(())
}

/// Verifies a signed HTTP API request and returns its decoded query.
///
/// Checks, in order: the `auth_*` parameters are present; `auth_key` is known
/// (`secret_for_key` returns its secret); `auth_version` is `1.0`; `|now_unix − auth_timestamp|`
/// is below 600 s; `body_md5` is the MD5 of a non-empty body (required then, checked whenever
/// sent); and `auth_signature` is the HMAC of `METHOD\nPATH\nQUERY`, compared in constant time.
/// QUERY is every parameter but `auth_signature`, sorted by key, `k=v` joined by `&`, unescaped.
/// Array parameters are accepted both as sent (`k[]=a&k[]=b`, sorted under `k`) and comma-joined
/// (`k=a,b`, as the PHP and Node libraries sign them).
///
/// # Errors
/// [`RestAuthError`] names the first check that failed.
pub fn verify_request<'s>(
    req: &RestRequest<'_>,
    secret_for_key: impl FnOnce(&str) -> Option<&'s str>,
    now_unix: i64,
) -> Result<QueryParams, RestAuthError> {
    let params = parse_query(req.query)?;
    let key = unique_param(&params, "auth_key")?.ok_or(RestAuthError::MissingParam("auth_key"))?;
    let timestamp = unique_param(&params, "auth_timestamp")?.ok_or(RestAuthError::MissingParam("auth_timestamp"))?;
    let version = unique_param(&params, "auth_version")?.ok_or(RestAuthError::MissingParam("auth_version"))?;
    let signature = unique_param(&params, "auth_signature")?.ok_or(RestAuthError::MissingParam("auth_signature"))?;
    let body_md5 = unique_param(&params, "body_md5")?;

    let secret = secret_for_key(key).ok_or(RestAuthError::UnknownKey)?;
    if version != AUTH_VERSION {
        return Err(RestAuthError::UnsupportedVersion);
    }
    let given: i64 = timestamp.parse().map_err(|_| RestAuthError::MalformedQuery)?;
    if now_unix.abs_diff(given) >= TIMESTAMP_WINDOW_S {
        return Err(RestAuthError::TimestampExpired { given, now: now_unix });
    }
    if !req.body.is_empty() || body_md5.is_some() {
        let sent = body_md5.ok_or(RestAuthError::MissingParam("body_md5"))?;
        if !sent.eq_ignore_ascii_case(&body_md5_hex(req.body)) {
            return Err(RestAuthError::BodyMd5Mismatch);
        }
    }

    let signed: Vec<(&str, &str)> =
        params.iter().filter(|(k, _)| k != "auth_signature").map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let head = format!("{}\n{}\n", req.method.to_ascii_uppercase(), req.path);
    let as_sent = format!("{head}{}", canonical_query(&signed));
    if signature_matches(secret, &as_sent, signature) {
        return Ok(QueryParams { params });
    }
    if let Some(joined) = comma_joined_query(&signed)
        && signature_matches(secret, &format!("{head}{joined}"), signature)
    {
        return Ok(QueryParams { params });
    }
    Err(RestAuthError::BadSignature { string_to_sign: as_sent, sent: signature.to_owned() })
}

/// Signs a request as a Pusher server library does and returns the whole query string to
/// append after `?`: `extra_params` plus `auth_key`, `auth_timestamp`, `auth_version`,
/// `body_md5` (non-empty body only) and `auth_signature`, percent-encoded. For tests, tools
/// and benchmarks; array parameters are passed as repeated `("k[]", v)` pairs.
pub fn sign_request(
    method: &str,
    path: &str,
    extra_params: &[(&str, &str)],
    body: &[u8],
    key: &str,
    secret: &str,
    now_unix: i64,
) -> String {
    let timestamp = now_unix.to_string();
    let md5 = (!body.is_empty()).then(|| body_md5_hex(body));
    let lowered: Vec<(String, &str)> = extra_params.iter().map(|&(k, v)| (k.to_ascii_lowercase(), v)).collect();
    let mut params: Vec<(&str, &str)> = lowered.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    params.extend([("auth_key", key), ("auth_timestamp", &timestamp), ("auth_version", AUTH_VERSION)]);
    if let Some(md5) = &md5 {
        params.push(("body_md5", md5));
    }
    sort_params(&mut params);
    let string_to_sign = format!("{}\n{}\n{}", method.to_ascii_uppercase(), path, canonical_query(&params));
    let signature = sign(secret, &string_to_sign);
    let mut query = String::with_capacity(string_to_sign.len() + 96);
    for (k, v) in params.iter().chain([&("auth_signature", signature.as_str())]) {
        if !query.is_empty() {
            query.push('&');
        }
        query.extend(utf8_percent_encode(k, QUERY_VALUE));
        query.push('=');
        query.extend(utf8_percent_encode(v, QUERY_VALUE));
    }
    query
}

/// Lowercase hex MD5 of a request body, the `body_md5` parameter.
pub fn body_md5_hex(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// Splits and decodes a query string; `+` means space, keys are lower-cased.
fn parse_query(query: &str) -> Result<Vec<(String, String)>, RestAuthError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode_component(k)?.to_ascii_lowercase(), decode_component(v)?))
        })
        .collect()
}

fn decode_component(s: &str) -> Result<String, RestAuthError> {
    let spaced: Cow<'_, str> = if s.contains('+') { Cow::Owned(s.replace('+', " ")) } else { Cow::Borrowed(s) };
    percent_decode_str(&spaced).decode_utf8().map(Cow::into_owned).map_err(|_| RestAuthError::MalformedQuery)
}

/// The single value of a parameter that must not repeat (a repeat could smuggle a second,
/// unchecked value past code that reads the other one).
fn unique_param<'p>(params: &'p [(String, String)], name: &str) -> Result<Option<&'p str>, RestAuthError> {
    let mut found = params.iter().filter(|(k, _)| k == name);
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some((_, v)), None) => Ok(Some(v)),
        (Some(_), Some(_)) => Err(RestAuthError::MalformedQuery),
    }
}

fn base_key(key: &str) -> &str {
    key.strip_suffix("[]").unwrap_or(key)
}

/// Sorts by key, `k[]` under `k`; stable, so repeated keys keep their order.
fn sort_params(params: &mut [(&str, &str)]) {
    params.sort_by(|a, b| base_key(a.0).cmp(base_key(b.0)));
}

/// `k=v` pairs sorted by key and joined by `&`, keys as sent (`k[]=a&k[]=b`).
fn canonical_query(params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sort_params(&mut sorted);
    let mut out = String::with_capacity(sorted.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (k, v) in sorted {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The PHP/Node form, `k=a,b`, or `None` when no parameter is an array (it would equal
/// [`canonical_query`]).
fn comma_joined_query(params: &[(&str, &str)]) -> Option<String> {
    let mut sorted = params.to_vec();
    sort_params(&mut sorted);
    let has_array = sorted.iter().any(|(k, _)| k.ends_with("[]"))
        || sorted.windows(2).any(|w| base_key(w[0].0) == base_key(w[1].0));
    if !has_array {
        return None;
    }
    let mut out = String::new();
    let mut previous: Option<&str> = None;
    for (k, v) in sorted {
        let base = base_key(k);
        if previous == Some(base) {
            out.push(',');
        } else {
            if previous.is_some() {
                out.push('&');
            }
            out.push_str(base);
            out.push('=');
            previous = Some(base);
        }
        out.push_str(v);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
