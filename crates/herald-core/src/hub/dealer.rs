//! The WAMP v2 dealer of one app: registered procedures and calls in flight.
//!
//! A call is routed to the procedure's single callee as an INVOCATION; the callee's YIELD or
//! ERROR goes back to the caller as RESULT or ERROR. Frames are encoded for the one receiving
//! session (RPC is point to point, there is nothing to share) and pushed into its outbox.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::wamp::v2::{Dict, Id, Payload, V2Msg, code, reason};
use herald_protocol::wamp::{Serializer, encode_v2};
use herald_protocol::ws;

use crate::conn::{Conn, ConnId};
use crate::wire::Wire;

/// Error of calls whose callee left before answering (WAMP2 advanced profile "Call Canceling").
pub const CANCELED: &str = "wamp.error.canceled";

/// Why an RPC request was refused; each maps to its WAMP error URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// Another session already registered the procedure.
    #[error("procedure already registered")]
    ProcedureExists,
    /// Nobody registered the procedure.
    #[error("no callee registered for the procedure")]
    NoSuchProcedure,
    /// The registration id is not one of this session's.
    #[error("no such registration")]
    NoSuchRegistration,
}

impl RpcError {
    /// The WAMP error URI (WAMP2 "Predefined URIs").
    pub fn uri(self) -> &'static str {
        match self {
            Self::ProcedureExists => reason::PROCEDURE_ALREADY_EXISTS,
            Self::NoSuchProcedure => reason::NO_SUCH_PROCEDURE,
            Self::NoSuchRegistration => reason::NO_SUCH_REGISTRATION,
        }
    }
}

#[derive(Debug)]
struct Registration {
    id: u64,
    callee: Arc<Conn>,
}

#[derive(Debug)]
struct Invocation {
    caller: Arc<Conn>,
    /// The caller's CALL request id.
    request: u64,
    callee: ConnId,
}

/// Procedures and pending invocations of one app.
#[derive(Debug, Default)]
pub(crate) struct Dealer {
    procedures: HashMap<Box<str>, Registration>,
    invocations: HashMap<u64, Invocation>,
}

impl Dealer {
    pub(crate) fn register(&mut self, callee: &Arc<Conn>, procedure: &str) -> Result<u64, RpcError> {
        if self.procedures.contains_key(procedure) {
            return Err(RpcError::ProcedureExists);
        }
        let id = random_id();
        self.procedures.insert(procedure.into(), Registration { id, callee: Arc::clone(callee) });
        Ok(id)
    }

    pub(crate) fn unregister(&mut self, callee: ConnId, registration: u64) -> Result<(), RpcError> {
        let before = self.procedures.len();
        self.procedures.retain(|_, r| !(r.id == registration && r.callee.id == callee));
        if self.procedures.len() == before { Err(RpcError::NoSuchRegistration) } else { Ok(()) }
    }

    /// Routes a CALL; returns the invocation id.
    pub(crate) fn call(
        &mut self,
        caller: &Arc<Conn>,
        request: u64,
        procedure: &str,
        payload: Payload,
        details: Dict,
    ) -> Result<u64, RpcError> {
        let reg = self.procedures.get(procedure).ok_or(RpcError::NoSuchProcedure)?;
        let invocation = random_id();
        let msg = V2Msg::Invocation {
            request: Id::saturating(invocation),
            registration: Id::saturating(reg.id),
            details,
            payload,
        };
        push(&reg.callee, &msg);
        self.invocations.insert(invocation, Invocation { caller: Arc::clone(caller), request, callee: reg.callee.id });
        Ok(invocation)
    }

    /// Delivers a callee's YIELD; false when the invocation is unknown (answered or cancelled).
    pub(crate) fn yield_result(&mut self, callee: ConnId, invocation: u64, payload: Payload) -> bool {
        let Some(inv) = self.take(callee, invocation) else { return false };
        let msg = V2Msg::Result { request: Id::saturating(inv.request), details: Dict::new(), payload };
        push(&inv.caller, &msg);
        true
    }

    /// Delivers a callee's ERROR for an invocation to the caller.
    pub(crate) fn fail(&mut self, callee: Option<ConnId>, invocation: u64, error: &str, payload: Payload) -> bool {
        let inv = match callee {
            Some(c) => self.take(c, invocation),
            None => self.invocations.remove(&invocation),
        };
        let Some(inv) = inv else { return false };
        let msg = V2Msg::Error {
            request_type: code::CALL,
            request: Id::saturating(inv.request),
            details: Dict::new(),
            error: error.to_owned(),
            payload,
        };
        push(&inv.caller, &msg);
        true
    }

    /// Forgets a session: drops its registrations, fails calls it was serving, drops its own calls.
    pub(crate) fn leave(&mut self, conn: ConnId) {
        self.procedures.retain(|_, r| r.callee.id != conn);
        let served: Vec<u64> = self.invocations.iter().filter(|(_, i)| i.callee == conn).map(|(id, _)| *id).collect();
        for id in served {
            self.fail(None, id, CANCELED, Payload::default());
        }
        self.invocations.retain(|_, i| i.caller.id != conn);
    }

    fn take(&mut self, callee: ConnId, invocation: u64) -> Option<Invocation> {
        match self.invocations.get(&invocation) {
            Some(i) if i.callee == callee => self.invocations.remove(&invocation),
            _ => None,
        }
    }
}

fn random_id() -> u64 {
    rand::random_range(1..=Id::MAX)
}

/// Encodes `msg` for `conn`'s serializer and queues it.
fn push(conn: &Conn, msg: &V2Msg) {
    if let Some(frame) = v2_frame(conn.wire, msg) {
        // A full outbox already marked the session for closing.
        let _ = conn.outbox.push(frame);
    }
}

/// `msg` as a complete WebSocket frame for a WAMP v2 connection; `None` for other wires.
pub fn v2_frame(wire: Wire, msg: &V2Msg) -> Option<Bytes> {
    let Wire::WampV2(ser) = wire else { return None };
    let body = encode_v2(ser, msg);
    Some(match ser {
        Serializer::Json => ws::encode_text(&body),
        Serializer::MsgPack => ws::encode_binary(&body),
    })
}
