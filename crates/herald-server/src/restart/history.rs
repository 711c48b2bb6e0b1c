//! Channel history across a restart (`[history] snapshot_file`): saved during the drain, before
//! clients are told to reconnect, and loaded by the next process before it serves them.
//!
//! The file is written atomically (a temporary file renamed over it) and removed once loaded,
//! so a later start never replays an old one. A file that is too large, of another version or
//! not a snapshot is refused with a log line; herald starts without it.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_core::Hub;
use herald_core::history::snapshot;

/// How often a successor looks for its predecessor's snapshot.
const POLL: Duration = Duration::from_millis(20);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Largest snapshot accepted for a history budget of `max_bytes`: the held payloads, escaped,
/// with room for the document's own fields.
fn max_file_bytes(max_bytes: usize) -> u64 {
    (max_bytes as u64).saturating_mul(3).saturating_add(1 << 20)
}

/// Takes the hub's histories into `path` (the drain calls this before the goodbyes).
pub fn save(hub: &Hub, path: &Path) {
    let bytes = snapshot::take(hub, now_ms());
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    match std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path)) {
        Ok(()) => tracing::info!(path = %path.display(), bytes = bytes.len(), "history snapshot written"),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(path = %path.display(), error = %e, "cannot write the history snapshot; history is lost");
        }
    }
}

/// Waits until the predecessor `pid`, asked to drain at `asked_at`, has written its snapshot to
/// `path` or is gone, for at most `bound`.
pub async fn await_predecessor(path: &Path, pid: i32, asked_at: SystemTime, bound: Duration) {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let fresh = std::fs::metadata(path).and_then(|m| m.modified()).is_ok_and(|t| t >= asked_at);
        if fresh || !super::is_herald(pid) {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(pid, "the previous herald wrote no history snapshot in time; starting without it");
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Loads the snapshot at `path` into `hub`, if there is one, and removes the file.
pub fn load(hub: &Hub, path: &Path, max_bytes: usize) {
    let Ok(meta) = std::fs::metadata(path) else { return };
    let limit = max_file_bytes(max_bytes);
    let result = if meta.len() > limit {
        Err(format!("{} bytes, more than the {limit} accepted for [history] max_bytes", meta.len()))
    } else {
        std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| snapshot::restore(hub, &bytes, now_ms()).map_err(|e| e.to_string()))
    };
    match result {
        Ok(r) => tracing::info!(
            path = %path.display(),
            channels = r.channels,
            publications = r.publications,
            "history snapshot loaded"
        ),
        Err(problem) => tracing::warn!(path = %path.display(), %problem, "history snapshot refused"),
    }
    // Loaded or refused, it must not be read again by a later start.
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the history snapshot");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use herald_core::app::HistoryConfig;
    use herald_core::{AppConfig, AppRegistry, LocalBackend, OutboxLimits, Publication, PublicationData};
    use herald_protocol::pusher::channel_name::ChannelName;

    use super::*;

    fn hub() -> Hub {
        let history = vec![HistoryConfig { channels: "*".into(), ..HistoryConfig::default() }];
        let cfg = AppConfig { id: "a".into(), key: "k".into(), secret: "s".into(), history, ..AppConfig::default() };
        Hub::new(AppRegistry::new(vec![cfg]).expect("app"), Arc::new(LocalBackend), OutboxLimits::default())
    }

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("herald-history-{}-{name}", std::process::id()))
    }

    #[tokio::test]
    async fn saved_then_loaded_once() {
        let (old, new) = (hub(), hub());
        let app = old.app_by_id("a").expect("app");
        let ch = ChannelName::parse("c", 200).expect("name");
        old.publish(&app, Publication::new(ch, "ev", PublicationData::Str("x".into())));
        let path = temp("saved");
        save(&old, &path);
        load(&new, &path, 1 << 20);
        assert_eq!(new.history_totals().channels, 1);
        assert!(!path.exists(), "removed once loaded");
    }

    #[tokio::test]
    async fn corrupt_and_oversized_files_are_refused_without_a_crash() {
        let new = hub();
        let path = temp("corrupt");
        std::fs::write(&path, b"{not json").expect("write");
        load(&new, &path, 1 << 20);
        assert_eq!(new.history_totals().channels, 0);
        assert!(!path.exists());
        std::fs::write(&path, vec![b' '; (max_file_bytes(1024) + 1) as usize]).expect("write");
        load(&new, &path, 1024);
        assert!(!path.exists());
    }
}
