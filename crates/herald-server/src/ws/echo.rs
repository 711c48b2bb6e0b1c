//! The echo endpoint: a conformance target for the WebSocket layer (RFC 6455 test suites).
//!
//! Off by default; only `[server] test_echo_endpoint = true` mounts it at `/echo`. It echoes
//! text and binary messages with their opcode and answers the close handshake, through exactly
//! the codec, socket pump and session driver that Pusher and WAMP sessions use.

use std::convert::Infallible;

use herald_core::{Outbox, OutboxLimits};
use herald_protocol::ws::{self, OpCode};

use crate::session::close::{CloseReason, Goodbye};
use crate::session::driver::{Adapter, Data, Flow, Io};
use crate::session::keepalive::Plan;

/// The echo adapter.
pub(crate) struct Echo {
    /// No one else writes to an echo socket; the driver drains it all the same.
    outbox: Outbox,
}

impl Echo {
    pub(crate) fn new() -> Self {
        Self { outbox: Outbox::new(OutboxLimits::default()) }
    }
}

impl Adapter for Echo {
    type Done = Infallible;

    fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    fn keepalive(&self) -> Plan {
        Plan::Off
    }

    fn open(&mut self, _io: &mut Io<'_, Infallible>) -> Flow {
        Flow::Continue
    }

    fn on_data(&mut self, data: Data, io: &mut Io<'_, Infallible>) -> Flow {
        match data {
            Data::Text(t) => io.reply(ws::encode_frame(OpCode::Text, &t)),
            Data::Binary(b) => io.reply(ws::encode_frame(OpCode::Binary, &b)),
        }
        Flow::Continue
    }

    fn goodbye(&mut self, reason: CloseReason, _io: &mut Io<'_, Infallible>) -> Goodbye {
        match reason {
            CloseReason::ClientClosed(frame) => Goodbye::with(ws::encode_close_reply(frame.as_ref())),
            CloseReason::Violation(e) => Goodbye::with(ws::encode_close(e.close_code(), &e.to_string())),
            CloseReason::Gone => Goodbye::silent(),
            CloseReason::Protocol(frame) => Goodbye { frame, discard_backlog: false },
            CloseReason::SlowConsumer
            | CloseReason::Terminated
            | CloseReason::Shutdown
            | CloseReason::Unresponsive
            | CloseReason::AppRemoved
            | CloseReason::AppDisabled => Goodbye::with(ws::encode_close(1001, "going away")),
        }
    }

    fn leave(&mut self) {}
}
