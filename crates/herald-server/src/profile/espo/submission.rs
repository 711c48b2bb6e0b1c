//! The EspoCRM ZeroMQ submission parser, which lives in `herald_protocol::espo::submission`
//! (sans-IO, so the fuzz crate reaches it); re-exported here for the ZeroMQ loop in `espo.rs`.

pub(crate) use herald_protocol::espo::submission::parse;
