//! The Pusher WebSocket close codes (the "Error codes" of the Pusher Channels Protocol page), with the reason text herald sends.
//!
//! This module only names codes; choosing one for a situation happens at the edge. Codes of 4300
//! and up make pusher-js give up for good, so they belong in `pusher:error` messages on sockets
//! that stay open, never in a close frame.

use std::fmt;

/// A Pusher close code. The numeric value is the WebSocket close code.
///
/// Ranges: 4000–4099 do not reconnect unchanged, 4100–4199 back off, 4200–4299 reconnect at
/// once, 4300–4399 are other errors that pusher-js treats as final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// The app only accepts TLS; the client should retry with `wss`.
    TlsOnly = 4000,
    /// No app has the key in the connection URL.
    AppNotFound = 4001,
    /// The app exists but is disabled.
    AppDisabled = 4003,
    /// The app is over its connection quota.
    OverQuota = 4004,
    /// The request path is not `/app/<key>`.
    PathNotFound = 4005,
    /// The `version` query parameter is malformed.
    InvalidVersion = 4006,
    /// The `protocol` query parameter names an unsupported version.
    UnsupportedProtocol = 4007,
    /// No `protocol` query parameter was given.
    NoProtocol = 4008,
    /// The connection is not authorized (bad signature, sign-in timeout, terminated user).
    Unauthorized = 4009,
    /// The server is over capacity; retry after at least one second.
    OverCapacity = 4100,
    /// Generic "reconnect now", e.g. on server shutdown.
    ReconnectNow = 4200,
    /// The client did not answer a ping in time.
    PongNotReceived = 4201,
    /// Closed after a long inactivity of a client that cannot ping.
    InactivityClosed = 4202,
    /// A client event was rejected by the rate limit (only inside `pusher:error`).
    ClientEventRateLimit = 4301,
    /// The watchlist was longer than allowed; only its first ids were kept (only inside `pusher:error`).
    WatchlistLimit = 4302,
}

impl CloseCode {
    /// Every code, in ascending order.
    pub const ALL: [CloseCode; 15] = [
        CloseCode::TlsOnly,
        CloseCode::AppNotFound,
        CloseCode::AppDisabled,
        CloseCode::OverQuota,
        CloseCode::PathNotFound,
        CloseCode::InvalidVersion,
        CloseCode::UnsupportedProtocol,
        CloseCode::NoProtocol,
        CloseCode::Unauthorized,
        CloseCode::OverCapacity,
        CloseCode::ReconnectNow,
        CloseCode::PongNotReceived,
        CloseCode::InactivityClosed,
        CloseCode::ClientEventRateLimit,
        CloseCode::WatchlistLimit,
    ];

    /// The numeric code, as sent in a WebSocket close frame or a `pusher:error` `code`.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// A short human-readable reason; it fits a close frame (well under 123 bytes).
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::TlsOnly => "This app only accepts encrypted connections; use wss",
            CloseCode::AppNotFound => "App key not found",
            CloseCode::AppDisabled => "App is disabled",
            CloseCode::OverQuota => "App is over its connection quota",
            CloseCode::PathNotFound => "Path not found",
            CloseCode::InvalidVersion => "Invalid version string",
            CloseCode::UnsupportedProtocol => "Unsupported protocol version",
            CloseCode::NoProtocol => "No protocol version given",
            CloseCode::Unauthorized => "Connection is not authorized",
            CloseCode::OverCapacity => "Server is over capacity, retry later",
            CloseCode::ReconnectNow => "Please reconnect",
            CloseCode::PongNotReceived => "Pong reply not received",
            CloseCode::InactivityClosed => "Closed after inactivity",
            CloseCode::ClientEventRateLimit => "Client event rejected due to rate limit",
            CloseCode::WatchlistLimit => "Watchlist limit exceeded",
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::CloseCode;

    #[test]
    fn codes_match_pusher_values_and_reasons_fit_a_close_frame() {
        assert_eq!(CloseCode::TlsOnly.code(), 4000);
        assert_eq!(CloseCode::Unauthorized.code(), 4009);
        assert_eq!(CloseCode::ReconnectNow.code(), 4200);
        assert_eq!(CloseCode::WatchlistLimit.code(), 4302);
        for c in CloseCode::ALL {
            assert!(c.reason().len() < 123, "{c:?} reason too long for a close frame");
        }
    }
}
