//! What EspoCRM's `Submission::submit()` sends over ZeroMQ: one JSON object with
//! the data fields, an optional `userId` and a `topicId`. Anything else is refused here and
//! dropped by the caller with a log line (EspoCRM's own daemon crashes on invalid JSON).

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// A submission ready to route.
#[derive(Debug)]
pub struct Submission {
    /// `topicId`: the topic to publish on.
    pub topic: String,
    /// `userId` when it names a user (PHP-truthy): only that user's connections get the event.
    pub user: Option<String>,
    /// The whole object, byte for byte, as the EVENT payload.
    pub payload: Box<RawValue>,
}

/// Why a submission was dropped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    /// The message is not one JSON value, or holds a number outside the range of an f64.
    #[error("not valid JSON")]
    NotJson,
    /// The message is JSON but not an object.
    #[error("not a JSON object")]
    NotObject,
    /// `topicId` is missing, empty, `"0"` or not a string.
    #[error("no usable topicId")]
    NoTopic,
    /// `userId` is neither a string, a number nor empty.
    #[error("userId is not a string")]
    BadUser,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "topicId", default)]
    topic_id: Option<Value>,
    #[serde(rename = "userId", default)]
    user_id: Option<Value>,
}

/// Parses one ZeroMQ message.
///
/// # Errors
/// [`SubmissionError`] for anything EspoCRM's daemon would not route.
pub fn parse(bytes: &[u8]) -> Result<Submission, SubmissionError> {
    let payload: Box<RawValue> = serde_json::from_slice(bytes).map_err(|_| SubmissionError::NotJson)?;
    // A JSON array would otherwise deserialize into the envelope positionally.
    if !payload.get().starts_with('{') {
        return Err(SubmissionError::NotObject);
    }
    let env: Envelope = serde_json::from_str(payload.get()).map_err(|_| SubmissionError::NotObject)?;
    // A raw value and the ignored envelope fields skip number range checks, so `1e400` would be
    // relayed as is: subscribers read Infinity or fail, and EspoCRM's own daemon cannot
    // re-encode it either. Submissions are rare, so a second, full parse is cheap (fuzz finding F3).
    if serde_json::from_str::<Value>(payload.get()).is_err() {
        return Err(SubmissionError::NotJson);
    }
    // PHP's `if (!$topicId) return;`: "" and "0" are falsy.
    let topic = match env.topic_id {
        Some(Value::String(t)) if !t.is_empty() && t != "0" => t,
        _ => return Err(SubmissionError::NoTopic),
    };
    // PHP's `if ($userId)`: a falsy user id means "everyone subscribed".
    let user = match env.user_id {
        None | Some(Value::Null | Value::Bool(false)) => None,
        Some(Value::String(u)) if u.is_empty() || u == "0" => None,
        Some(Value::String(u)) => Some(u),
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(SubmissionError::BadUser),
    };
    Ok(Submission { topic, user, payload })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn espo_submissions_parse_and_keep_their_bytes() {
        let s = parse(br#"{"userId":"6627a","topicId":"newNotification"}"#).unwrap();
        assert_eq!((s.topic.as_str(), s.user.as_deref()), ("newNotification", Some("6627a")));
        assert_eq!(s.payload.get(), r#"{"userId":"6627a","topicId":"newNotification"}"#);
        let s =
            parse(br#"{"createdById":"u1","noteId":"n1","pin":false,"topicId":"streamUpdate.Account.a1"}"#).unwrap();
        assert_eq!((s.topic.as_str(), s.user), ("streamUpdate.Account.a1", None));
        assert_eq!(parse(br#"{"topicId":"x","userId":null}"#).unwrap().user, None);
        assert_eq!(parse(br#"{"topicId":"x","userId":""}"#).unwrap().user, None);
        assert_eq!(parse(br#"{"topicId":"x","userId":7}"#).unwrap().user.as_deref(), Some("7"));
    }

    #[test]
    fn malformed_submissions_are_refused() {
        assert_eq!(parse(b"not json").unwrap_err(), SubmissionError::NotJson);
        assert_eq!(parse(b"{\"topicId\":\"x\"").unwrap_err(), SubmissionError::NotJson);
        assert_eq!(parse(br#"{"topicId":"x","n":5e27278}"#).unwrap_err(), SubmissionError::NotJson);
        assert_eq!(parse(br#"["newNotification","u1"]"#).unwrap_err(), SubmissionError::NotObject);
        assert_eq!(parse(b"\"newNotification\"").unwrap_err(), SubmissionError::NotObject);
        assert_eq!(parse(br#"{"userId":"u1"}"#).unwrap_err(), SubmissionError::NoTopic);
        assert_eq!(parse(br#"{"topicId":""}"#).unwrap_err(), SubmissionError::NoTopic);
        assert_eq!(parse(br#"{"topicId":5}"#).unwrap_err(), SubmissionError::NoTopic);
        assert_eq!(parse(br#"{"topicId":"x","topicId":"y"}"#).unwrap_err(), SubmissionError::NotObject);
        assert_eq!(parse(br#"{"topicId":"x","userId":["u1"]}"#).unwrap_err(), SubmissionError::BadUser);
    }
}
