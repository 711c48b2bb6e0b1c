//! Everything the Pusher HTTP API can refuse, and the HTTP status each maps to.
//!
//! The mapping lives here and only here (Pusher's HTTP API reference: 400, 401, 403, 404, 413;
//! herald adds 429 and 503 with `Retry-After` for its flood bounds).
//! Bodies are JSON `{"error": "..."}` with a message a developer can act on.

use herald_protocol::pusher::error::ProtocolError;
use herald_protocol::pusher::rest_sign::RestAuthError;
use hyper::{Response, StatusCode};

use super::response::{Body, json_response};

/// Why an API request was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// No app has this id.
    #[error("Unknown app id {0:?}")]
    UnknownApp(String),
    /// The app is disabled in the config.
    #[error("App {0:?} is disabled")]
    AppDisabled(String),
    /// The request signature, key, timestamp or body_md5 is wrong.
    #[error("{0}")]
    Auth(#[from] RestAuthError),
    /// No API endpoint at this path.
    #[error("Unknown API path {0:?}")]
    NotFound(String),
    /// The endpoint exists but not with this method.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// The body is larger than the app allows.
    #[error("Request body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The body could not be read.
    #[error("Could not read the request body")]
    BodyRead,
    /// The body did not arrive in time.
    #[error("The request body did not arrive in time")]
    BodyTimeout,
    /// The body is not the JSON the endpoint expects.
    #[error("Invalid JSON body: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// A required field is missing.
    #[error("Missing required field {0:?}")]
    MissingField(&'static str),
    /// A channel name is invalid.
    #[error("Invalid channel name {name:?}: {source}")]
    InvalidChannel {
        /// The name given.
        name: String,
        /// What is wrong with it.
        #[source]
        source: ProtocolError,
    },
    /// More channels than `max_event_channels`.
    #[error("An event may go to at most {max} channels, got {got}")]
    TooManyChannels {
        /// Channels given.
        got: usize,
        /// The app's limit.
        max: usize,
    },
    /// More events than `max_batch_events`.
    #[error("A batch may hold at most {max} events, got {got}")]
    TooManyEvents {
        /// Events given.
        got: usize,
        /// The app's limit.
        max: usize,
    },
    /// The event name is longer than `max_event_name_length`.
    #[error("Event name is longer than {0} characters")]
    EventNameTooLong(usize),
    /// The event data is larger than `max_event_data_bytes`.
    #[error("Event data is {got} bytes, more than the {max} allowed")]
    DataTooLarge {
        /// Size given.
        got: usize,
        /// The app's limit.
        max: usize,
    },
    /// `socket_id` does not look like `123.456`.
    #[error("Invalid socket_id {0:?}")]
    InvalidSocketId(String),
    /// An `info` attribute that does not exist or does not apply to the channel.
    #[error("Invalid info attribute {0:?} for this request")]
    InvalidInfo(String),
    /// A presence-only query on another kind of channel.
    #[error("{0:?} is not a presence channel")]
    NotPresence(String),
    /// The app's `max_backend_events_per_second` is spent; nothing was published.
    #[error(
        "Too many events: this app may publish {} events per second (counted per channel); \
         nothing was published, retry after {} s",
        .0.per_second,
        retry_after_secs(.0)
    )]
    RateLimited(herald_core::rate::OverBudget),
    /// Too many request bodies are being read at once (process-wide memory bound).
    #[error("The server is reading too many request bodies at once; retry after 1 s")]
    Busy,
    /// The backend cannot reach the other nodes (scale-out link down); nothing was published.
    /// The client is told only that: which backend failed, and how, goes to the log.
    #[error("Service unavailable; nothing was published, retry later")]
    Unavailable(#[from] herald_core::backend::Unavailable),
}

/// Whole seconds a client should wait (`Retry-After` has no fractions), at least 1.
fn retry_after_secs(over: &herald_core::rate::OverBudget) -> u64 {
    over.retry_after.as_secs_f64().ceil().max(1.0) as u64
}

impl ApiError {
    /// The HTTP status of this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::UnknownApp(_) | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::AppDisabled(_) => StatusCode::FORBIDDEN,
            Self::Auth(_) => StatusCode::UNAUTHORIZED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::BodyTooLarge(_) | Self::DataTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead
            | Self::InvalidJson(_)
            | Self::MissingField(_)
            | Self::InvalidChannel { .. }
            | Self::TooManyChannels { .. }
            | Self::TooManyEvents { .. }
            | Self::EventNameTooLong(_)
            | Self::InvalidSocketId(_)
            | Self::InvalidInfo(_)
            | Self::NotPresence(_) => StatusCode::BAD_REQUEST,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Busy | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The error as an HTTP response.
    pub(crate) fn into_response(self) -> Response<Body> {
        if let Self::Unavailable(why) = &self {
            // Debug: the link's state changes are logged as warnings where they happen, and
            // an outage can refuse thousands of requests a second.
            tracing::debug!(reason = %why, "HTTP API publish refused");
        }
        let retry_after = match &self {
            Self::RateLimited(over) => Some(retry_after_secs(over)),
            Self::Busy | Self::Unavailable(_) => Some(1),
            _ => None,
        };
        let body = serde_json::json!({ "error": self.to_string() }).to_string();
        let mut resp = json_response(self.status(), body.into());
        if let Some(secs) = retry_after {
            resp.headers_mut().insert(hyper::header::RETRY_AFTER, hyper::header::HeaderValue::from(secs));
        }
        resp
    }
}
