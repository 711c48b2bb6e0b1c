//! The Pusher <-> WAMP payload mapping (docs/wamp.md, "One hub across protocols").
//!
//! - Pusher `data` (a string) becomes the WAMP payload value: parsed when it is JSON, the
//!   string itself otherwise; WAMP v2 receivers also get the Pusher event name as `kwargs.event`.
//! - A WAMP publication becomes Pusher `data`: the JSON text of its single argument (a string
//!   argument as that string), or of `{"args": [...], "kwargs": {...}}` when there are several.

use std::borrow::Cow;

use herald_protocol::pusher::server_msg::EventData;
use herald_protocol::wamp::v2::{Dict, Value};
use serde_json::value::RawValue;

use super::{Origin, PublicationData};

/// Pusher `data` for a publication, borrowed when it can be.
pub(super) enum PusherData<'a> {
    /// A string, sent JSON-escaped.
    Str(Cow<'a, str>),
    /// Raw JSON, sent verbatim (Pusher client events).
    Raw(&'a RawValue),
}

impl PusherData<'_> {
    /// The form `server_msg::event` takes.
    pub(super) fn as_event_data(&self) -> EventData<'_> {
        match self {
            Self::Str(s) => EventData::Str(s),
            Self::Raw(r) => EventData::Raw(r),
        }
    }
}

/// The Pusher `data` of a publication.
pub(super) fn pusher_data(data: &PublicationData, origin: Origin) -> PusherData<'_> {
    match data {
        PublicationData::Str(s) => PusherData::Str(Cow::Borrowed(s)),
        PublicationData::Json(raw) if origin == Origin::Pusher => PusherData::Raw(raw),
        PublicationData::Json(raw) => match serde_json::from_str::<String>(raw.get()) {
            Ok(s) => PusherData::Str(Cow::Owned(s)),
            Err(_) => PusherData::Str(Cow::Borrowed(raw.get())),
        },
        PublicationData::Wamp { args, kwargs } => {
            let text = match single_arg(args, kwargs) {
                Some(Value::Str(s)) => s.clone(),
                Some(v) => json_text(v),
                None => json_text(&args_and_kwargs(args, kwargs)),
            };
            PusherData::Str(Cow::Owned(text))
        }
    }
}

/// The WAMP v1 EVENT payload (raw JSON) of a publication.
pub(super) fn v1_payload(data: &PublicationData) -> Cow<'_, RawValue> {
    let owned = |text: String| {
        // Text produced by a JSON encoder is valid JSON; the fallback only keeps the types honest.
        RawValue::from_string(text).unwrap_or_else(|_| RawValue::NULL.to_owned())
    };
    match data {
        PublicationData::Str(s) => match serde_json::from_str::<&RawValue>(s) {
            Ok(_) => Cow::Owned(owned(s.to_string())),
            Err(_) => Cow::Owned(owned(serde_json::Value::String(s.to_string()).to_string())),
        },
        PublicationData::Json(raw) => Cow::Borrowed(raw),
        PublicationData::Wamp { args, kwargs } => match single_arg(args, kwargs) {
            Some(v) => Cow::Owned(owned(json_text(v))),
            None => Cow::Owned(owned(json_text(&args_and_kwargs(args, kwargs)))),
        },
    }
}

/// The WAMP v2 EVENT arguments of a publication.
pub(super) fn v2_payload<'a>(
    data: &'a PublicationData,
    origin: Origin,
    event: &str,
) -> (Cow<'a, [Value]>, Option<Cow<'a, Dict>>) {
    let event_kwargs = || (origin == Origin::Pusher).then(|| Cow::Owned(Dict::new().with("event", event)));
    match data {
        PublicationData::Str(s) => {
            let v = Value::from_json(s.as_bytes()).unwrap_or_else(|_| Value::Str(s.to_string()));
            (Cow::Owned(vec![v]), event_kwargs())
        }
        PublicationData::Json(raw) => {
            let v = Value::from_json(raw.get().as_bytes()).unwrap_or_else(|_| Value::Str(raw.get().to_owned()));
            (Cow::Owned(vec![v]), event_kwargs())
        }
        PublicationData::Wamp { args, kwargs } => {
            (Cow::Borrowed(args.as_slice()), (!kwargs.is_empty()).then_some(Cow::Borrowed(kwargs)))
        }
    }
}

/// The single argument of a WAMP publication whose only keyword is (at most) `event`.
fn single_arg<'a>(args: &'a [Value], kwargs: &Dict) -> Option<&'a Value> {
    let extra_kwargs = kwargs.iter().any(|(k, _)| k != "event");
    match args {
        [one] if !extra_kwargs => Some(one),
        [] if !extra_kwargs => None,
        _ => None,
    }
}

fn args_and_kwargs(args: &[Value], kwargs: &Dict) -> Value {
    Value::Dict(Dict::new().with("args", args.to_vec()).with("kwargs", kwargs.clone()))
}

fn json_text(v: &Value) -> String {
    String::from_utf8_lossy(&v.to_json()).into_owned()
}
