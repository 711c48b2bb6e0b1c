//! The Pusher side of the generator: a subscriber's opening dialogue over WebSocket and the
//! body of an HTTP API publish (the Pusher Channels Protocol page and HTTP API reference).

use serde::Deserialize;
use serde_json::Value;

use crate::error::BenchError;
use crate::ws_client::WsConn;

/// What a client answers to `pusher:ping`.
pub const PONG: &[u8] = br#"{"event":"pusher:pong","data":{}}"#;

/// The fields of a server message the generator looks at.
#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    data: Value,
}

/// Waits for `pusher:connection_established`, subscribes to `channel` and waits for
/// `pusher_internal:subscription_succeeded`.
///
/// # Errors
/// The socket failed, the server sent `pusher:error` / `pusher:subscription_error`, or a
/// message is not Pusher JSON.
pub async fn subscribe(conn: &mut WsConn, channel: &str) -> Result<(), BenchError> {
    expect(conn, |m| m.event == "pusher:connection_established").await?;
    let msg = serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel}});
    conn.send_text(msg.to_string().as_bytes()).await?;
    expect(conn, |m| m.event == "pusher_internal:subscription_succeeded" && m.channel.as_deref() == Some(channel)).await
}

/// Reads messages until one satisfies `wanted`, answering pings and failing on errors.
async fn expect(conn: &mut WsConn, wanted: impl Fn(&Envelope) -> bool) -> Result<(), BenchError> {
    loop {
        let data = conn.next_data().await?;
        let m: Envelope = serde_json::from_slice(&data)?;
        if wanted(&m) {
            return Ok(());
        }
        match m.event.as_str() {
            "pusher:error" | "pusher:subscription_error" => {
                return Err(BenchError::Refused(m.data.to_string()));
            }
            "pusher:ping" => conn.send_text(PONG).await?,
            _ => {}
        }
    }
}

/// Whether a delivered frame is a `pusher:ping` the client must answer.
pub fn is_ping(frame: &[u8]) -> bool {
    memchr::memmem::find(frame, b"\"pusher:ping\"").is_some()
}

/// The JSON body of `POST /apps/{id}/events` carrying `data` as event `name` on `channel`.
pub fn event_body(channel: &str, name: &str, data: &str) -> Vec<u8> {
    serde_json::json!({"name": name, "channel": channel, "data": data}).to_string().into_bytes()
}
