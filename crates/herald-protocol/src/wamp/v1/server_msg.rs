//! What a WAMP v1 server sends: WELCOME, CALLRESULT, CALLERROR and EVENT. Encoders
//! write the JSON text directly; [`parse_v1_server`] reads the same messages back for test
//! clients and conformance tools.

use bytes::Bytes;
use serde_json::value::RawValue;

use super::{CallId, Fields, RawJson, code, elements, finish, first, frame_start, type_code};
use crate::json_text::{push_str, push_u64};
use crate::wamp::WampError;

/// The server ident stock Ratchet 0.4.4 puts in WELCOME, which Oro clients see.
pub const RATCHET_SERVER_IDENT: &str = "Ratchet/0.4.4";

/// WAMP protocol version announced in WELCOME.
pub const PROTOCOL_VERSION: u64 = 1;

/// `[0,"<sessionId>",1,"<serverIdent>"]`, or `[0,"<sessionId>",1]` when `server_ident` is
/// `None`, which is what Espo ≥ 9.2 sends after authentication.
#[must_use]
pub fn welcome(session_id: &str, server_ident: Option<&str>) -> Bytes {
    let mut out = frame_start(code::WELCOME, session_id.len() + 24);
    push_str(&mut out, session_id);
    out.push(b',');
    push_u64(&mut out, PROTOCOL_VERSION);
    if let Some(ident) = server_ident {
        out.push(b',');
        push_str(&mut out, ident);
    }
    finish(out)
}

/// `[3,callId,result]`; `result` is raw JSON (`null` allowed, it is always present).
#[must_use]
pub fn call_result(call_id: &CallId, result: &RawValue) -> Bytes {
    let mut out = frame_start(code::CALLRESULT, result.get().len() + 24);
    call_id.push_json(&mut out);
    out.push(b',');
    out.extend_from_slice(result.get().as_bytes());
    finish(out)
}

/// `[4,callId,errorUri,errorDesc]`, or with a fifth `errorDetails` element when `details` is
/// given. Like Ratchet, pass `None` rather than a JSON `null` to leave details out.
///
/// Espo answers every CALL with `call_error(id, proc_uri, "You are not allowed to make calls",
/// None)`, as its `websocket.php` does.
#[must_use]
pub fn call_error(call_id: &CallId, error_uri: &str, desc: &str, details: Option<&RawValue>) -> Bytes {
    let extra = error_uri.len() + desc.len() + details.map_or(0, |d| d.get().len()) + 32;
    let mut out = frame_start(code::CALLERROR, extra);
    call_id.push_json(&mut out);
    out.push(b',');
    push_str(&mut out, error_uri);
    out.push(b',');
    push_str(&mut out, desc);
    if let Some(details) = details {
        out.push(b',');
        out.extend_from_slice(details.get().as_bytes());
    }
    finish(out)
}

/// `[8,"<topic>",<payload>]`, the topic being the resolved URI. The same bytes go to every subscriber of the topic, so call
/// this once per publication; `payload` is written as is, without re-serialising.
#[must_use]
pub fn encode_event_v1(topic: &str, payload: &RawValue) -> Bytes {
    let mut out = frame_start(code::EVENT, topic.len() + payload.get().len() + 8);
    push_str(&mut out, topic);
    out.push(b',');
    out.extend_from_slice(payload.get().as_bytes());
    finish(out)
}

/// A message a v1 server sends, as a client reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum V1ServerMsg {
    /// `[0, sessionId, protocolVersion, serverIdent?]`.
    Welcome {
        /// The session id the server chose.
        session_id: String,
        /// Always 1 in practice.
        protocol_version: u64,
        /// Absent in Espo ≥ 9.2's WELCOME.
        server_ident: Option<String>,
    },
    /// `[3, callId, result]`.
    CallResult {
        /// The id of the answered CALL.
        call_id: CallId,
        /// Raw JSON result.
        result: RawJson,
    },
    /// `[4, callId, errorUri, errorDesc, errorDetails?]`.
    CallError {
        /// The id of the answered CALL.
        call_id: CallId,
        /// Error URI.
        error_uri: String,
        /// Description, possibly empty.
        desc: String,
        /// Raw JSON details, when sent.
        details: Option<RawJson>,
    },
    /// `[8, topicUri, event]`.
    Event {
        /// Resolved topic URI.
        topic: String,
        /// Raw JSON event.
        event: RawJson,
    },
}

/// Parses one text frame from a v1 server (the counterpart of the encoders above).
///
/// # Errors
/// [`WampError`] when the frame is not one of the four server messages in a valid shape.
pub fn parse_v1_server(frame: &[u8]) -> Result<V1ServerMsg, WampError> {
    let items = elements(frame)?;
    let code = type_code(first(&items)?)?;
    let name = match code {
        code::WELCOME => "WELCOME",
        code::CALLRESULT => "CALLRESULT",
        code::CALLERROR => "CALLERROR",
        code::EVENT => "EVENT",
        code::PREFIX | code::CALL | code::SUBSCRIBE | code::UNSUBSCRIBE | code::PUBLISH => {
            return Err(WampError::UnexpectedType(code));
        }
        other => return Err(WampError::UnknownType(other)),
    };
    let fields = Fields { name, items: &items };
    Ok(match code {
        code::WELCOME => V1ServerMsg::Welcome {
            session_id: fields.string(1)?,
            protocol_version: type_code(fields.get(2)?).map_err(|_| fields.wrong(2, "a protocol version number"))?,
            server_ident: items.get(3).map(|_| fields.string(3)).transpose()?,
        },
        code::CALLRESULT => {
            V1ServerMsg::CallResult { call_id: fields.call_id(1)?, result: RawJson(fields.get(2)?.to_owned()) }
        }
        code::CALLERROR => V1ServerMsg::CallError {
            call_id: fields.call_id(1)?,
            error_uri: fields.string(2)?,
            desc: fields.string(3)?,
            details: items.get(4).map(|raw| RawJson((*raw).to_owned())),
        },
        _ => V1ServerMsg::Event { topic: fields.string(1)?, event: RawJson(fields.get(2)?.to_owned()) },
    })
}
