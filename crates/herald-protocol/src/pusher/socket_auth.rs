//! Socket signatures of private/presence subscriptions and user sign-in, and the JSON they
//! sign: presence `channel_data` and sign-in `user_data` (Pusher's "Auth signatures" and
//! "User authentication" docs).
//!
//! Signatures are verified in constant time (HMAC `verify_slice`, never `==` on strings). Which
//! app key and secret apply, and whether a socket may subscribe at all, is the caller's business.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::value::RawValue;
use sha2::Sha256;

use super::ProtocolError;
use super::field_reader::{id_string, non_null, read_fields, req_string};

type HmacSha256 = Hmac<Sha256>;

/// Longest presence `user_id` accepted, in characters (the hosted service's limit).
pub const MAX_USER_ID_LEN: usize = 128;

/// Why a socket signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `auth` was sent, or it is empty.
    #[error("Missing auth signature")]
    Missing,
    /// `auth` has no `:` between the app key and the signature.
    #[error("Invalid auth format: expected \"<app_key>:<signature>\"")]
    Malformed,
    /// The key before the `:` is not this app's key.
    #[error("Invalid app key in auth signature")]
    WrongKey,
    /// The signature does not match; the text is the one the hosted service sends.
    #[error("Invalid signature: Expected HMAC SHA256 hex digest of {expected_string}, but got {got}")]
    BadSignature {
        /// The string the signature must be computed over, reported to help debugging.
        expected_string: String,
        /// The `auth` value as received.
        got: String,
    },
}

/// A presence channel member, from a subscription's `channel_data`.
#[derive(Debug, Clone)]
pub struct PresenceMember {
    /// The user id; numeric ids are kept as their decimal text.
    pub user_id: String,
    /// Arbitrary member info, verbatim; `None` if absent or `null`.
    pub user_info: Option<Box<RawValue>>,
}

/// A signed-in user, from `pusher:signin`'s `user_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserData {
    /// The user id (non-empty).
    pub id: String,
    /// Ids whose online status the user wants to follow, untruncated; empty if absent.
    pub watchlist: Vec<String>,
}

/// Lowercase hex HMAC-SHA256 of `string_to_sign` keyed with `secret`.
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let mut mac = keyed_mac(secret.as_bytes());
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The string signed for a channel subscription: `<socket_id>:<channel>` plus
/// `:<channel_data>` when given (presence channels).
pub fn channel_string_to_sign(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// The string signed for a user sign-in: `<socket_id>::user::<user_data>`.
pub fn signin_string_to_sign(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// The `auth` value an auth endpoint returns for a subscription: `<app_key>:<signature>`.
pub fn channel_auth(app_key: &str, secret: &str, socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    let signature = sign(secret, &channel_string_to_sign(socket_id, channel, channel_data));
    format!("{app_key}:{signature}")
}

/// The `auth` value an auth endpoint returns for a sign-in: `<app_key>:<signature>`.
pub fn signin_auth(app_key: &str, secret: &str, socket_id: &str, user_data: &str) -> String {
    format!("{app_key}:{}", sign(secret, &signin_string_to_sign(socket_id, user_data)))
}

/// Checks the `auth` of a `pusher:subscribe`. Pass `channel_data` exactly as the
/// client sent it, and only for presence channels.
///
/// # Errors
/// [`AuthError`] says what is wrong with `auth`.
pub fn verify_channel_auth(
    app_key: &str,
    secret: &str,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> Result<(), AuthError> {
    verify(app_key, secret, auth, || channel_string_to_sign(socket_id, channel, channel_data))
}

/// Checks the `auth` of a `pusher:signin`.
///
/// # Errors
/// [`AuthError`] says what is wrong with `auth`.
pub fn verify_signin(
    app_key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &str,
    auth: &str,
) -> Result<(), AuthError> {
    verify(app_key, secret, auth, || signin_string_to_sign(socket_id, user_data))
}

/// Parses presence `channel_data`: `{"user_id": string|integer, "user_info": any?}`.
///
/// # Errors
/// [`ProtocolError`] for invalid JSON, a missing, mistyped or empty `user_id`, or one longer
/// than [`MAX_USER_ID_LEN`] characters.
pub fn parse_presence_member(channel_data: &str) -> Result<PresenceMember, ProtocolError> {
    let [user_id, user_info] = read_fields(channel_data, &["user_id", "user_info"])?;
    let user_id = non_null(user_id).ok_or(ProtocolError::MissingField("user_id"))?;
    let user_id = id_string(user_id, "user_id")?;
    if user_id.is_empty() {
        return Err(ProtocolError::EmptyField("user_id"));
    }
    let len = user_id.chars().count();
    if len > MAX_USER_ID_LEN {
        return Err(ProtocolError::UserIdTooLong { len, max: MAX_USER_ID_LEN });
    }
    Ok(PresenceMember { user_id, user_info: non_null(user_info).map(ToOwned::to_owned) })
}

/// Parses sign-in `user_data`: a non-empty string `id` is required (pusher-js insists
/// on it too); `watchlist` is an optional array of ids, strings or integers.
///
/// # Errors
/// [`ProtocolError`] for invalid JSON, a missing, mistyped or empty `id`, or a `watchlist`
/// that is not an array of ids.
pub fn parse_user_data(user_data: &str) -> Result<UserData, ProtocolError> {
    let [id, watchlist] = read_fields(user_data, &["id", "watchlist"])?;
    let id = req_string(id, "id")?;
    if id.is_empty() {
        return Err(ProtocolError::EmptyField("id"));
    }
    let watchlist = match non_null(watchlist) {
        None => Vec::new(),
        Some(raw) => serde_json::from_str::<Vec<&RawValue>>(raw.get())
            .map_err(|_| ProtocolError::WrongType("watchlist"))?
            .into_iter()
            .map(|entry| id_string(entry, "watchlist"))
            .collect::<Result<_, _>>()?,
    };
    Ok(UserData { id, watchlist })
}

/// HMAC-SHA256 keyed with `secret`.
pub(super) fn keyed_mac(secret: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        // HMAC hashes long keys and pads short ones, so no length is refused.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Whether `signature_hex` is the HMAC of `string_to_sign`, compared in constant time.
pub(super) fn signature_matches(secret: &str, string_to_sign: &str, signature_hex: &str) -> bool {
    let mut expected = [0u8; 32];
    if hex::decode_to_slice(signature_hex, &mut expected).is_err() {
        return false;
    }
    let mut mac = keyed_mac(secret.as_bytes());
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&expected).is_ok()
}

fn verify(app_key: &str, secret: &str, auth: &str, string_to_sign: impl FnOnce() -> String) -> Result<(), AuthError> {
    if auth.is_empty() {
        return Err(AuthError::Missing);
    }
    let (key, signature) = auth.split_once(':').ok_or(AuthError::Malformed)?;
    // App keys are public, so an ordinary comparison leaks nothing.
    if key != app_key {
        return Err(AuthError::WrongKey);
    }
    let expected_string = string_to_sign();
    if signature_matches(secret, &expected_string, signature) {
        Ok(())
    } else {
        Err(AuthError::BadSignature { expected_string, got: auth.to_owned() })
    }
}

#[cfg(test)]
mod tests;
