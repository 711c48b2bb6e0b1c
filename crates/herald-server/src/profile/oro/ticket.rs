//! Oro sync tickets: the parsing, time window and digest live in `herald_protocol::oro::ticket`
//! (sans-IO, so the fuzz crate reaches them); re-exported here for the handshake in `oro.rs`.

pub(crate) use herald_protocol::oro::ticket::{Ticket, TicketError};
