//! Why one generator connection or one publish failed. A failure ends that connection (it is
//! counted in the step's `failed`), never the run.

use herald_protocol::ws::WsError;

/// Everything that can go wrong between the generator and the server under test.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A socket operation failed (connect refused, reset, out of ports).
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the TCP connection.
    #[error("server closed the connection")]
    Closed,
    /// The server answered the WebSocket upgrade with something other than `101`.
    #[error("upgrade refused: {0}")]
    UpgradeRefused(String),
    /// The `101` answer lacks a valid `Sec-WebSocket-Accept`, or its head is malformed.
    #[error("malformed upgrade response")]
    BadUpgrade,
    /// The server sent a frame that breaks RFC 6455.
    #[error("websocket: {0}")]
    Ws(#[from] WsError),
    /// The server sent a Close frame.
    #[error("server sent close {0:?}")]
    CloseFrame(Option<u16>),
    /// A protocol message could not be parsed as the JSON it should be.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
    /// The server refused a Pusher subscription or WAMP session/subscription; the text is what
    /// it said (`pusher:error`, WAMP ABORT or ERROR).
    #[error("refused: {0}")]
    Refused(String),
    /// A handshake step did not complete in time.
    #[error("timed out")]
    Timeout,
    /// The HTTP client failed (connection, protocol).
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// An HTTP request could not be built (a header value the client made up is invalid).
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
    /// The HTTP API answered with a status other than 200.
    #[error("http status {0}")]
    HttpStatus(u16),
}
