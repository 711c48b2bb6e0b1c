//! Control messages between nodes, on each app's pub/sub channel `{prefix}:{app}:ctl`: what
//! every node must apply to its own subscribers when the cluster's state changes (a member
//! added or removed, a subscription count) or an API call must reach every socket of a user
//! (`terminate_connections`).
//!
//! A message is a JSON object with a format version `v`; a node refuses (and logs) messages of
//! another version or shape rather than guessing, and never panics on what it reads.

use herald_protocol::pusher::channel_name::ChannelName;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// The format written and understood.
pub(crate) const VERSION: u64 = 1;

/// One message.
#[derive(Debug)]
pub(crate) enum Control {
    /// The user became a member of the presence channel in the cluster.
    MemberAdded { channel: ChannelName, user: Box<str>, info: Option<Box<RawValue>> },
    /// The user's last socket in the cluster left the presence channel.
    MemberRemoved { channel: ChannelName, user: Box<str> },
    /// The channel's subscriptions across the cluster.
    Count { channel: ChannelName, count: usize },
    /// Close every socket of the signed-in user (`terminate_connections`).
    Terminate { user: Box<str> },
}

/// Why a message was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ControlError {
    #[error("control message is not a JSON object")]
    NotObject,
    #[error("control message of format version {0:?} (this node reads {VERSION})")]
    Version(Option<u64>),
    #[error("control message of unknown type {0:?}")]
    Type(String),
    #[error("control message without a valid {0:?}")]
    Field(&'static str),
}

impl Control {
    /// The message's bytes.
    pub(crate) fn encode(&self) -> String {
        let v = match self {
            Control::MemberAdded { channel, user, info } => {
                let mut m = json!({ "v": VERSION, "t": "member_added", "channel": channel.as_str(), "user": &**user });
                if let (Some(info), Value::Object(o)) = (info, &mut m) {
                    // Raw JSON text from the hub: parse it back into the object (it was valid).
                    o.insert("info".into(), serde_json::from_str(info.get()).unwrap_or(Value::Null));
                }
                m
            }
            Control::MemberRemoved { channel, user } => {
                json!({ "v": VERSION, "t": "member_removed", "channel": channel.as_str(), "user": &**user })
            }
            Control::Count { channel, count } => {
                json!({ "v": VERSION, "t": "count", "channel": channel.as_str(), "count": count })
            }
            Control::Terminate { user } => json!({ "v": VERSION, "t": "terminate", "user": &**user }),
        };
        v.to_string()
    }

    /// The message in `bytes`; channel names longer than `max_channel` are refused.
    pub(crate) fn decode(bytes: &[u8], max_channel: usize) -> Result<Control, ControlError> {
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(bytes) else { return Err(ControlError::NotObject) };
        let version = m.get("v").and_then(Value::as_u64);
        if version != Some(VERSION) {
            return Err(ControlError::Version(version));
        }
        let str_field = |name: &'static str| -> Result<&str, ControlError> {
            m.get(name).and_then(Value::as_str).ok_or(ControlError::Field(name))
        };
        let channel = |m: &Map<String, Value>| -> Result<ChannelName, ControlError> {
            let name = m.get("channel").and_then(Value::as_str).ok_or(ControlError::Field("channel"))?;
            ChannelName::parse(name, max_channel).map_err(|_| ControlError::Field("channel"))
        };
        match str_field("t")? {
            "member_added" => {
                let info = match m.get("info") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(serde_json::value::to_raw_value(v).map_err(|_| ControlError::Field("info"))?),
                };
                Ok(Control::MemberAdded { channel: channel(&m)?, user: str_field("user")?.into(), info })
            }
            "member_removed" => Ok(Control::MemberRemoved { channel: channel(&m)?, user: str_field("user")?.into() }),
            "count" => {
                let count = m.get("count").and_then(Value::as_u64).ok_or(ControlError::Field("count"))?;
                let count = usize::try_from(count).map_err(|_| ControlError::Field("count"))?;
                Ok(Control::Count { channel: channel(&m)?, count })
            }
            "terminate" => Ok(Control::Terminate { user: str_field("user")?.into() }),
            other => Err(ControlError::Type(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(name: &str) -> ChannelName {
        ChannelName::parse(name, 200).unwrap()
    }

    #[test]
    fn every_message_comes_back_as_it_went() {
        let info = serde_json::value::to_raw_value(&json!({"name": "Ann", "n": [1, 2]})).unwrap();
        let msgs = [
            Control::MemberAdded { channel: ch("presence-a"), user: "u1".into(), info: Some(info) },
            Control::MemberAdded { channel: ch("presence-a"), user: "u2".into(), info: None },
            Control::MemberRemoved { channel: ch("presence-a"), user: "u1".into() },
            Control::Count { channel: ch("room"), count: 7 },
            Control::Terminate { user: "u\"x".into() },
        ];
        for msg in msgs {
            let text = msg.encode();
            let back = Control::decode(text.as_bytes(), 200).unwrap();
            assert_eq!(format!("{back:?}"), format!("{msg:?}"), "{text}");
        }
    }

    #[test]
    fn info_keeps_its_json() {
        let info = serde_json::value::to_raw_value(&json!({"name": "Ann"})).unwrap();
        let text = Control::MemberAdded { channel: ch("presence-a"), user: "u".into(), info: Some(info) }.encode();
        let Ok(Control::MemberAdded { info: Some(info), .. }) = Control::decode(text.as_bytes(), 200) else {
            panic!("{text}")
        };
        assert_eq!(info.get(), r#"{"name":"Ann"}"#);
    }

    #[test]
    fn anything_else_is_refused_without_panicking() {
        let cases: [(&[u8], ControlError); 8] = [
            (b"", ControlError::NotObject),
            (b"\xff\xfe", ControlError::NotObject),
            (b"[1]", ControlError::NotObject),
            (br#"{"t":"terminate","user":"u"}"#, ControlError::Version(None)),
            (br#"{"v":2,"t":"terminate","user":"u"}"#, ControlError::Version(Some(2))),
            (br#"{"v":1,"t":"explode"}"#, ControlError::Type("explode".into())),
            (br#"{"v":1,"t":"count","channel":"room","count":-1}"#, ControlError::Field("count")),
            (br#"{"v":1,"t":"member_removed","channel":"bad name!","user":"u"}"#, ControlError::Field("channel")),
        ];
        for (bytes, want) in cases {
            assert_eq!(Control::decode(bytes, 200).err(), Some(want), "{}", String::from_utf8_lossy(bytes));
        }
        let long = format!(r#"{{"v":1,"t":"count","channel":"{}","count":1}}"#, "a".repeat(300));
        assert_eq!(Control::decode(long.as_bytes(), 200).err(), Some(ControlError::Field("channel")));
    }
}
