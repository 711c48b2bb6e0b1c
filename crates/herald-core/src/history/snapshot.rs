//! Histories saved across a restart: a versioned JSON document written during a drain and read
//! by the next process before it serves recovering subscribers.
//!
//! Taking a snapshot also seals the histories it took: they leave the hub, so a publication
//! the old process delivers afterwards starts a fresh epoch there, which the next process does
//! not know (its clients' recoveries fail rather than skip it silently).
//! Held times travel as ages at the time of writing, so entries expire as if nothing happened.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::pusher::channel_name::ChannelName;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::ChannelHistory;
use crate::Hub;
use crate::app::history::policy_for;
use crate::publication::{Origin, Position, Publication, PublicationData};

/// The format's version; a file of another version is refused.
pub const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Document {
    version: u32,
    /// Milliseconds since the Unix epoch when it was written.
    written_at_ms: u64,
    apps: Vec<AppEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AppEntry {
    app: String,
    channels: Vec<ChannelEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ChannelEntry {
    channel: String,
    epoch: String,
    serial: u64,
    entries: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    serial: u64,
    /// How long it had been held when the snapshot was written.
    age_ms: u64,
    event: String,
    /// The payload as Pusher `data` text: a string (`json = false`) or raw JSON.
    data: String,
    json: bool,
    /// Published over WAMP (WAMP receivers get no Pusher event name added).
    wamp: bool,
    user_id: Option<String>,
}

/// Why a snapshot was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Not a snapshot document.
    #[error("not a history snapshot: {0}")]
    Parse(#[from] serde_json::Error),
    /// Written by another version of the format.
    #[error("history snapshot version {0}, expected {VERSION}")]
    Version(u32),
}

/// What a load restored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Channels whose history was restored.
    pub channels: usize,
    /// Publications restored.
    pub publications: usize,
}

/// Takes every history of `hub` out of it into a snapshot document (see the module's doc on
/// sealing). `now_ms`: the wall clock, in milliseconds since the Unix epoch.
pub fn take(hub: &Hub, now_ms: u64) -> Vec<u8> {
    let now = Instant::now();
    let mut apps = Vec::new();
    for app in hub.apps().iter() {
        let mut channels = Vec::new();
        hub.take_histories(app, |name, h| {
            let (epoch, serial) = h.position();
            let entries = h
                .entries()
                .map(|(serial, at, p)| {
                    let (data, json) = match &p.data {
                        PublicationData::Str(s) => (s.to_string(), false),
                        other => (other.json_text().into_owned(), true),
                    };
                    Entry {
                        serial,
                        age_ms: u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX),
                        event: p.event.to_string(),
                        data,
                        json,
                        wamp: p.origin == Origin::Wamp,
                        user_id: p.user_id.as_deref().map(str::to_owned),
                    }
                })
                .collect();
            channels.push(ChannelEntry {
                channel: name.as_str().to_owned(),
                epoch: epoch.to_string(),
                serial,
                entries,
            });
        });
        if !channels.is_empty() {
            apps.push(AppEntry { app: app.config.id.clone(), channels });
        }
    }
    serde_json::to_vec(&Document { version: VERSION, written_at_ms: now_ms, apps }).unwrap_or_default()
}

/// Loads a snapshot into `hub`: channels of apps and patterns it still has, entries not yet
/// expired, within the memory budget.
///
/// # Errors
/// [`SnapshotError`] for a document that is not a snapshot of this version.
pub fn restore(hub: &Hub, bytes: &[u8], now_ms: u64) -> Result<Restored, SnapshotError> {
    let doc: Document = serde_json::from_slice(bytes)?;
    if doc.version != VERSION {
        return Err(SnapshotError::Version(doc.version));
    }
    let since_written = Duration::from_millis(now_ms.saturating_sub(doc.written_at_ms));
    let now = Instant::now();
    let mut restored = Restored::default();
    for entry in doc.apps {
        let Some(app) = hub.app_by_id(&entry.app) else { continue };
        for ch in entry.channels {
            let Ok(name) = ChannelName::parse(&ch.channel, usize::MAX) else { continue };
            let Some(policy) = policy_for(&app.config.history, name.as_str()) else { continue };
            if ch.epoch.is_empty() || ch.epoch.len() > 64 {
                continue;
            }
            let epoch: Arc<str> = ch.epoch.into();
            let mut history = ChannelHistory::resumed(policy, Arc::clone(&epoch), ch.serial, now);
            for e in ch.entries {
                if hub.history_budget().over() || e.serial > ch.serial {
                    break;
                }
                let age = since_written + Duration::from_millis(e.age_ms);
                let Some(at) = now.checked_sub(age).filter(|_| age < policy.max_age) else { continue };
                let data = if e.json {
                    match serde_json::value::RawValue::from_string(e.data) {
                        Ok(raw) => PublicationData::Json(raw),
                        Err(_) => continue,
                    }
                } else {
                    PublicationData::Str(e.data.into())
                };
                let mut p = Publication::new(name.clone(), e.event, data).with_user_id(e.user_id);
                if e.wamp {
                    p = p.from_wamp();
                }
                let _ = p.set_position(Position { epoch: Arc::clone(&epoch), serial: e.serial });
                history.restore(Arc::new(p), e.serial, at, hub.history_budget());
                restored.publications += 1;
            }
            hub.restore_history(&app, name, history);
            restored.channels += 1;
        }
    }
    Ok(restored)
}
