//! What an envelope arriving from Redis becomes: a publication to deliver, or a reason not to.
//!
//! No I/O here, so every case is a unit test: this node's own envelopes, a batch resent after a
//! lost connection, envelopes of another format version (a rolling upgrade on a shared prefix)
//! and damaged bytes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use herald_core::Publication;
use herald_protocol::cluster::{Envelope, EnvelopeError};

use crate::publication;

/// Distinct publishing nodes remembered, for duplicates and for foreign versions already
/// reported, before that memory is reset.
const MAX_PEERS: usize = 4_096;

/// The receiving side's memory of the other nodes.
#[derive(Debug)]
pub(crate) struct Inbound {
    /// This node's id: its own envelopes come back from Redis too.
    node: u64,
    /// Highest sequence number delivered, per publishing node.
    last_seq: HashMap<u64, u64>,
    /// (node, format version) pairs of another version already reported.
    foreign: HashSet<(u64, u8)>,
}

/// What to do with one envelope.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Deliver it to the local hub (shared, as the hub takes it).
    Deliver(Arc<Publication>),
    /// Written by this node, which delivered it locally already (not positioned).
    Own,
    /// Already delivered (a batch the sender resent).
    Duplicate,
    /// Written in another format version: never delivered.
    Foreign {
        /// [`EnvelopeError::Version`], naming the version and the node.
        error: EnvelopeError,
        /// Whether this is the first envelope of this node and version (log it once).
        first: bool,
    },
    /// Damaged or malformed: not delivered.
    Malformed(EnvelopeError),
}

impl Inbound {
    pub(crate) fn new(node: u64) -> Inbound {
        Inbound { node, last_seq: HashMap::new(), foreign: HashSet::new() }
    }

    /// Judges the envelope `bytes`.
    pub(crate) fn receive(&mut self, bytes: &[u8]) -> Verdict {
        let envelope = match Envelope::decode(bytes) {
            Ok(e) => e,
            Err(error @ EnvelopeError::Version { version, node }) => {
                if self.foreign.len() >= MAX_PEERS {
                    self.foreign.clear();
                }
                let first = self.foreign.insert((node, version));
                return Verdict::Foreign { error, first };
            }
            Err(error) => return Verdict::Malformed(error),
        };
        // A positioned envelope was sequenced by Redis: no node delivered it before reading it
        // back, the one that published it included, so it is delivered here once like any other.
        if envelope.node == self.node && envelope.position.is_none() {
            return Verdict::Own;
        }
        if self.last_seq.len() >= MAX_PEERS && !self.last_seq.contains_key(&envelope.node) {
            // Restarted nodes leave stale entries; forgetting them all risks one duplicate at most.
            self.last_seq.clear();
        }
        let last = self.last_seq.entry(envelope.node).or_insert(0);
        if envelope.seq <= *last {
            return Verdict::Duplicate;
        }
        *last = envelope.seq;
        Verdict::Deliver(Arc::new(publication::decode(envelope)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use herald_core::PublicationData;
    use herald_protocol::cluster::VERSION;
    use herald_protocol::pusher::channel_name::ChannelName;

    use super::*;

    const ME: u64 = 1;
    const PEER: u64 = 2;

    fn envelope(node: u64, seq: u64, data: &str) -> Vec<u8> {
        let channel = ChannelName::topic("news", 200).unwrap();
        publication::encode(node, seq, &Publication::new(channel, "ev", PublicationData::Str(data.into())))
    }

    fn delivered(v: Verdict) -> String {
        match v {
            Verdict::Deliver(p) => match &p.data {
                PublicationData::Str(s) => s.to_string(),
                other => panic!("{other:?}"),
            },
            other => panic!("not delivered: {other:?}"),
        }
    }

    #[test]
    fn peers_are_delivered_in_order_and_resends_dropped() {
        let mut inbound = Inbound::new(ME);
        assert_eq!(delivered(inbound.receive(&envelope(PEER, 1, "a"))), "a");
        assert_eq!(delivered(inbound.receive(&envelope(PEER, 2, "b"))), "b");
        // The batch of 1 and 2 resent after a lost connection, then the next one.
        assert!(matches!(inbound.receive(&envelope(PEER, 1, "a")), Verdict::Duplicate));
        assert!(matches!(inbound.receive(&envelope(PEER, 2, "b")), Verdict::Duplicate));
        assert_eq!(delivered(inbound.receive(&envelope(PEER, 3, "c"))), "c");
        // Another node counts on its own.
        assert_eq!(delivered(inbound.receive(&envelope(PEER + 1, 1, "x"))), "x");
    }

    #[test]
    fn own_envelopes_are_not_delivered_again() {
        let mut inbound = Inbound::new(ME);
        assert!(matches!(inbound.receive(&envelope(ME, 1, "a")), Verdict::Own));
    }

    #[test]
    fn own_positioned_envelopes_are_delivered_once() {
        let positioned = |seq: u64, serial: u64| {
            let channel = ChannelName::topic("news", 200).unwrap();
            let p = Publication::new(channel, "ev", PublicationData::Str("h".into()));
            p.set_position(herald_core::Position { epoch: "e1".into(), serial }).unwrap();
            publication::encode(ME, seq, &p)
        };
        let mut inbound = Inbound::new(ME);
        assert!(matches!(inbound.receive(&envelope(ME, 1, "a")), Verdict::Own));
        match inbound.receive(&positioned(2, 1)) {
            Verdict::Deliver(p) => assert_eq!(p.position().map(|p| p.serial), Some(1)),
            other => panic!("{other:?}"),
        }
        // Resent after a lost reply: dropped; the next one goes through.
        assert!(matches!(inbound.receive(&positioned(2, 1)), Verdict::Duplicate));
        assert!(matches!(inbound.receive(&envelope(ME, 3, "b")), Verdict::Own));
        assert!(matches!(inbound.receive(&positioned(4, 2)), Verdict::Deliver(_)));
    }

    #[test]
    fn another_version_is_refused_and_reported_once_per_node_and_version() {
        let mut inbound = Inbound::new(ME);
        let foreign = |node, version| {
            let mut bytes = envelope(node, 1, "old");
            bytes[0] = version;
            bytes
        };
        let old = VERSION - 1;
        let mut firsts = Vec::new();
        for (node, version) in [(PEER, old), (PEER, old), (PEER, VERSION + 1), (PEER + 1, old), (PEER, old)] {
            match inbound.receive(&foreign(node, version)) {
                Verdict::Foreign { error: EnvelopeError::Version { version: v, node: n }, first } => {
                    assert_eq!((n, v), (node, version));
                    firsts.push(first);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(firsts, [true, false, true, true, false]);
        // The refusals did not touch the duplicate memory: the peer's first envelope of this
        // version is delivered.
        assert_eq!(delivered(inbound.receive(&envelope(PEER, 1, "new"))), "new");
    }

    #[test]
    fn damaged_bytes_are_refused() {
        let mut inbound = Inbound::new(ME);
        let bytes = envelope(PEER, 1, "a");
        assert!(matches!(inbound.receive(&bytes[..bytes.len() - 1]), Verdict::Malformed(EnvelopeError::Truncated)));
        assert!(matches!(inbound.receive(b""), Verdict::Malformed(EnvelopeError::Truncated)));
        // Refused bytes do not count as seen.
        assert_eq!(delivered(inbound.receive(&bytes)), "a");
    }
}
