//! The Pusher Channels HTTP API (Pusher's HTTP API reference): publish, batch publish, channel
//! queries, presence users and user termination, every request signed.
//!
//! A publish answered with 200 has been handed to the hub: its frames are in every local
//! subscriber's outbox before the response is written.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use herald_core::backend::Unavailable;
use herald_core::hub::ChannelSummary;
use herald_core::{App, Hub, Publication, PublicationData};
use herald_protocol::pusher::channel_name::{Access, ChannelName};
use herald_protocol::pusher::rest_sign::{QueryParams, RestAuthError, RestRequest, precheck, verify_request};
use herald_redis::{ChannelCounts, ClusterQueries, QueryError};
use http_body_util::{BodyExt, Limited};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::api_error::ApiError;
use super::response::{Body, json_response};

/// How long a client may take to send its request body (slow-body guard).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Handles a request under `/apps/`. With `cluster` (scaled out), channel and user queries are
/// answered from the state the nodes share, and user termination reaches every node.
pub(crate) async fn handle(
    hub: &Hub,
    cluster: Option<&ClusterQueries>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    match dispatch(hub, cluster, req).await {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => {
            tracing::debug!(error = %e, status = %e.status(), "API request refused");
            e.into_response()
        }
    }
}

/// `POST /apps/{id}/events` for a caller herald already trusts (the dashboard's event creator):
/// no signature, otherwise the same validation, limits, errors and publication.
pub(crate) async fn publish_trusted(hub: &Hub, app: &App, body: &[u8]) -> Response<Body> {
    let published = if app.config.enabled {
        publish_one(hub, None, app, body).await
    } else {
        Err(ApiError::AppDisabled(app.config.id.clone()))
    };
    match published {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
}

async fn dispatch(
    hub: &Hub,
    cluster: Option<&ClusterQueries>,
    req: Request<hyper::body::Incoming>,
) -> Result<Bytes, ApiError> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().clone();
    // Behind a proxy path prefix (`[server] path_prefix`): the SDKs sign `/apps/...` without it,
    // but a client configured with the full path signs that; both are accepted.
    let sent_path = req.extensions().get::<crate::listen::prefix::OriginalPath>().map(|p| p.0.clone());
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (app, rest) = match segments.as_slice() {
        ["apps", app_id, rest @ ..] => {
            (hub.app_by_id(app_id).ok_or_else(|| ApiError::UnknownApp((*app_id).to_owned()))?, rest)
        }
        // pusher-http-python 3.3 posts user termination to `/users/{id}/terminate_connections`,
        // without the `/apps/{app_id}` prefix; the app is then the one whose key signed it.
        rest @ ["users", _, "terminate_connections"] => {
            let key = auth_key(&query).ok_or_else(|| ApiError::NotFound(path.clone()))?;
            (hub.app_by_key(&key).ok_or_else(|| ApiError::NotFound(path.clone()))?, rest)
        }
        _ => return Err(ApiError::NotFound(path.clone())),
    };

    // Credentials first: an unauthenticated client must not make us wait for, or buffer, a body.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    precheck(&query, |key| key == app.config.key, now)?;
    let limit = body_limit(&app);
    let declared = req.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
    let size = declared.map_or(limit, |n: usize| n.min(limit));
    let _permit = super::body_budget::reserve(size).map_err(|_| ApiError::Busy)?;
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), limit).collect()).await;
    let body = match collected {
        Err(_) => return Err(ApiError::BodyTimeout),
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            return Err(ApiError::BodyTooLarge(limit));
        }
        Ok(Err(_)) => return Err(ApiError::BodyRead),
    };
    let signed = RestRequest { method: method.as_str(), path: &path, query: &query, body: &body };
    let secret = |key: &str| (key == app.config.key).then_some(app.config.secret.as_str());
    let params = match (verify_request(&signed, secret, now), &sent_path) {
        (Err(first @ RestAuthError::BadSignature { .. }), Some(sent)) => {
            // Report the SDK-style string to sign, the one most clients should match.
            verify_request(&RestRequest { path: sent, ..signed }, secret, now).map_err(|_| first)?
        }
        (result, _) => result?,
    };
    if !app.config.enabled {
        return Err(ApiError::AppDisabled(app.config.id.clone()));
    }

    match (&method, rest) {
        (&Method::POST, ["events"]) => publish_one(hub, cluster, &app, &body).await,
        (&Method::POST, ["batch_events"]) => publish_batch(hub, cluster, &app, &body).await,
        (&Method::GET, ["channels"]) => list_channels(hub, cluster, &app, &params).await,
        (&Method::GET, ["channels", name]) => channel_info(hub, cluster, &app, &decode(name), &params).await,
        (&Method::GET, ["channels", name, "users"]) => presence_users(hub, cluster, &app, &decode(name)).await,
        (&Method::POST, ["users", user, "terminate_connections"]) => {
            let user = decode(user);
            match cluster {
                // Every node (this one too) closes its sockets of the user.
                Some(q) => q.terminate(&app.config.id, &user).await.map_err(unavailable)?,
                None => {
                    hub.terminate_user(&app, &user);
                }
            }
            Ok(Bytes::from_static(b"{}"))
        }
        (_, ["events" | "batch_events" | "channels"])
        | (_, ["channels", _] | ["channels", _, "users"] | ["users", _, "terminate_connections"]) => {
            Err(ApiError::MethodNotAllowed)
        }
        _ => Err(ApiError::NotFound(path.clone())),
    }
}

/// The `auth_key` of a query string, decoded.
fn auth_key(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("auth_key=")?;
        percent_decode_str(value).decode_utf8().ok().map(|k| k.into_owned())
    })
}

/// The largest body worth reading for this app: a full batch of maximal events plus JSON overhead.
fn body_limit(app: &App) -> usize {
    let c = &app.config;
    c.max_batch_events * (c.max_event_data_bytes * 2 + c.max_event_channels * (c.max_channel_name_length + 4) + 1024)
}

/// Charges a validated request to the app's backend event budget, before anything is published.
fn charge(app: &App, deliveries: usize) -> Result<(), ApiError> {
    app.charge_backend_events(deliveries, tokio::time::Instant::now()).map_err(ApiError::RateLimited)
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// One event as the SDKs send it.
#[derive(Debug, Deserialize)]
struct EventBody {
    name: Option<String>,
    data: Option<Box<RawValue>>,
    channel: Option<String>,
    channels: Option<Vec<String>>,
    socket_id: Option<String>,
    info: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BatchBody {
    batch: Vec<EventBody>,
}

/// An event that passed validation, ready to publish.
struct ValidEvent {
    name: String,
    data: String,
    channels: Vec<ChannelName>,
    socket_id: Option<String>,
    info: Vec<String>,
}

fn validate(app: &App, ev: EventBody) -> Result<ValidEvent, ApiError> {
    let cfg = &app.config;
    let name = ev.name.ok_or(ApiError::MissingField("name"))?;
    if name.is_empty() {
        return Err(ApiError::MissingField("name"));
    }
    if name.chars().count() > cfg.max_event_name_length {
        return Err(ApiError::EventNameTooLong(cfg.max_event_name_length));
    }
    let raw = ev.data.ok_or(ApiError::MissingField("data"))?;
    // Pusher's `data` is a string; accept other JSON as its own text, as lenient servers do.
    let data = match serde_json::from_str::<String>(raw.get()) {
        Ok(s) => s,
        Err(_) => raw.get().to_owned(),
    };
    if data.len() > cfg.max_event_data_bytes {
        return Err(ApiError::DataTooLarge { got: data.len(), max: cfg.max_event_data_bytes });
    }
    let names = match (ev.channel, ev.channels) {
        (Some(c), None) => vec![c],
        (None, Some(cs)) if !cs.is_empty() => cs,
        (Some(c), Some(mut cs)) => {
            cs.push(c);
            cs
        }
        _ => return Err(ApiError::MissingField("channels")),
    };
    if names.len() > cfg.max_event_channels {
        return Err(ApiError::TooManyChannels { got: names.len(), max: cfg.max_event_channels });
    }
    let channels = names
        .into_iter()
        .map(|n| {
            ChannelName::parse(&n, cfg.max_channel_name_length)
                .map_err(|source| ApiError::InvalidChannel { name: n, source })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(s) = &ev.socket_id
        && !is_socket_id(s)
    {
        return Err(ApiError::InvalidSocketId(s.clone()));
    }
    let info = parse_info(ev.info.as_deref(), &["user_count", "subscription_count"])?;
    Ok(ValidEvent { name, data, channels, socket_id: ev.socket_id, info })
}

/// `\d+\.\d+`, as the SDKs check it.
fn is_socket_id(s: &str) -> bool {
    let Some((a, b)) = s.split_once('.') else { return false };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
    digits(a) && digits(b)
}

fn parse_info(info: Option<&str>, allowed: &[&str]) -> Result<Vec<String>, ApiError> {
    let Some(info) = info.filter(|i| !i.is_empty()) else { return Ok(Vec::new()) };
    info.split(',')
        .map(|a| {
            let a = a.trim();
            if allowed.contains(&a) { Ok(a.to_owned()) } else { Err(ApiError::InvalidInfo(a.to_owned())) }
        })
        .collect()
}

/// Publishes a validated event; returns what its `info` result is about: its channels and the
/// attributes asked for (none: no `info`).
fn publish(hub: &Hub, app: &App, ev: ValidEvent) -> (Vec<ChannelName>, Vec<String>) {
    for channel in &ev.channels {
        crate::dashboard::tap::published(app, "http", channel.as_str(), &ev.name, &ev.data);
        let p = Publication::new(channel.clone(), ev.name.as_str(), PublicationData::Str(ev.data.as_str().into()))
            .excluding(ev.socket_id.as_deref());
        hub.publish(app, p);
    }
    (ev.channels, ev.info)
}

/// The `info` attributes of a channel just published to. Scaled out, the cluster's counts;
/// when Redis cannot say, this node's (the event is published: a 503 would make it sent again).
async fn channel_attrs(
    hub: &Hub,
    cluster: Option<&ClusterQueries>,
    app: &App,
    name: &str,
    info: &[String],
) -> Map<String, Value> {
    let summary = match summary(hub, cluster, app, name).await {
        Ok(s) => s,
        Err(_) => hub.channel(app, name),
    };
    let mut attrs = Map::new();
    for a in info {
        match a.as_str() {
            "subscription_count" => {
                attrs.insert(a.clone(), summary.as_ref().map_or(0, |s| s.subscription_count).into());
            }
            "user_count" if name.starts_with("presence-") => {
                attrs.insert(a.clone(), summary.as_ref().and_then(|s| s.user_count).unwrap_or(0).into());
            }
            _ => {}
        }
    }
    attrs
}

async fn publish_one(hub: &Hub, cluster: Option<&ClusterQueries>, app: &App, body: &[u8]) -> Result<Bytes, ApiError> {
    let ev: EventBody = serde_json::from_slice(body).map_err(ApiError::InvalidJson)?;
    let ev = validate(app, ev)?;
    // Refused (503) while the other nodes cannot be reached: nothing answered 200 is lost.
    hub.backend().available()?;
    charge(app, ev.channels.len())?;
    let (channels, info) = publish(hub, app, ev);
    if info.is_empty() {
        return Ok(Bytes::from_static(b"{}"));
    }
    let mut out = Map::new();
    for channel in &channels {
        let attrs = channel_attrs(hub, cluster, app, channel.as_str(), &info).await;
        out.insert(channel.as_str().to_owned(), Value::Object(attrs));
    }
    Ok(json!({ "channels": out }).to_string().into())
}

async fn publish_batch(hub: &Hub, cluster: Option<&ClusterQueries>, app: &App, body: &[u8]) -> Result<Bytes, ApiError> {
    let batch: BatchBody = serde_json::from_slice(body).map_err(ApiError::InvalidJson)?;
    let max = app.config.max_batch_events;
    if batch.batch.len() > max {
        return Err(ApiError::TooManyEvents { got: batch.batch.len(), max });
    }
    // Validate everything first: a batch is published whole or not at all.
    let events = batch.batch.into_iter().map(|e| validate(app, e)).collect::<Result<Vec<_>, _>>()?;
    hub.backend().available()?;
    charge(app, events.iter().map(|e| e.channels.len()).sum())?;
    let wants_info = events.iter().any(|e| !e.info.is_empty());
    let published: Vec<_> = events.into_iter().map(|e| publish(hub, app, e)).collect();
    if !wants_info {
        return Ok(Bytes::from_static(b"{}"));
    }
    let mut results = Vec::with_capacity(published.len());
    for (channels, info) in published {
        results.push(match channels.first() {
            Some(c) if !info.is_empty() => Value::Object(channel_attrs(hub, cluster, app, c.as_str(), &info).await),
            _ => json!({}),
        });
    }
    Ok(json!({ "batch": results }).to_string().into())
}

/// Redis could not answer a query: 503, the client may retry.
fn unavailable(e: QueryError) -> ApiError {
    tracing::warn!(error = %e, "API query refused");
    ApiError::Unavailable(Unavailable::LinkDown("redis"))
}

/// A channel across the cluster, as the hub summarises one on a single node.
fn cluster_summary(c: ChannelCounts) -> Option<ChannelSummary> {
    let name = ChannelName::parse(&c.name, usize::MAX).ok()?;
    let user_count = (name.kind().access == Access::Presence).then_some(c.user_count);
    Some(ChannelSummary { name, subscription_count: c.subscription_count, user_count })
}

/// Occupied channels starting with `prefix`: this node's, or the cluster's when scaled out.
async fn summaries(
    hub: &Hub,
    cluster: Option<&ClusterQueries>,
    app: &App,
    prefix: &str,
) -> Result<Vec<ChannelSummary>, ApiError> {
    match cluster {
        None => Ok(hub.channels(app, prefix)),
        Some(q) => Ok(q
            .channels(&app.config.id, prefix)
            .await
            .map_err(unavailable)?
            .into_iter()
            .filter_map(cluster_summary)
            .collect()),
    }
}

/// One channel's occupancy: this node's, or the cluster's when scaled out.
async fn summary(
    hub: &Hub,
    cluster: Option<&ClusterQueries>,
    app: &App,
    name: &str,
) -> Result<Option<ChannelSummary>, ApiError> {
    match cluster {
        None => Ok(hub.channel(app, name)),
        Some(q) => Ok(q.channel(&app.config.id, name).await.map_err(unavailable)?.and_then(cluster_summary)),
    }
}

async fn list_channels(
    hub: &Hub,
    cluster: Option<&ClusterQueries>,
    app: &App,
    params: &QueryParams,
) -> Result<Bytes, ApiError> {
    let prefix = params.get("filter_by_prefix").unwrap_or("");
    let info = parse_info(params.get("info"), &["user_count", "subscription_count"])?;
    if info.iter().any(|a| a == "user_count") && !prefix.starts_with("presence-") {
        return Err(ApiError::InvalidInfo("user_count (needs filter_by_prefix=presence-)".into()));
    }
    let mut channels = Map::new();
    for s in summaries(hub, cluster, app, prefix).await? {
        let mut attrs = Map::new();
        for a in &info {
            match a.as_str() {
                "user_count" => attrs.insert(a.clone(), s.user_count.unwrap_or(0).into()),
                _ => attrs.insert(a.clone(), s.subscription_count.into()),
            };
        }
        channels.insert(s.name.as_str().to_owned(), Value::Object(attrs));
    }
    Ok(json!({ "channels": channels }).to_string().into())
}

async fn channel_info(
    hub: &Hub,
    cluster: Option<&ClusterQueries>,
    app: &App,
    name: &str,
    params: &QueryParams,
) -> Result<Bytes, ApiError> {
    let channel = ChannelName::parse(name, app.config.max_channel_name_length)
        .map_err(|source| ApiError::InvalidChannel { name: name.to_owned(), source })?;
    let info = parse_info(params.get("info"), &["user_count", "subscription_count", "cache"])?;
    let kind = channel.kind();
    let summary = summary(hub, cluster, app, name).await?;
    let mut out = Map::new();
    out.insert("occupied".into(), summary.is_some().into());
    let mut seen = HashSet::new();
    for a in &info {
        if !seen.insert(a.as_str()) {
            continue;
        }
        match a.as_str() {
            "user_count" if kind.access == Access::Presence => {
                out.insert(a.clone(), summary.as_ref().and_then(|s| s.user_count).unwrap_or(0).into());
            }
            "subscription_count" => {
                out.insert(a.clone(), summary.as_ref().map_or(0, |s| s.subscription_count).into());
            }
            "cache" if kind.cache => {
                if let Some((p, ttl)) = hub.cached(app, name) {
                    let data = Value::String(p.pusher_data_text());
                    out.insert("cache".into(), json!({ "event": &*p.event, "data": data, "ttl": ttl.as_secs() }));
                }
            }
            other => return Err(ApiError::InvalidInfo(other.to_owned())),
        }
    }
    Ok(Value::Object(out).to_string().into())
}

async fn presence_users(hub: &Hub, cluster: Option<&ClusterQueries>, app: &App, name: &str) -> Result<Bytes, ApiError> {
    let channel = ChannelName::parse(name, app.config.max_channel_name_length)
        .map_err(|source| ApiError::InvalidChannel { name: name.to_owned(), source })?;
    if channel.kind().access != Access::Presence {
        return Err(ApiError::NotPresence(name.to_owned()));
    }
    let ids = match cluster {
        None => hub.presence_users(app, name),
        Some(q) => q.users(&app.config.id, name).await.map_err(unavailable)?,
    };
    let users: Vec<Value> = ids.into_iter().map(|id| json!({ "id": id })).collect();
    Ok(json!({ "users": users }).to_string().into())
}
