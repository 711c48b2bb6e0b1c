//! Incremental UTF-8 validation for text messages that arrive in pieces (RFC 6455 §8.1).
//!
//! A code point may be split across frames or reads, so the validator carries the unfinished
//! code point between calls. It fails as soon as the bytes seen so far cannot begin any valid
//! UTF-8 text (for example `ED A0`, a surrogate, is rejected at its second byte), which is the
//! fail-fast behaviour Autobahn cases 6.4.x check.

/// Progress through a UTF-8 stream: how many continuation bytes the current code point still
/// needs, and the range the next one must fall in (Unicode Table 3-7: only the first
/// continuation byte has a narrowed range).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Utf8Validator {
    /// Continuation bytes still missing from the current code point; 0 between code points.
    need: u8,
    /// Smallest allowed value of the next continuation byte.
    lo: u8,
    /// Largest allowed value of the next continuation byte.
    hi: u8,
}

/// The range of every continuation byte after the first.
const CONT_LO: u8 = 0x80;
const CONT_HI: u8 = 0xBF;

impl Utf8Validator {
    /// A validator at the start of a message.
    pub(super) const fn new() -> Self {
        Self { need: 0, lo: CONT_LO, hi: CONT_HI }
    }

    /// Whether everything fed so far ends on a code point boundary, as a finished message must.
    pub(super) const fn is_complete(&self) -> bool {
        self.need == 0
    }

    /// Feeds the next bytes of the stream. Returns `false` once the stream can no longer be
    /// valid UTF-8, whatever follows.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> bool {
        let Some(rest) = self.finish_code_point(bytes) else {
            return false;
        };
        // The bulk of a text message is validated by std, which has an ASCII fast path; only a
        // code point cut off at the end of `rest` goes through the byte-wise state machine.
        match std::str::from_utf8(rest) {
            Ok(_) => true,
            Err(e) if e.error_len().is_some() => false,
            Err(e) => rest.get(e.valid_up_to()..).and_then(|tail| self.finish_code_point_after_lead(tail)).is_some(),
        }
    }

    /// Consumes the continuation bytes of a code point left open by the previous call; returns
    /// what follows it, or `None` if a byte is out of range.
    fn finish_code_point<'a>(&mut self, mut bytes: &'a [u8]) -> Option<&'a [u8]> {
        while self.need > 0 {
            let Some((&b, rest)) = bytes.split_first() else {
                return Some(bytes);
            };
            if b < self.lo || b > self.hi {
                return None;
            }
            self.need -= 1;
            self.lo = CONT_LO;
            self.hi = CONT_HI;
            bytes = rest;
        }
        Some(bytes)
    }

    /// Starts a code point from the lead byte of `tail` and consumes what follows of it.
    /// `tail` is a truncated code point at the end of the input (at most three bytes).
    fn finish_code_point_after_lead(&mut self, tail: &[u8]) -> Option<()> {
        let (&lead, rest) = tail.split_first()?;
        let (need, lo, hi) = match lead {
            0xC2..=0xDF => (1, CONT_LO, CONT_HI),
            // Excludes overlong three-byte forms.
            0xE0 => (2, 0xA0, CONT_HI),
            // Excludes the surrogates U+D800..U+DFFF.
            0xED => (2, CONT_LO, 0x9F),
            0xE1..=0xEF => (2, CONT_LO, CONT_HI),
            // Excludes overlong four-byte forms.
            0xF0 => (3, 0x90, CONT_HI),
            0xF1..=0xF3 => (3, CONT_LO, CONT_HI),
            // Excludes code points above U+10FFFF.
            0xF4 => (3, CONT_LO, 0x8F),
            _ => return None,
        };
        *self = Self { need, lo, hi };
        let after = self.finish_code_point(rest)?;
        // std said the tail was only truncated, so nothing may follow the code point.
        after.is_empty().then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Validator;

    /// A tiny xorshift generator: deterministic, no dependency.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// Byte strings biased towards the edges of the UTF-8 tables.
    fn interesting(state: &mut u64, len: usize) -> Vec<u8> {
        const PICKS: &[u8] = &[
            b'a', 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF,
            0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF,
        ];
        (0..len).map(|_| PICKS[(next(state) % PICKS.len() as u64) as usize]).collect()
    }

    #[test]
    fn agrees_with_std_on_every_prefix_fed_byte_by_byte() {
        let mut seed = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let len = (next(&mut seed) % 9) as usize;
            let input = interesting(&mut seed, len);
            let mut v = Utf8Validator::new();
            for end in 1..=input.len() {
                let alive = v.feed(&input[end - 1..end]);
                let std_verdict = std::str::from_utf8(&input[..end]);
                // Alive exactly when std sees valid text or a merely truncated code point.
                let std_alive = std_verdict.map_or_else(|e| e.error_len().is_none(), |_| true);
                assert_eq!(alive, std_alive, "{:02x?}", &input[..end]);
                if !alive {
                    break;
                }
                assert_eq!(v.is_complete(), std_verdict.is_ok(), "{:02x?}", &input[..end]);
            }
        }
    }

    #[test]
    fn agrees_with_std_when_split_anywhere() {
        let mut seed = 42;
        for _ in 0..20_000 {
            let len = (next(&mut seed) % 12) as usize;
            let input = interesting(&mut seed, len);
            let cut = (next(&mut seed) as usize) % (input.len() + 1);
            let mut v = Utf8Validator::new();
            let ok = v.feed(&input[..cut]) && v.feed(&input[cut..]) && v.is_complete();
            assert_eq!(ok, std::str::from_utf8(&input).is_ok(), "{input:02x?} cut {cut}");
        }
    }

    #[test]
    fn fails_fast_on_a_surrogate_at_its_second_byte() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"ok \xED"));
        assert!(!v.feed(b"\xA0"));
    }
}
