//! JSON text written by hand, for the encoders of server messages (Pusher and WAMP alike).
//!
//! Server messages have fixed shapes, so writing the text directly needs no intermediate value
//! tree and cannot fail, which keeps every encoder infallible (it returns `Bytes`, not
//! `Result`). Nothing here validates structure: callers write well-formed JSON by construction.
//! Only string contents need escaping, and [`escaped`] is the one place that knows how; numbers
//! are formatted here too.

use bytes::Bytes;

/// How each byte below 0x20 is written inside a JSON string: the short escape where JSON has
/// one, `\u00XX` otherwise (lowercase hex, as serde_json writes it).
const CONTROL: [&str; 32] = [
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007", "\\b", "\\t", "\\n",
    "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015",
    "\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
];

/// Hands `s` to `emit` piece by piece as the contents of a JSON string (without the quotes):
/// runs of bytes that need no escape, and the escape of each byte that does.
pub(crate) fn escaped(s: &str, mut emit: impl FnMut(&str)) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x00..=0x1f => CONTROL[usize::from(b)],
            _ => continue,
        };
        // Escaped bytes are ASCII, so `i` is always a char boundary.
        emit(&s[start..i]);
        emit(escape);
        start = i + 1;
    }
    emit(&s[start..]);
}

/// Appends `s` as a quoted JSON string.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escaped(s, |piece| out.extend_from_slice(piece.as_bytes()));
    out.push(b'"');
}

/// Appends a non-negative integer in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0; 20]));
}

/// The decimal digits of `n`, written at the end of `digits` (20 bytes hold `u64::MAX`).
fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        // n % 10 < 10, so the cast cannot truncate.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[at..]
}

/// Appends a signed integer in decimal.
pub(crate) fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// Appends a float. JSON has no NaN or infinity; like serde_json, those become `null`.
pub(crate) fn push_f64(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        // `Debug` prints the shortest text that reads back to the same f64, always with a
        // fraction or exponent (`1.0`, `1e21`), and that text is valid JSON.
        out.extend_from_slice(format!("{f:?}").as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Growable JSON text with a chaining interface, for the Pusher encoders, whose `data` is often
/// JSON inside a JSON string: the inner text is built first and then written with
/// [`string`](Self::string), which needs it as `&str`.
pub(crate) struct JsonWriter {
    buf: String,
}

impl JsonWriter {
    /// An empty writer with room for `capacity` bytes.
    pub(crate) fn with_capacity(capacity: usize) -> JsonWriter {
        JsonWriter { buf: String::with_capacity(capacity) }
    }

    /// Appends JSON text as is (punctuation, keys, or an already valid JSON value).
    pub(crate) fn raw(&mut self, json: &str) -> &mut JsonWriter {
        self.buf.push_str(json);
        self
    }

    /// Appends `s` as a quoted JSON string.
    pub(crate) fn string(&mut self, s: &str) -> &mut JsonWriter {
        self.buf.push('"');
        escaped(s, |piece| self.buf.push_str(piece));
        self.buf.push('"');
        self
    }

    /// Appends an unsigned integer.
    pub(crate) fn uint(&mut self, n: u64) -> &mut JsonWriter {
        self.buf.extend(decimal(n, &mut [0; 20]).iter().map(|&d| char::from(d)));
        self
    }

    /// The text written so far.
    pub(crate) fn as_str(&self) -> &str {
        &self.buf
    }

    /// Length of the text written so far, in bytes.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Finishes the message.
    pub(crate) fn into_bytes(self) -> Bytes {
        Bytes::from(self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRINGS: [&str; 7] = [
        "",
        "plain",
        "quote\" back\\slash /",
        "nl\n cr\r tab\t \u{8}\u{c}",
        "\u{0}\u{b}\u{1f}\u{7f}",
        "é ☃ 😀 \u{2028}",
        "\u{1}a\u{1}",
    ];

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_escape_like_serde_json() {
        for s in STRINGS {
            let expected = serde_json::to_string(s).unwrap();
            assert_eq!(text(|o| push_str(o, s)), expected, "{s:?}");
            let mut w = JsonWriter::with_capacity(0);
            w.string(s);
            assert_eq!(w.as_str(), expected, "{s:?}");
        }
    }

    #[test]
    fn numbers_read_back_exactly() {
        for n in [0, 7, 10, 4302, 4_429_313_566, u64::MAX] {
            assert_eq!(text(|o| push_u64(o, n)), n.to_string());
            let mut w = JsonWriter::with_capacity(0);
            w.uint(n);
            assert_eq!(w.as_str(), n.to_string());
        }
        for n in [i64::MIN, -1, 0, 42] {
            assert_eq!(text(|o| push_i64(o, n)), n.to_string());
        }
        for f in [0.1, -0.0, 1.0, 1e21, 1e-7, f64::MAX] {
            let t = text(|o| push_f64(o, f));
            assert_eq!(serde_json::from_str::<f64>(&t).unwrap().to_bits(), f.to_bits(), "{t}");
        }
        assert_eq!(text(|o| push_f64(o, f64::NAN)), "null");
    }
}
