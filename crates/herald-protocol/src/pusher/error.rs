//! Errors raised while decoding Pusher wire data (client frames, channel names, auth payloads).
//!
//! Only the problem is named here; which close code or `pusher:error` a server answers with is
//! decided at the edge, not in this module.

/// Something a Pusher client sent could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The bytes are not UTF-8 JSON (syntax error, truncated input or trailing garbage).
    #[error("message is not valid JSON")]
    NotJson,
    /// The JSON is valid but is not an object where an object is required.
    #[error("message is not a JSON object")]
    NotAnObject,
    /// A required field is absent (or `null`).
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong JSON type, e.g. a number where a string is required.
    #[error("field `{0}` has the wrong type")]
    WrongType(&'static str),
    /// A string field that must carry a value is empty.
    #[error("field `{0}` must not be empty")]
    EmptyField(&'static str),
    /// A channel name is empty or contains a character outside `[A-Za-z0-9_\-=@,.;]`.
    #[error("invalid channel name: only letters, digits and _ - = @ , . ; are allowed")]
    InvalidChannelName,
    /// A channel name starts with `#` but is not `#server-to-user-<id>`.
    #[error("channel names starting with # are reserved; only #server-to-user-<id> exists")]
    ReservedChannelName,
    /// A channel name is longer than the configured limit.
    #[error("channel name is {len} characters long, the limit is {max}")]
    ChannelNameTooLong {
        /// Length of the rejected name, in characters.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A presence `user_id` is longer than 128 characters (the hosted service's limit).
    #[error("user_id is {len} characters long, the limit is {max}")]
    UserIdTooLong {
        /// Length of the rejected id, in characters.
        len: usize,
        /// The limit, [`MAX_USER_ID_LEN`](super::socket_auth::MAX_USER_ID_LEN).
        max: usize,
    },
}
