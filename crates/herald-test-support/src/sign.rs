//! Pusher signatures for tests, made by herald-protocol's signer (the one herald verifies with).

use herald_protocol::pusher::{rest_sign, socket_auth};

/// The query string (after `?`) of an HTTP API request signed as a Pusher server library signs
/// it now: `params` plus `auth_key`, `auth_timestamp`, `auth_version`, `body_md5` (non-empty
/// body only) and `auth_signature`.
pub fn signed_query(method: &str, path: &str, params: &[(&str, &str)], body: &str, key: &str, secret: &str) -> String {
    rest_sign::sign_request(method, path, params, body.as_bytes(), key, secret, crate::now())
}

/// The `auth` of a subscription to a private (or, with `channel_data`, presence) channel, as an
/// app's auth endpoint returns it: `<key>:<signature>`.
pub fn channel_auth(key: &str, secret: &str, socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    socket_auth::channel_auth(key, secret, socket_id, channel, channel_data)
}
