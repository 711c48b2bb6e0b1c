//! Envelopes Redis acknowledged just before the link was lost, kept to append again if the Redis
//! that comes back is a new instance without them.
//!
//! An unpersisted Redis that dies right after acknowledging an entry may not have handed it to
//! every reader yet; the entry dies with it, and the publisher, which saw the acknowledgement,
//! would never send it again. Appending those of the last moments again to the new instance is
//! cheap, and readers drop the copies they had already delivered (per-node sequence numbers).
//! No I/O here: the publisher tells it when Redis acknowledged what and when the link was lost.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// An encoded envelope and the app stream it goes to.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    /// The app stream.
    pub(crate) stream: Arc<str>,
    /// The envelope, without a position.
    pub(crate) bytes: Vec<u8>,
    /// Set when Redis sequences the publication (a channel with history).
    pub(crate) sequenced: Option<Sequenced>,
}

/// What the sequencing script needs besides the envelope.
#[derive(Clone, Debug)]
pub(crate) struct Sequenced {
    /// The channel's name.
    pub(crate) channel: Box<str>,
    /// The envelope's sequence number on this node (the script takes each once).
    pub(crate) seq: u64,
    pub(crate) policy: herald_core::app::HistoryPolicy,
}

/// Envelopes remembered at most (a few pipelines' worth).
const KEEP: usize = 4_096;
/// How long before the newest acknowledgement an envelope may still be unread by another node:
/// the readers follow the streams within milliseconds, this is margin. Measured from the newest
/// acknowledgement, not from when the loss is noticed: an idle publisher notices it late.
const UNREAD_FOR: Duration = Duration::from_secs(1);

/// The envelopes of the last moments, with when Redis acknowledged them.
#[derive(Debug, Default)]
pub(crate) struct Acked {
    entries: VecDeque<(Instant, Outgoing)>,
    /// The link was lost since the last look at the Redis instance.
    lost: bool,
}

impl Acked {
    /// Redis acknowledged `batch` at `now`.
    pub(crate) fn acked(&mut self, now: Instant, batch: impl IntoIterator<Item = Outgoing>) {
        self.entries.extend(batch.into_iter().map(|o| (now, o)));
        let excess = self.entries.len().saturating_sub(KEEP);
        self.entries.drain(..excess);
        // Older than the margin is never needed again.
        while self.entries.front().is_some_and(|(t, _)| now.duration_since(*t) > UNREAD_FOR) {
            self.entries.pop_front();
        }
    }

    /// The link was lost.
    pub(crate) fn lost(&mut self) {
        self.lost = true;
    }

    /// The link is back on the same Redis: nothing to append again.
    pub(crate) fn same_instance(&mut self) {
        self.lost = false;
    }

    /// The link is back on a new Redis instance: the envelopes acknowledged within
    /// [`UNREAD_FOR`] of the last acknowledgement, oldest first, to append before anything newer.
    pub(crate) fn restarted(&mut self) -> Vec<Outgoing> {
        if !std::mem::take(&mut self.lost) {
            return Vec::new();
        }
        self.entries.drain(..).map(|(_, o)| o).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(n: u8) -> Outgoing {
        Outgoing { stream: Arc::from("p:1"), bytes: vec![n], sequenced: None }
    }

    fn bytes(v: &[Outgoing]) -> Vec<u8> {
        v.iter().map(|o| o.bytes[0]).collect()
    }

    #[test]
    fn the_last_moments_before_the_loss_are_appended_again_in_order() {
        let t0 = Instant::now();
        let mut acked = Acked::default();
        acked.acked(t0, [out(1), out(2)]);
        acked.acked(t0 + Duration::from_millis(1_500), [out(3)]);
        acked.acked(t0 + Duration::from_millis(1_600), [out(4)]);
        // Noticed long after (an idle publisher notices at its next ping or publication).
        acked.lost();
        // 1 and 2 were acknowledged more than a second before the last one: read long since.
        assert_eq!(bytes(&acked.restarted()), [3, 4]);
        // Once only.
        assert!(acked.restarted().is_empty());
    }

    #[test]
    fn the_same_redis_gets_nothing_again() {
        let t0 = Instant::now();
        let mut acked = Acked::default();
        acked.acked(t0, [out(1)]);
        acked.lost();
        acked.same_instance();
        assert!(acked.restarted().is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut acked = Acked::default();
        for n in 0..(KEEP + 10) {
            acked.acked(t0, [out((n % 256) as u8)]);
        }
        acked.lost();
        assert_eq!(acked.restarted().len(), KEEP);
    }
}
