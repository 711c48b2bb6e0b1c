//! [`WampError`]: why a WAMP frame, or one field of it, was rejected, and which wire reaction
//! each kind of rejection calls for in v1 and in v2.

use thiserror::Error;

/// WebSocket close code for any malformed WAMP v1 message: Ratchet's `WampServer` closes with
/// 1007 on every exception raised while decoding.
pub const V1_CLOSE_CODE: u16 = 1007;

/// Why a WAMP message was rejected.
///
/// Errors from [`parse_v1`](super::parse_v1) and [`parse_v2`](super::parse_v2) are protocol
/// violations: a v1 adapter closes with [`V1_CLOSE_CODE`], a v2 adapter answers `ABORT` with
/// `wamp.error.protocol_violation`. Errors from the request checks that run on a well-formed
/// message ([`V2Msg::check_uris`](super::V2Msg::check_uris), the option parsers in
/// [`v2`](super::v2)) are answered with an `ERROR` for that request and the session goes on;
/// [`WampError::is_protocol_violation`] and [`WampError::v2_error_uri`] tell which.
#[derive(Debug, Error)]
pub enum WampError {
    /// The frame is not one JSON text: syntax error, invalid UTF-8, trailing data, or nesting
    /// deeper than serde_json's limit of 128.
    #[error("frame is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The frame is not one MessagePack value (truncated, reserved marker 0xc1, trailing bytes).
    #[error("frame is not valid MessagePack at byte {offset}: {reason}")]
    InvalidMsgPack {
        /// Byte offset in the frame where decoding stopped.
        offset: usize,
        /// What was wrong there.
        reason: &'static str,
    },
    /// A MessagePack `str` whose bytes are not UTF-8.
    #[error("MessagePack string at byte {offset} is not UTF-8")]
    InvalidUtf8 {
        /// Byte offset of the string's marker.
        offset: usize,
    },
    /// Lists and dicts nest deeper than the decoder allows.
    #[error("value nests deeper than {limit} levels")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
    },
    /// A MessagePack value that has no WAMP equivalent: an extension type, or a map key that is
    /// not a string (WAMP dicts have string keys, and JSON could not carry it on).
    #[error("unsupported MessagePack value: {what}")]
    UnsupportedValue {
        /// Which construct.
        what: &'static str,
    },
    /// The message is valid JSON/MessagePack but not an array.
    #[error("message is not an array")]
    NotArray,
    /// The message is `[]`.
    #[error("message is an empty array")]
    EmptyArray,
    /// The first element is not usable as a message type code (not an integer, negative, or a
    /// v1 string that PHP would not compare equal to a number).
    #[error("message type code is not a non-negative integer")]
    BadTypeCode,
    /// The type code belongs to no message of this protocol version (or to one we do not
    /// implement, such as v2 CHALLENGE or CANCEL).
    #[error("unknown message type {0}")]
    UnknownType(u64),
    /// A known message type this peer must not send: a client sending EVENT, or a v2 ERROR that
    /// does not answer an INVOCATION.
    #[error("message type {0} must not be sent by this peer")]
    UnexpectedType(u64),
    /// The message has too few (or, in v2, too many) elements for its type.
    #[error("{message} cannot have {len} elements")]
    WrongArity {
        /// Message name, e.g. `"PUBLISH"`.
        message: &'static str,
        /// Element count received, type code included.
        len: usize,
    },
    /// The element at `index` has the wrong type.
    #[error("{message} element {index} must be {expected}")]
    WrongType {
        /// Message name.
        message: &'static str,
        /// Zero-based position in the array (0 is the type code).
        index: usize,
        /// What the position must hold.
        expected: &'static str,
    },
    /// A v2 id outside `[1, 2^53]` (WAMP2 "IDs"), including integers too big for 64 bits.
    #[error("{message} element {index} is not an id in [1, 2^53]")]
    IdOutOfRange {
        /// Message name.
        message: &'static str,
        /// Zero-based position in the array.
        index: usize,
    },
    /// A URI that breaks the v2 rules (WAMP2 "Identifiers / URIs"); answered with
    /// `wamp.error.invalid_uri`.
    #[error("invalid URI {uri:?}")]
    InvalidUri {
        /// The offending URI.
        uri: String,
    },
    /// An option (in `Options`) has the wrong type or an unsupported value; answered with
    /// `wamp.error.invalid_argument`.
    #[error("option {option:?} must be {expected}")]
    InvalidOption {
        /// Option key, e.g. `"match"`.
        option: &'static str,
        /// What it must hold.
        expected: &'static str,
    },
    /// A v1 client sent more PREFIX mappings than [`Prefixes`](super::Prefixes) keeps; Ratchet
    /// has no limit, we have one so a client cannot grow server memory without bound.
    #[error("more than {limit} CURIE prefixes on one connection")]
    TooManyPrefixes {
        /// The per-connection limit.
        limit: usize,
    },
}

impl WampError {
    /// Close code a WAMP v1 server sends for this error: always [`V1_CLOSE_CODE`], because
    /// Ratchet treats every decoding problem alike.
    #[must_use]
    pub fn v1_close_code(&self) -> u16 {
        V1_CLOSE_CODE
    }

    /// True when a v2 router must end the session with `ABORT`; false when it answers the one
    /// request with `ERROR` and carries on (WAMP2 basic profile: incorrect URIs get `ERROR`).
    #[must_use]
    pub fn is_protocol_violation(&self) -> bool {
        !matches!(self, WampError::InvalidUri { .. } | WampError::InvalidOption { .. })
    }

    /// The URI a v2 router puts in its `ABORT` reason or `ERROR` error field.
    #[must_use]
    pub fn v2_error_uri(&self) -> &'static str {
        match self {
            WampError::InvalidUri { .. } => super::v2::reason::INVALID_URI,
            WampError::InvalidOption { .. } => super::v2::reason::INVALID_ARGUMENT,
            _ => super::v2::reason::PROTOCOL_VIOLATION,
        }
    }
}
