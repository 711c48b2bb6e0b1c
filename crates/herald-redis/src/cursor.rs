//! Where the reader resumes an app's stream: the last entry it delivered, and what to make of the
//! stream it finds after (re)connecting.
//!
//! No I/O here, so every case is a unit test: a fresh node (start at the end, no history), a
//! reconnect within the window (resume after the last entry delivered), a reconnect after
//! entries it never read were trimmed (a gap: say so and carry on with what is left), and a Redis
//! that came back empty or older (its ids and counts are behind the cursor: start at its
//! beginning instead of waiting for ids that will never come).

use std::fmt;

/// A stream entry id, `{ms}-{seq}`. Redis orders entries by it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct EntryId {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl EntryId {
    /// Before every entry: reading after it reads the whole stream.
    pub(crate) const ZERO: EntryId = EntryId { ms: 0, seq: 0 };

    /// Parses `{ms}-{seq}` (Redis writes ids this way).
    pub(crate) fn parse(text: &[u8]) -> Option<EntryId> {
        let text = std::str::from_utf8(text).ok()?;
        let (ms, seq) = text.split_once('-')?;
        Some(EntryId { ms: ms.parse().ok()?, seq: seq.parse().ok()? })
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// What `XINFO STREAM` says of an existing stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StreamInfo {
    /// Id of the newest entry ever added (even if trimmed since).
    pub(crate) last_generated: EntryId,
    /// Entries present now.
    pub(crate) length: u64,
    /// Entries ever added (Redis 7.0 and later); with `length`, how many were trimmed.
    pub(crate) entries_added: Option<u64>,
}

impl StreamInfo {
    /// Entries trimmed from the head so far.
    fn trimmed(&self) -> Option<u64> {
        self.entries_added.map(|added| added.saturating_sub(self.length))
    }
}

/// The reader's position in one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// The last entry delivered (or skipped as its own); the next read starts after it.
    pub(crate) id: EntryId,
    /// How many entries the stream had ever been given up to `id`, when Redis says it: the
    /// count that tells a resume after trimmed entries from a plain resume.
    ordinal: Option<u64>,
}

/// What resuming found, for the log and the counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    /// First read of this stream: from its end.
    Fresh,
    /// Nothing was missed: reading goes on after the last entry delivered.
    Continue,
    /// Entries past the cursor were trimmed before this node read them (it was away longer
    /// than the window); `missed` of them are lost for it. Reading goes on with the oldest left.
    Gap { missed: u64 },
    /// The stream is gone or behind the cursor (Redis restarted without its data, or from an
    /// older copy): reading starts at its beginning.
    Reset,
}

impl Cursor {
    /// Where to read `info`'s stream (`None`: it does not exist) from, given the cursor
    /// `previous` (`None`: this node never read it).
    pub(crate) fn resume(previous: Option<Cursor>, info: Option<&StreamInfo>) -> (Cursor, Resume) {
        let start = |info: Option<&StreamInfo>| Cursor {
            id: EntryId::ZERO,
            ordinal: info.map_or(Some(0), StreamInfo::trimmed),
        };
        let Some(c) = previous else {
            // Only what is published from now on: history went to the clients of that time.
            let cursor = match info {
                Some(i) => Cursor { id: i.last_generated, ordinal: i.entries_added },
                None => start(None),
            };
            return (cursor, Resume::Fresh);
        };
        let Some(i) = info else {
            return if c.id == EntryId::ZERO { (c, Resume::Continue) } else { (start(None), Resume::Reset) };
        };
        let behind = i.last_generated < c.id || matches!((i.entries_added, c.ordinal), (Some(a), Some(o)) if a < o);
        if behind {
            return (start(Some(i)), Resume::Reset);
        }
        match (i.trimmed(), c.ordinal) {
            (Some(trimmed), Some(ordinal)) if trimmed > ordinal => {
                // Every entry left is newer than the cursor: reading after it reads them all.
                (Cursor { id: c.id, ordinal: Some(trimmed) }, Resume::Gap { missed: trimmed - ordinal })
            }
            _ => (c, Resume::Continue),
        }
    }

    /// The entry `id` was read: the next read starts after it.
    pub(crate) fn advance(&mut self, id: EntryId) {
        self.id = id;
        self.ordinal = self.ordinal.map(|o| o + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> EntryId {
        EntryId { ms, seq }
    }

    fn info(last: EntryId, length: u64, added: u64) -> StreamInfo {
        StreamInfo { last_generated: last, length, entries_added: Some(added) }
    }

    /// A cursor that read `n` entries of a fresh stream, the last one being `last`.
    fn read(n: u64, last: EntryId) -> Cursor {
        let (mut c, _) = Cursor::resume(None, None);
        for _ in 0..n {
            c.advance(last);
        }
        c
    }

    #[test]
    fn ids_parse_print_and_order() {
        assert_eq!(EntryId::parse(b"1700000000000-3"), Some(id(1_700_000_000_000, 3)));
        assert_eq!(id(5, 0).to_string(), "5-0");
        for bad in [&b""[..], b"12", b"a-1", b"1-", b"-1", b"1-2-3"] {
            assert_eq!(EntryId::parse(bad), None, "{bad:?}");
        }
        assert!(id(1, 9) < id(2, 0) && id(2, 0) < id(2, 1));
    }

    #[test]
    fn a_fresh_node_starts_at_the_end_of_the_stream() {
        let (c, r) = Cursor::resume(None, Some(&info(id(100, 4), 50, 80)));
        assert_eq!((c.id, r), (id(100, 4), Resume::Fresh));
        // Nothing there yet: every entry to come is read.
        let (c, r) = Cursor::resume(None, None);
        assert_eq!((c.id, r), (EntryId::ZERO, Resume::Fresh));
        // And a stream created later is not a reset.
        assert_eq!(Cursor::resume(Some(c), None).1, Resume::Continue);
    }

    #[test]
    fn a_reconnect_within_the_window_resumes_after_the_last_entry() {
        let (mut c, _) = Cursor::resume(None, Some(&info(id(100, 0), 10, 10)));
        c.advance(id(101, 0));
        c.advance(id(102, 0));
        // Published while away: 3 more; the oldest 2 (read long ago) trimmed meanwhile.
        let (after, r) = Cursor::resume(Some(c), Some(&info(id(105, 0), 13, 15)));
        assert_eq!((after, r), (c, Resume::Continue));
        // Exactly up to the cursor trimmed: still nothing missed.
        let (_, r) = Cursor::resume(Some(c), Some(&info(id(105, 0), 3, 15)));
        assert_eq!(r, Resume::Continue);
    }

    #[test]
    fn entries_trimmed_before_they_were_read_are_a_gap_counted_once() {
        let c = read(12, id(102, 0));
        // 20 added, 5 left: entries 13..=15 were trimmed unread.
        let (after, r) = Cursor::resume(Some(c), Some(&info(id(120, 0), 5, 20)));
        assert_eq!(r, Resume::Gap { missed: 3 });
        assert_eq!(after.id, id(102, 0), "the 5 left are all newer than the cursor: all read");
        // Having read those 5, a later reconnect finds nothing missed.
        let mut after = after;
        for ms in 116..=120 {
            after.advance(id(ms, 0));
        }
        assert_eq!(Cursor::resume(Some(after), Some(&info(id(120, 0), 5, 20))).1, Resume::Continue);
    }

    #[test]
    fn a_redis_restarted_empty_resets_the_cursor_instead_of_waiting() {
        let c = read(500, id(9_000, 0));
        // The stream is gone.
        let (after, r) = Cursor::resume(Some(c), None);
        assert_eq!((after.id, r), (EntryId::ZERO, Resume::Reset));
        // Or already recreated by another node with fewer entries (ids alone may look newer).
        let (after, r) = Cursor::resume(Some(c), Some(&info(id(9_500, 0), 3, 3)));
        assert_eq!((after.id, r), (EntryId::ZERO, Resume::Reset));
        // The new stream is then followed without reporting a gap.
        let mut after = after;
        after.advance(id(9_400, 0));
        assert_eq!(Cursor::resume(Some(after), Some(&info(id(9_500, 0), 3, 3))).1, Resume::Continue);
        // Ids behind the cursor (a clock set back) are a reset too.
        assert_eq!(Cursor::resume(Some(c), Some(&info(id(10, 0), 900, 900))).1, Resume::Reset);
    }

    #[test]
    fn a_reset_onto_a_trimmed_stream_counts_from_its_oldest_entry() {
        let c = read(500, id(9_000, 0));
        let (mut after, r) = Cursor::resume(Some(c), Some(&info(id(9_500, 0), 10, 40)));
        assert_eq!(r, Resume::Reset);
        for ms in 0..10 {
            after.advance(id(9_491 + ms, 0));
        }
        assert_eq!(Cursor::resume(Some(after), Some(&info(id(9_500, 0), 10, 40))).1, Resume::Continue);
    }

    #[test]
    fn without_entry_counts_only_resets_are_detected() {
        let old = |last| StreamInfo { last_generated: last, length: 1, entries_added: None };
        let (c, _) = Cursor::resume(None, Some(&old(id(100, 0))));
        assert_eq!(Cursor::resume(Some(c), Some(&old(id(200, 0)))).1, Resume::Continue);
        assert_eq!(Cursor::resume(Some(c), Some(&old(id(50, 0)))).1, Resume::Reset);
    }
}
