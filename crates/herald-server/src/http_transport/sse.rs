//! Server-Sent Events: `GET /apps/{key}/events?channels=a,b`, for pages and tools that only
//! read (an `EventSource`, `curl -N`).
//!
//! The stream is a Pusher session like any other, run by the same driver and adapter over the
//! HTTP session link: once the adapter says `connection_established`, the link posts a
//! `pusher:subscribe` per channel on the client's behalf, signing private channels itself (the
//! request was signed by the app's backend, see [`authorize`]), and carrying `recover` fields
//! parsed from `Last-Event-ID`. Frames come out as events:
//!
//! The stream starts with [`PREAMBLE`] (a comment and `retry: 1000`), then:
//!
//! ```text
//! id: {"channel":["<epoch>",<serial>],…}     (only once a channel has history positions)
//! event: <Pusher event name>
//! data: {"channel":"<channel>","data":<the event's data, as published>}
//! ```
//!
//! Internal `pusher:`/`pusher_internal:` events are not forwarded, except `pusher:error`,
//! `pusher:subscription_error` and `pusher:recovery_failed`. The link answers the adapter's
//! `pusher:ping` itself, as an SSE client cannot.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};
use herald_protocol::pusher::rest_sign::{RestRequest, verify_request};
use herald_protocol::pusher::socket_auth;
use serde_json::{Value, json};

use super::lines::frame_payload;

/// Most channels one stream may name.
pub(crate) const MAX_CHANNELS: usize = 100;

/// The start of every stream: a comment, so that the response is flushed at once, and the
/// reconnection delay. Browsers wait about 3 s by default before reconnecting a dropped
/// `EventSource`; a resumed stream replays what it missed from history, so coming back after
/// 1 s costs nothing and shortens the gap.
pub(crate) const PREAMBLE: &[u8] = b": herald\nretry: 1000\n\n";

/// A channel of a stream: its name, where to resume it, and where the stream is.
#[derive(Debug)]
struct Channel {
    name: Box<str>,
    /// `(epoch, serial)` from `Last-Event-ID`, sent as `recover` on the subscribe.
    recover: Option<(String, u64)>,
    /// The last `(epoch, serial)` this stream delivered.
    position: Option<(String, u64)>,
}

/// The SSE side of an HTTP session link.
#[derive(Debug)]
pub(crate) struct Sse {
    key: Box<str>,
    secret: Box<str>,
    channels: Vec<Channel>,
}

/// Why a stream request is refused (answered with a 4xx and this text).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No `channels`, or a bad name.
    BadChannels(&'static str),
    /// A presence or encrypted channel.
    Unsupported,
    /// A private channel without a valid signature.
    Unauthorized(String),
}

impl Sse {
    /// A stream of `channels` (already checked by [`parse_channels`]), resumed from `last_id`.
    pub(crate) fn new(key: &str, secret: &str, channels: Vec<String>, last_id: Option<&str>) -> Self {
        let resume = last_id.map(parse_last_id).unwrap_or_default();
        let channels = channels
            .into_iter()
            .map(|name| {
                let recover = resume.iter().find(|(c, _)| *c == name).map(|(_, p)| p.clone());
                Channel { name: name.into(), recover, position: None }
            })
            .collect();
        Self { key: key.into(), secret: secret.into(), channels }
    }

    /// Turns frames into events; messages for the adapter (subscribes, pongs) go to `inbound`.
    pub(crate) fn push(&mut self, out: &mut BytesMut, frames: &VecDeque<Bytes>, inbound: &mut VecDeque<Bytes>) {
        for frame in frames {
            let Some((1, payload)) = frame_payload(frame) else { continue };
            let Ok(msg) = serde_json::from_slice::<Value>(&payload) else { continue };
            let event = msg.get("event").and_then(Value::as_str).unwrap_or("");
            let channel = msg.get("channel").and_then(Value::as_str);
            let position = match (msg.get("epoch").and_then(Value::as_str), msg.get("serial").and_then(Value::as_u64)) {
                (Some(e), Some(s)) => Some((e.to_owned(), s)),
                _ => None,
            };
            if let (Some(c), Some(p)) = (channel, &position)
                && let Some(ch) = self.channels.iter_mut().find(|ch| &*ch.name == c)
            {
                ch.position = Some(p.clone());
            }
            match event {
                "pusher:connection_established" => self.subscribe(&msg, inbound),
                "pusher:ping" => inbound.push_back(Bytes::from_static(br#"{"event":"pusher:pong","data":{}}"#)),
                "pusher:error" | "pusher:subscription_error" | "pusher:recovery_failed" => {
                    self.emit(out, event, channel, msg.get("data"));
                }
                e if e.starts_with("pusher:") || e.starts_with("pusher_internal:") => {}
                e => self.emit(out, e, channel, msg.get("data")),
            }
        }
    }

    fn subscribe(&self, established: &Value, inbound: &mut VecDeque<Bytes>) {
        let data = established.get("data").and_then(Value::as_str).unwrap_or("{}");
        let socket_id = serde_json::from_str::<Value>(data)
            .ok()
            .and_then(|d| d.get("socket_id").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        for ch in &self.channels {
            let mut data = json!({ "channel": &*ch.name });
            if ch.name.starts_with("private-") {
                let to_sign = socket_auth::channel_string_to_sign(&socket_id, &ch.name, None);
                data["auth"] = json!(format!("{}:{}", self.key, socket_auth::sign(&self.secret, &to_sign)));
            }
            if let Some((epoch, serial)) = &ch.recover {
                data["recover"] = json!({ "epoch": epoch, "serial": serial });
            }
            inbound.push_back(Bytes::from(json!({ "event": "pusher:subscribe", "data": data }).to_string()));
        }
    }

    fn emit(&self, out: &mut BytesMut, event: &str, channel: Option<&str>, data: Option<&Value>) {
        let positions: serde_json::Map<String, Value> = self
            .channels
            .iter()
            .filter_map(|c| c.position.as_ref().map(|(e, s)| (c.name.to_string(), json!([e, s]))))
            .collect();
        if !positions.is_empty() {
            out.put_slice(b"id: ");
            out.put_slice(Value::Object(positions).to_string().as_bytes());
            out.put_u8(b'\n');
        }
        // Names and compact JSON hold no line breaks (serde escapes them inside strings).
        let name: String = event.chars().filter(|c| *c != '\n' && *c != '\r').collect();
        out.put_slice(format!("event: {name}\ndata: ").as_bytes());
        let body = json!({ "channel": channel, "data": data.cloned().unwrap_or(Value::Null) });
        out.put_slice(body.to_string().as_bytes());
        out.put_slice(b"\n\n");
    }
}

/// Parses `Last-Event-ID` (`{"channel":["epoch",serial],…}`); anything else resumes nothing.
pub(crate) fn parse_last_id(id: &str) -> Vec<(String, (String, u64))> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(id) else { return Vec::new() };
    map.into_iter()
        .filter_map(|(c, p)| {
            let epoch = p.get(0)?.as_str()?.to_owned();
            let serial = p.get(1)?.as_u64()?;
            Some((c, (epoch, serial)))
        })
        .take(MAX_CHANNELS)
        .collect()
}

/// The `channels` parameter: distinct valid channel names, public or private.
pub(crate) fn parse_channels(value: Option<&str>) -> Result<Vec<String>, Refusal> {
    let value = value.filter(|v| !v.is_empty()).ok_or(Refusal::BadChannels("The channels parameter is required"))?;
    let mut out: Vec<String> = Vec::new();
    for name in value.split(',') {
        let valid = !name.is_empty()
            && name.len() <= 200
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=@,.;".contains(&b));
        if !valid {
            return Err(Refusal::BadChannels("Bad channel name"));
        }
        if name.starts_with("presence-") || name.starts_with("private-encrypted-") || name.starts_with('#') {
            return Err(Refusal::Unsupported);
        }
        if !out.iter().any(|c| c == name) {
            out.push(name.to_owned());
        }
    }
    if out.len() > MAX_CHANNELS {
        return Err(Refusal::BadChannels("Too many channels (at most 100)"));
    }
    Ok(out)
}

/// Checks the backend's signature when a private channel is asked for: the Pusher HTTP API's
/// query signing of `GET /apps/{key}/events` with the app's key and secret.
pub(crate) fn authorize(
    channels: &[String],
    path: &str,
    query: &str,
    key: &str,
    secret: &str,
    now: i64,
) -> Result<(), Refusal> {
    if !channels.iter().any(|c| c.starts_with("private-")) {
        return Ok(());
    }
    let req = RestRequest { method: "GET", path, query, body: b"" };
    verify_request(&req, |k| (k == key).then_some(secret), now)
        .map(|_| ())
        .map_err(|e| Refusal::Unauthorized(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_protocol::ws;

    #[test]
    fn channels_parameter() {
        assert_eq!(parse_channels(Some("a,b,a")).unwrap(), ["a", "b"]);
        assert_eq!(parse_channels(Some("presence-x")), Err(Refusal::Unsupported));
        assert_eq!(parse_channels(Some("private-encrypted-x")), Err(Refusal::Unsupported));
        for bad in [None, Some(""), Some("a,,b"), Some("a b"), Some("a\nb")] {
            assert!(matches!(parse_channels(bad), Err(Refusal::BadChannels(_))), "{bad:?}");
        }
        let many = (0..101).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
        assert!(parse_channels(Some(&many)).is_err());
    }

    #[test]
    fn last_event_id_round_trip_and_noise() {
        assert_eq!(parse_last_id(r#"{"a":["e1",7]}"#), vec![("a".to_owned(), ("e1".to_owned(), 7))]);
        for noise in ["", "x", "[]", r#"{"a":"e"}"#, r#"{"a":[1,2]}"#, r#"{"a":["e",-1]}"#, "{\"a\":[\"e\""] {
            assert!(parse_last_id(noise).is_empty(), "{noise}");
        }
    }

    #[test]
    fn frames_become_events_and_subscribes() {
        let mut sse = Sse::new("k", "secret", vec!["news".into(), "private-x".into()], Some(r#"{"news":["ep",3]}"#));
        let established = ws::encode_text(
            br#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":120}"}"#,
        );
        let publication =
            ws::encode_text(br#"{"event":"e","channel":"news","data":"{\"a\":1}","epoch":"ep","serial":4}"#);
        let internal = ws::encode_text(br#"{"event":"pusher_internal:subscription_succeeded","channel":"news"}"#);
        let ping = ws::encode_text(br#"{"event":"pusher:ping","data":{}}"#);
        let (mut out, mut inbound) = (BytesMut::new(), VecDeque::new());
        sse.push(&mut out, &VecDeque::from([established, internal, publication, ping]), &mut inbound);
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(
            text,
            "id: {\"news\":[\"ep\",4]}\nevent: e\ndata: {\"channel\":\"news\",\"data\":\"{\\\"a\\\":1}\"}\n\n"
        );
        let subs: Vec<Value> = inbound.iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
        assert_eq!(subs[0]["data"]["recover"], json!({"epoch":"ep","serial":3}));
        let expected = format!("k:{}", socket_auth::sign("secret", "1.2:private-x"));
        assert_eq!(subs[1]["data"]["auth"], json!(expected));
        assert_eq!(subs[2]["event"], "pusher:pong");
    }
}
