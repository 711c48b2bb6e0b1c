//! What a node makes of a message on a shard channel: `<previous id> <id> <envelope>`, where
//! the ids are the shard stream's entries (the script swaps them atomically with the append).
//!
//! The node keeps, per shard, the last entry it delivered. A message whose previous id is that
//! entry follows it: deliver. One whose id is not newer was read already (from the stream while
//! filling a gap): drop. Anything else means messages went by unseen (a reconnect, a full
//! queue): read the stream after the last entry delivered, then judge the message again. No I/O
//! here.

use crate::cursor::EntryId;

/// A shard channel message, parsed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Message<'a> {
    /// The shard's newest entry before this one (`0-0` for the first).
    pub(crate) prev: EntryId,
    /// This entry's id in the shard stream.
    pub(crate) id: EntryId,
    pub(crate) envelope: &'a [u8],
}

/// Parses a message; `None` for anything the script does not write.
pub(crate) fn parse(payload: &[u8]) -> Option<Message<'_>> {
    let (prev, rest) = split_space(payload)?;
    let (id, envelope) = split_space(rest)?;
    Some(Message { prev: EntryId::parse(prev)?, id: EntryId::parse(id)?, envelope })
}

fn split_space(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == b' ')?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// What to do with a message, given the last entry delivered on its shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// It follows the last entry delivered.
    Deliver,
    /// Delivered already.
    Duplicate,
    /// Entries between the last delivered and this one went by unseen: read the stream first.
    Fill,
}

pub(crate) fn step(last: EntryId, message: &Message<'_>) -> Step {
    if message.id <= last {
        Step::Duplicate
    } else if message.prev == last {
        Step::Deliver
    } else {
        Step::Fill
    }
}

/// After reading the stream past `last`: the message is delivered unless the read covered it
/// (then it is a duplicate). Entries the read could not return (trimmed) are lost either way.
pub(crate) fn after_fill(last: EntryId, message: &Message<'_>) -> Step {
    if message.id <= last { Step::Duplicate } else { Step::Deliver }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn id(ms: u64, seq: u64) -> EntryId {
        EntryId { ms, seq }
    }

    #[test]
    fn messages_carry_binary_envelopes() {
        let mut payload = b"10-0 11-3 ".to_vec();
        payload.extend_from_slice(&[0, b' ', 0xff, b'\n', b' ']);
        let m = parse(&payload).unwrap();
        assert_eq!((m.prev, m.id), (id(10, 0), id(11, 3)));
        assert_eq!(m.envelope, &[0, b' ', 0xff, b'\n', b' ']);
        // An empty envelope is still a message (the envelope decoder refuses it).
        assert_eq!(parse(b"0-0 1-0 ").unwrap().envelope, b"");
    }

    #[test]
    fn malformed_messages_are_refused_without_panicking() {
        for bad in [&b""[..], b" ", b"1-0", b"1-0 2-0", b"x 2-0 e", b"1-0 y e", b"1-0  e", b"-1-0 2-0 e"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        // Every prefix and some noise of a valid message: never a panic.
        let valid = b"1700000000000-0 1700000000001-12 \x00\x01envelope";
        for n in 0..valid.len() {
            let _ = parse(&valid[..n]);
        }
        for seed in 0u8..=255 {
            let noise: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(seed).wrapping_add(seed) % 64 + 32).collect();
            let _ = parse(&noise);
        }
    }

    #[test]
    fn a_message_after_the_last_delivered_is_delivered() {
        let m = Message { prev: id(5, 0), id: id(6, 0), envelope: b"" };
        assert_eq!(step(id(5, 0), &m), Step::Deliver);
        // The first entry of a shard: previous id 0-0, and a node that has seen nothing yet.
        let first = Message { prev: EntryId::ZERO, id: id(1, 0), envelope: b"" };
        assert_eq!(step(EntryId::ZERO, &first), Step::Deliver);
    }

    #[test]
    fn what_was_read_already_is_a_duplicate() {
        let m = Message { prev: id(5, 0), id: id(6, 0), envelope: b"" };
        assert_eq!(step(id(6, 0), &m), Step::Duplicate);
        assert_eq!(step(id(9, 0), &m), Step::Duplicate);
    }

    #[test]
    fn a_message_after_unseen_ones_asks_for_a_fill() {
        let m = Message { prev: id(8, 0), id: id(9, 0), envelope: b"" };
        assert_eq!(step(id(5, 0), &m), Step::Fill);
        // The fill read up to 8: now it follows.
        assert_eq!(after_fill(id(8, 0), &m), Step::Deliver);
        // The fill read it too.
        assert_eq!(after_fill(id(9, 0), &m), Step::Duplicate);
        // The fill found the entries before it trimmed: delivered anyway, the rest is lost.
        assert_eq!(after_fill(id(5, 0), &m), Step::Deliver);
    }
}
