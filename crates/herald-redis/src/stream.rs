//! The Redis stream of an app, `{prefix}:{app_id}`: how an envelope is appended and trimmed to
//! the replay window, and how Redis' answers about it read. No I/O: the commands are built here
//! and sent by the publisher and the reader.

use std::time::Duration;

use redis::Value;

use crate::cursor::{EntryId, StreamInfo};

/// The one field of each entry: the envelope bytes.
pub(crate) const FIELD: &str = "e";

/// Entries kept per app stream whatever their age: the memory bound of the window (at a few
/// hundred bytes an envelope, tens of megabytes per app at most).
pub(crate) const MAX_ENTRIES: u64 = 100_000;

/// Replay window when the configuration names none.
pub const DEFAULT_REPLAY_WINDOW: Duration = Duration::from_secs(60);

/// Appends `envelope` to `key`, trimming entries beyond [`MAX_ENTRIES`]. `~` lets Redis trim
/// whole internal nodes only, which keeps `XADD` O(1).
pub(crate) fn xadd(pipe: &mut redis::Pipeline, key: &str, envelope: &[u8]) {
    pipe.cmd("XADD").arg(key).arg("MAXLEN").arg("~").arg(MAX_ENTRIES).arg("*").arg(FIELD).arg(envelope).ignore();
}

/// Trims the entries of `key` older than `window` before `now_ms` (Unix time in ms): once per
/// stream and batch, so the age bound costs one command per pipeline, not one per envelope.
/// Entry ids carry Redis' clock and `now_ms` this node's: the window is as exact as they agree.
pub(crate) fn xtrim(pipe: &mut redis::Pipeline, key: &str, now_ms: u64, window: Duration) {
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    let oldest = EntryId { ms: now_ms.saturating_sub(window_ms), seq: 0 };
    pipe.cmd("XTRIM").arg(key).arg("MINID").arg("~").arg(oldest.to_string()).ignore();
}

/// Reads `XINFO STREAM`'s answer (a flat field/value list in RESP2, a map in RESP3).
pub(crate) fn parse_info(value: &Value) -> Option<StreamInfo> {
    let mut last_generated = None;
    let mut length = None;
    let mut entries_added = None;
    let mut field = |name: &Value, v: &Value| match bytes(name) {
        Some(b"last-generated-id") => last_generated = bytes(v).and_then(EntryId::parse),
        Some(b"length") => length = int(v),
        Some(b"entries-added") => entries_added = int(v),
        _ => {}
    };
    match value {
        Value::Array(items) => items.chunks_exact(2).for_each(|kv| field(&kv[0], &kv[1])),
        Value::Map(pairs) => pairs.iter().for_each(|(k, v)| field(k, v)),
        _ => return None,
    }
    Some(StreamInfo { last_generated: last_generated?, length: length?, entries_added })
}

/// One entry read: its id, and its envelope when it has one.
pub(crate) type Entry = (EntryId, Option<Vec<u8>>);

/// Reads `XREAD`'s answer: per stream key, its entries in order. Nil (the block timed out) is
/// no entries; `None` is an answer of another shape.
pub(crate) fn parse_read(value: Value) -> Option<Vec<(Vec<u8>, Vec<Entry>)>> {
    let streams = match value {
        Value::Nil => return Some(Vec::new()),
        Value::Array(streams) => streams.into_iter().map(pair).collect::<Option<Vec<_>>>()?,
        Value::Map(pairs) => pairs,
        _ => return None,
    };
    streams
        .into_iter()
        .map(|(key, entries)| {
            let Value::BulkString(key) = key else { return None };
            let Value::Array(entries) = entries else { return None };
            let entries = entries.into_iter().map(entry).collect::<Option<Vec<_>>>()?;
            Some((key, entries))
        })
        .collect()
}

fn entry(value: Value) -> Option<Entry> {
    let (id, fields) = pair(value)?;
    let id = bytes(&id).and_then(EntryId::parse)?;
    // An entry some other writer added without our field is skipped, not fatal.
    let envelope = match fields {
        Value::Array(fields) => {
            let mut it = fields.into_iter();
            let mut found = None;
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                if bytes(&k) == Some(FIELD.as_bytes())
                    && let Value::BulkString(v) = v
                {
                    found = Some(v);
                    break;
                }
            }
            found
        }
        _ => None,
    };
    Some((id, envelope))
}

fn pair(value: Value) -> Option<(Value, Value)> {
    let Value::Array(items) = value else { return None };
    let mut it = items.into_iter();
    match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), None) => Some((a, b)),
        _ => None,
    }
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn int(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => std::str::from_utf8(bytes(other)?).ok()?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn stream_info_reads_from_redis_7_and_older() {
        let reply = Value::Array(vec![
            bulk("length"),
            Value::Int(5),
            bulk("last-generated-id"),
            bulk("120-0"),
            bulk("entries-added"),
            Value::Int(20),
            bulk("first-entry"),
            Value::Array(vec![bulk("116-0"), Value::Array(vec![bulk("e"), bulk("x")])]),
        ]);
        let info = parse_info(&reply).unwrap();
        assert_eq!(
            info,
            StreamInfo { last_generated: EntryId { ms: 120, seq: 0 }, length: 5, entries_added: Some(20) }
        );
        // Before 7.0 there is no count of entries ever added.
        let old = Value::Array(vec![bulk("length"), Value::Int(1), bulk("last-generated-id"), bulk("3-1")]);
        assert_eq!(parse_info(&old).unwrap().entries_added, None);
        assert_eq!(parse_info(&Value::Array(vec![bulk("length"), Value::Int(1)])), None);
    }

    #[test]
    fn read_replies_give_entries_per_stream_in_order() {
        let entry = |id: &str, fields: Vec<Value>| Value::Array(vec![bulk(id), Value::Array(fields)]);
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("p:1"),
            Value::Array(vec![entry("1-0", vec![bulk("e"), bulk("a")]), entry("1-1", vec![bulk("other"), bulk("b")])]),
        ])]);
        let read = parse_read(reply).unwrap();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].0, b"p:1");
        assert_eq!(
            read[0].1,
            vec![(EntryId { ms: 1, seq: 0 }, Some(b"a".to_vec())), (EntryId { ms: 1, seq: 1 }, None)]
        );
        assert_eq!(parse_read(Value::Nil).unwrap(), Vec::new());
        assert_eq!(parse_read(Value::Int(3)), None);
    }

    #[test]
    fn the_age_trim_names_the_oldest_id_kept() {
        let mut pipe = redis::pipe();
        xtrim(&mut pipe, "p:1", 100_000, Duration::from_secs(60));
        let packed = String::from_utf8(pipe.get_packed_pipeline()).unwrap();
        assert!(packed.contains("MINID") && packed.contains("40000-0"), "{packed}");
        let mut pipe = redis::pipe();
        xtrim(&mut pipe, "p:1", 5, Duration::from_secs(60));
        assert!(String::from_utf8(pipe.get_packed_pipeline()).unwrap().contains("\r\n0-0\r\n"));
    }
}
