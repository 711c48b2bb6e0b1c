//! The WAMP v2 side of the generator, `wamp.2.json` serializer: joining a realm, subscribing,
//! and the PUBLISH message (WAMP basic profile; message codes HELLO 1, WELCOME 2, ABORT 3,
//! GOODBYE 6, ERROR 8, PUBLISH 16, SUBSCRIBE 32, SUBSCRIBED 33, EVENT 36).

use serde_json::Value;

use crate::error::BenchError;
use crate::ws_client::WsConn;

/// The subprotocol a WAMP v2 JSON client offers.
pub const SUBPROTOCOL: &str = "wamp.2.json";

/// HELLO.
const HELLO: u64 = 1;
/// WELCOME.
const WELCOME: u64 = 2;
/// ABORT.
const ABORT: u64 = 3;
/// ERROR.
const ERROR: u64 = 8;
/// PUBLISH.
const PUBLISH: u64 = 16;
/// SUBSCRIBE.
const SUBSCRIBE: u64 = 32;
/// SUBSCRIBED.
const SUBSCRIBED: u64 = 33;

/// Sends HELLO for `realm` (roles subscriber and publisher) and waits for WELCOME. Returns the
/// session id.
///
/// # Errors
/// The router answered ABORT, the socket failed, or a message is not WAMP JSON.
pub async fn join(conn: &mut WsConn, realm: &str) -> Result<u64, BenchError> {
    let hello = serde_json::json!([HELLO, realm, {"roles": {"subscriber": {}, "publisher": {}}}]);
    conn.send_text(hello.to_string().as_bytes()).await?;
    let msg = next(conn).await?;
    match code(&msg) {
        Some(WELCOME) => Ok(msg.get(1).and_then(Value::as_u64).unwrap_or(0)),
        _ => Err(BenchError::Refused(msg.to_string())),
    }
}

/// Subscribes to `topic` and waits for SUBSCRIBED. Returns the subscription id.
///
/// # Errors
/// The router answered ERROR or ABORT, the socket failed, or a message is not WAMP JSON.
pub async fn subscribe(conn: &mut WsConn, topic: &str) -> Result<u64, BenchError> {
    let request = 1u64;
    let sub = serde_json::json!([SUBSCRIBE, request, {}, topic]);
    conn.send_text(sub.to_string().as_bytes()).await?;
    loop {
        let msg = next(conn).await?;
        match code(&msg) {
            Some(SUBSCRIBED) if msg.get(1).and_then(Value::as_u64) == Some(request) => {
                return Ok(msg.get(2).and_then(Value::as_u64).unwrap_or(0));
            }
            Some(ERROR | ABORT) => return Err(BenchError::Refused(msg.to_string())),
            _ => {}
        }
    }
}

/// A PUBLISH of one positional argument, unacknowledged (the router sends nothing back).
pub fn publish_message(request: u64, topic: &str, arg: &str) -> Vec<u8> {
    serde_json::json!([PUBLISH, request, {}, topic, [arg]]).to_string().into_bytes()
}

/// The next WAMP message as JSON.
async fn next(conn: &mut WsConn) -> Result<Value, BenchError> {
    let data = conn.next_data().await?;
    Ok(serde_json::from_slice(&data)?)
}

/// The message type code of a WAMP message.
fn code(msg: &Value) -> Option<u64> {
    msg.get(0).and_then(Value::as_u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_is_a_plain_json_array() {
        let m = publish_message(7, "com.bench.topic", "hb1:0:5:");
        assert_eq!(m, br#"[16,7,{},"com.bench.topic",["hb1:0:5:"]]"#);
    }
}
