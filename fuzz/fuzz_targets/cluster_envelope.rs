//! Fuzzes the node-to-node envelope decoder (`cluster::Envelope::decode`): what one herald node
//! reads from the bytes another one published to the shared broker.
//!
//! Beyond "no panic": another format version is refused only when the version byte says so, and
//! names the node of the preamble; what decodes encodes back to the same bytes (WAMP data: to
//! bytes that decode to the same envelope and encode identically again), so no field is lost or
//! misread on the way between nodes.
//!
//! Input layout: the envelope bytes as they arrive from Redis.
#![no_main]

use herald_protocol::cluster::envelope::{Data, PREAMBLE_LEN};
use herald_protocol::cluster::{Envelope, EnvelopeError, VERSION};
use libfuzzer_sys::fuzz_target;

/// Whether two envelopes agree on everything outside the payload.
fn same_fields(a: &Envelope<'_>, b: &Envelope<'_>) -> bool {
    (a.node, a.seq, a.id, a.wamp, a.channel.as_str(), a.event, a.exclude, a.user_id)
        == (b.node, b.seq, b.id, b.wamp, b.channel.as_str(), b.event, b.exclude, b.user_id)
        && a.filter == b.filter
        && a.publisher == b.publisher
}

fuzz_target!(|data: &[u8]| {
    let envelope = match Envelope::decode(data) {
        Ok(e) => e,
        Err(EnvelopeError::Version { version, node }) => {
            assert_ne!(version, VERSION, "this node's own version refused");
            assert_eq!(version, data[0]);
            let mut preamble_node = [0; 8];
            preamble_node.copy_from_slice(&data[1..PREAMBLE_LEN]);
            assert_eq!(node, u64::from_le_bytes(preamble_node), "the refusal names another node");
            return;
        }
        Err(_) => return,
    };
    assert_eq!(data[0], VERSION);
    let encoded = envelope.encode();
    if !matches!(envelope.data, Data::Wamp { .. }) {
        assert_eq!(encoded, data, "decoded and encoded again, the bytes changed");
        return;
    }
    // MessagePack has several encodings of one value; the encoder writes one of them.
    let again = match Envelope::decode(&encoded) {
        Ok(e) => e,
        Err(e) => panic!("an envelope this node encoded is refused: {e}"),
    };
    assert!(same_fields(&again, &envelope), "{envelope:?} came back as {again:?}");
    assert_eq!(again.encode(), encoded, "encoding is not stable");
});
