//! Every way a peer can violate RFC 6455 framing, each tied to the close code the RFC requires.

/// A framing violation by the peer. Every variant means "fail the WebSocket connection"
/// (RFC 6455 §7.1.7): send a Close frame with [`WsError::close_code`] and drop the connection.
///
/// The type is `Copy` so a [`super::Decoder`] can keep returning the same error after the
/// first failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// A client sent a frame without the mask bit (§5.1: every client frame MUST be masked).
    #[error("client frame is not masked")]
    Unmasked,
    /// A server sent a masked frame (§5.1: a client MUST close on a masked frame).
    #[error("server frame is masked")]
    Masked,
    /// RSV1, RSV2 or RSV3 is set, but no extension that gives them a meaning was negotiated
    /// (§5.2).
    #[error("reserved header bits set without a negotiated extension")]
    ReservedBits,
    /// The opcode is one of the reserved values 3–7 or 0xB–0xF (§5.2).
    #[error("reserved opcode")]
    ReservedOpcode,
    /// A Close, Ping or Pong frame without the FIN bit (§5.5: control frames MUST NOT be
    /// fragmented).
    #[error("fragmented control frame")]
    FragmentedControl,
    /// A control frame declares more than 125 bytes of payload (§5.5).
    #[error("control frame payload longer than 125 bytes")]
    ControlTooLong,
    /// A continuation frame arrived while no fragmented message was open (§5.4).
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A Text or Binary frame arrived while a fragmented message was still open; only
    /// continuation and control frames may come before the final fragment (§5.4).
    #[error("new data frame before the fragmented message was finished")]
    ExpectedContinuation,
    /// The 64-bit payload length has its most significant bit set (§5.2).
    #[error("64-bit payload length with the most significant bit set")]
    LengthOverflow,
    /// A text message is not valid UTF-8 (§8.1). Reported as soon as the bytes received so far
    /// cannot be the start of valid UTF-8, even in the middle of a frame.
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    /// A Close frame carries exactly one byte of payload, or a status code that must not appear
    /// on the wire (§5.5.1, §7.4; see [`super::is_valid_close_code`]).
    #[error("close frame payload has a bad length or status code")]
    BadClosePayload,
    /// The reason in a Close frame is not valid UTF-8 (§5.5.1).
    #[error("close frame reason is not valid UTF-8")]
    InvalidCloseReason,
    /// A frame or a reassembled message is larger than the decoder's configured limits
    /// (§7.4.1 code 1009). Reported as soon as the frame header declares the length, before any
    /// of the payload is buffered.
    #[error("message exceeds the configured size limit")]
    MessageTooBig,
}

impl WsError {
    /// The status code to put in the Close frame that fails the connection (RFC 6455 §7.4.1):
    /// 1007 for invalid UTF-8, 1009 for an oversized message, 1002 for every protocol error.
    pub const fn close_code(&self) -> u16 {
        match self {
            Self::InvalidUtf8 | Self::InvalidCloseReason => 1007,
            Self::MessageTooBig => 1009,
            Self::Unmasked
            | Self::Masked
            | Self::ReservedBits
            | Self::ReservedOpcode
            | Self::FragmentedControl
            | Self::ControlTooLong
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::LengthOverflow
            | Self::BadClosePayload => 1002,
        }
    }
}
