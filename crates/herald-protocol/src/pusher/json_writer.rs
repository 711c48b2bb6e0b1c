//! A minimal append-only JSON text builder for server frames.
//!
//! Server frames have fixed shapes, so writing them by hand is both simpler and faster than going
//! through serde. Nothing here validates structure: callers write well-formed JSON by
//! construction, and only string contents are escaped.

use bytes::Bytes;

/// Growable JSON text.
pub(super) struct JsonWriter {
    buf: String,
}

impl JsonWriter {
    /// An empty writer with room for `capacity` bytes.
    pub(super) fn with_capacity(capacity: usize) -> JsonWriter {
        JsonWriter {
            buf: String::with_capacity(capacity),
        }
    }

    /// Appends JSON text as is (punctuation, keys, or an already valid JSON value).
    pub(super) fn raw(&mut self, json: &str) -> &mut JsonWriter {
        self.buf.push_str(json);
        self
    }

    /// Appends `s` as a quoted JSON string.
    pub(super) fn string(&mut self, s: &str) -> &mut JsonWriter {
        self.buf.push('"');
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0x00..=0x1f => "",
                _ => continue,
            };
            // Escaped bytes are ASCII, so `i` is always a char boundary.
            self.buf.push_str(&s[start..i]);
            if escape.is_empty() {
                self.buf.push_str("\\u00");
                self.buf.push(char::from(HEX[usize::from(b >> 4)]));
                self.buf.push(char::from(HEX[usize::from(b & 0xf)]));
            } else {
                self.buf.push_str(escape);
            }
            start = i + 1;
        }
        self.buf.push_str(&s[start..]);
        self.buf.push('"');
        self
    }

    /// Appends an unsigned integer.
    pub(super) fn uint(&mut self, n: u64) -> &mut JsonWriter {
        let mut digits = [0u8; 20];
        let mut pos = digits.len();
        let mut rest = n;
        loop {
            pos -= 1;
            digits[pos] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        for &d in &digits[pos..] {
            self.buf.push(char::from(d));
        }
        self
    }

    /// The text written so far.
    pub(super) fn as_str(&self) -> &str {
        &self.buf
    }

    /// Length of the text written so far, in bytes.
    pub(super) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Finishes the frame.
    pub(super) fn into_bytes(self) -> Bytes {
        Bytes::from(self.buf)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::JsonWriter;

    #[test]
    fn escapes_match_serde_json() {
        for s in [
            "",
            "plain",
            "quote\" back\\slash",
            "nl\n cr\r tab\t \u{8}\u{c}",
            "\u{0}\u{1f}\u{7f}",
            "é ☃ 😀 \u{2028}",
        ] {
            let mut w = JsonWriter::with_capacity(0);
            w.string(s);
            let back: String = serde_json::from_str(w.as_str()).unwrap_or_default();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn writes_integers() {
        for n in [0, 7, 10, 4302, u64::MAX] {
            let mut w = JsonWriter::with_capacity(0);
            w.uint(n);
            assert_eq!(w.as_str(), n.to_string());
        }
    }
}
