//! The payload every published event carries: a marker, the phase it belongs to and its send
//! time, padded to the requested size.
//!
//! The format is plain ASCII (`hb1:<phase>:<sent_us>:xxxx…`) so it survives unchanged inside a
//! Pusher `data` string and a WAMP argument list alike, needs no JSON escaping, and can be found
//! in a delivered frame with one substring search, whatever order the server writes its JSON
//! fields in.

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// What starts every stamp.
pub const MARKER: &str = "hb1:";

/// The marker searcher, built once.
static FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(MARKER.as_bytes()));

/// The facts a delivered payload carries back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// The step phase the publish belonged to (warm-up and measurement are distinct phases).
    pub phase: u32,
    /// When the publisher sent it, in [`crate::clock::now_us`] microseconds.
    pub sent_us: u64,
}

/// Builds the payload for one publish, `size` bytes long (or just the stamp when `size` is
/// smaller than it).
pub fn stamp(phase: u32, sent_us: u64, size: usize) -> String {
    let mut s = format!("{MARKER}{phase}:{sent_us}:");
    if s.len() < size {
        s.extend(std::iter::repeat_n('x', size - s.len()));
    }
    s
}

/// Finds and parses the stamp in a delivered frame's payload; `None` when it carries none
/// (protocol chatter) or the stamp is cut short.
pub fn find(frame: &[u8]) -> Option<Stamp> {
    let at = FINDER.find(frame)?;
    let rest = frame.get(at + MARKER.len()..)?;
    let (phase, rest) = parse_field(rest)?;
    let (sent_us, _) = parse_field(rest)?;
    Some(Stamp { phase: u32::try_from(phase).ok()?, sent_us })
}

/// Parses decimal digits up to a `:` and returns the value and what follows the colon.
fn parse_field(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let end = bytes.iter().position(|&b| b == b':')?;
    if end == 0 || end > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in &bytes[..end] {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
    }
    Some((v, &bytes[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_inside_pusher_json() {
        let data = stamp(3, 1_234_567, 100);
        assert_eq!(data.len(), 100);
        let frame = format!(r#"{{"channel":"bench","event":"bench","data":"{data}"}}"#);
        assert_eq!(find(frame.as_bytes()), Some(Stamp { phase: 3, sent_us: 1_234_567 }));
    }

    #[test]
    fn short_size_keeps_the_whole_stamp() {
        assert_eq!(stamp(0, 9, 1), "hb1:0:9:");
    }

    #[test]
    fn chatter_and_cut_stamps_are_not_deliveries() {
        assert_eq!(find(br#"{"event":"pusher:ping","data":{}}"#), None);
        assert_eq!(find(b"hb1:2:"), None);
        assert_eq!(find(b"hb1:a:5:"), None);
    }
}
