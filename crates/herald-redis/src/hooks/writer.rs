//! The writer task: appends the cluster's webhook events to their app's stream in pipelined
//! batches, keeping a failed batch to append again after reconnecting. An entry may then be
//! appended twice: webhooks are delivered at least once, as Pusher's are.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{MAX_ENTRIES, Written};
use crate::commands::{Commands, Connector};
use crate::connect::{BACKOFF_MIN, FLUSH_GRACE, back_off};

/// Most entries appended in one pipeline.
const BATCH: usize = 256;

/// Appends what the sink queues until `stop`, then what is left within [`FLUSH_GRACE`].
pub(crate) async fn run(connector: Connector, mut rx: mpsc::Receiver<Written>, stop: CancellationToken) {
    let mut conn: Option<Commands> = None;
    let mut pending: Vec<Written> = Vec::new();
    let mut backoff = BACKOFF_MIN;
    loop {
        if pending.is_empty() {
            tokio::select! {
                got = rx.recv_many(&mut pending, BATCH) => if got == 0 { return },
                () = stop.cancelled() => break,
            }
        }
        if conn.is_none() {
            match connector.connect().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::debug!(error = %e, "webhooks: redis unreachable; keeping {} events", pending.len());
                    if back_off(&mut backoff, &stop).await {
                        continue;
                    }
                    break;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match append(c, &pending).await {
            Ok(()) => {
                pending.clear();
                backoff = BACKOFF_MIN;
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: appending to redis failed; retrying");
                conn = None;
            }
        }
    }
    // Stopping: one bounded try for what is queued, so a rolling restart keeps its events.
    rx.close();
    while let Ok(w) = rx.try_recv() {
        pending.push(w);
    }
    if pending.is_empty() {
        return;
    }
    let flush = async {
        let mut c = connector.connect().await.ok()?;
        append(&mut c, &pending).await.ok()
    };
    if tokio::time::timeout(FLUSH_GRACE, flush).await.ok().flatten().is_none() {
        tracing::warn!(events = pending.len(), "webhooks: events not handed to redis before stopping");
    }
}

async fn append(conn: &mut Commands, batch: &[Written]) -> redis::RedisResult<()> {
    if !conn.is_cluster() {
        return pipeline(batch.iter()).query_async(conn).await;
    }
    // A cluster pipeline stays within one slot: one per app stream, in the batch's order per app.
    let mut streams: Vec<&str> = batch.iter().map(|w| &*w.key).collect();
    streams.dedup();
    let mut done: Vec<&str> = Vec::new();
    for key in streams {
        if done.contains(&key) {
            continue;
        }
        done.push(key);
        pipeline(batch.iter().filter(|w| *w.key == *key)).query_async::<()>(conn).await?;
    }
    Ok(())
}

fn pipeline<'a>(batch: impl Iterator<Item = &'a Written>) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for w in batch {
        pipe.cmd("XADD").arg(&*w.key).arg("MAXLEN").arg("~").arg(MAX_ENTRIES).arg("*").arg("e").arg(&w.entry).ignore();
    }
    pipe
}
