//! JSON tokens written straight into a byte buffer, for the WAMP encoders.
//!
//! Server messages have fixed shapes, so writing the text directly needs no intermediate value
//! tree and cannot fail, which keeps every encoder infallible (it returns `Bytes`, not
//! `Result`). Only string contents need escaping; numbers are formatted here.

/// Appends `s` as a quoted JSON string.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                push_control(out, b);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Control characters without a short escape become `\u00XX`.
fn push_control(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u00");
    out.push(HEX[usize::from(b >> 4)]);
    out.push(HEX[usize::from(b & 0xf)]);
}

/// Appends a non-negative integer in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
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
    out.extend_from_slice(&digits[at..]);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_escape_like_serde_json() {
        for s in [
            "",
            "plain",
            "q\"b\\s/",
            "\n\r\t\u{8}\u{c}",
            "\u{0}\u{1f}\u{7f}",
            "é😀",
        ] {
            let ours = text(|o| push_str(o, s));
            assert_eq!(ours, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn numbers_read_back_exactly() {
        for n in [0, 7, 10, 4_429_313_566, u64::MAX] {
            assert_eq!(text(|o| push_u64(o, n)), n.to_string());
        }
        for n in [i64::MIN, -1, 0, 42] {
            assert_eq!(text(|o| push_i64(o, n)), n.to_string());
        }
        for f in [0.1, -0.0, 1.0, 1e21, 1e-7, f64::MAX] {
            let t = text(|o| push_f64(o, f));
            assert_eq!(
                serde_json::from_str::<f64>(&t).unwrap().to_bits(),
                f.to_bits(),
                "{t}"
            );
        }
        assert_eq!(text(|o| push_f64(o, f64::NAN)), "null");
    }
}
