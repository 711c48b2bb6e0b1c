//! Why a session ends, typed: each protocol adapter turns a reason into its own goodbye (Pusher
//! 4xxx codes, a WAMP v2 GOODBYE or ABORT, a WAMP v1 close status, a profile's status-0 close).

use bytes::Bytes;
use herald_core::outbox::CloseRequest;
use herald_protocol::ws::{CloseFrame, WsError};

/// Why a session ends.
#[derive(Debug)]
pub(crate) enum CloseReason {
    /// The client started the closing handshake, with this close frame's payload.
    ClientClosed(Option<CloseFrame>),
    /// The client broke RFC 6455; the error names the close status.
    Violation(WsError),
    /// The connection is gone: nothing more can be sent.
    Gone,
    /// The client does not read fast enough: its outbox overflowed.
    SlowConsumer,
    /// The HTTP API ended the connections of the user this socket signed in as.
    Terminated,
    /// The server is draining.
    Shutdown,
    /// The app was removed, or its key changed (a reload, a changed app-store row).
    AppRemoved,
    /// The app was disabled.
    AppDisabled,
    /// The client did not answer keep-alive.
    Unresponsive,
    /// The adapter ended the session on the protocol's own terms, with this close frame (or a
    /// bare FIN when `None`); whatever the protocol says first is already queued.
    Protocol(Option<Bytes>),
}

impl From<CloseRequest> for CloseReason {
    fn from(request: CloseRequest) -> Self {
        match request {
            CloseRequest::SlowConsumer => CloseReason::SlowConsumer,
            CloseRequest::Terminated => CloseReason::Terminated,
            CloseRequest::Shutdown => CloseReason::Shutdown,
            CloseRequest::AppRemoved => CloseReason::AppRemoved,
            CloseRequest::AppDisabled => CloseReason::AppDisabled,
        }
    }
}

/// How a session says goodbye.
#[derive(Debug, Default)]
pub(crate) struct Goodbye {
    /// The close frame, sent after everything queued; `None`: only FIN.
    pub(crate) frame: Option<Bytes>,
    /// Drop queued frames instead of delivering them first (a slow consumer would never read
    /// them).
    pub(crate) discard_backlog: bool,
}

impl Goodbye {
    /// Close with `frame` after what is queued.
    pub(crate) fn with(frame: Bytes) -> Self {
        Self { frame: Some(frame), discard_backlog: false }
    }

    /// Only FIN.
    pub(crate) fn silent() -> Self {
        Self::default()
    }
}
