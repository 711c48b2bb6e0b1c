//! The bit layout of the RFC 6455 §5.2 frame header, shared by the decoder and the encoders.
//! Validation of what a peer sent lives in the decoder; this module only knows where bits sit.

/// First byte: this frame is the last fragment of its message.
pub(super) const FIN: u8 = 0x80;
/// First byte: RSV1..RSV3, meaningful only with a negotiated extension.
pub(super) const RSV: u8 = 0x70;
/// First byte: the opcode nibble.
pub(super) const OPCODE: u8 = 0x0F;
/// Second byte: a 4-byte masking key follows the length.
pub(super) const MASKED: u8 = 0x80;
/// Second byte: the 7-bit length, or one of the two markers below.
pub(super) const LEN7: u8 = 0x7F;
/// 7-bit length marker: the real length follows as a big-endian u16.
pub(super) const LEN_16: u8 = 126;
/// 7-bit length marker: the real length follows as a big-endian u64 (top bit clear).
pub(super) const LEN_64: u8 = 127;
/// Longest payload of a control frame, which also fits the 7-bit length (§5.5).
pub(super) const MAX_CONTROL_PAYLOAD: usize = 125;
/// Longest header of all: 64-bit length plus masking key.
pub(super) const MAX_HEAD: usize = 14;

/// Writes a header with FIN set into `dst` and returns how many bytes it used. The length uses
/// the minimal encoding that §5.2 requires of senders.
pub(super) fn write(dst: &mut [u8; MAX_HEAD], opcode_bits: u8, mask: Option<[u8; 4]>, payload_len: usize) -> usize {
    dst[0] = FIN | (opcode_bits & OPCODE);
    let mask_bit = if mask.is_some() { MASKED } else { 0 };
    // usize is at most 64 bits on every target Rust supports, so this never saturates.
    let len = u64::try_from(payload_len).unwrap_or(u64::MAX);
    let mut at = 2;
    if let Ok(short) = u8::try_from(len)
        && short < LEN_16
    {
        dst[1] = mask_bit | short;
    } else if let Ok(medium) = u16::try_from(len) {
        dst[1] = mask_bit | LEN_16;
        dst[2..4].copy_from_slice(&medium.to_be_bytes());
        at = 4;
    } else {
        dst[1] = mask_bit | LEN_64;
        dst[2..10].copy_from_slice(&len.to_be_bytes());
        at = 10;
    }
    if let Some(key) = mask {
        dst[at..at + 4].copy_from_slice(&key);
        at += 4;
    }
    at
}

/// Copies `N` bytes of `buf` starting at `at`, or `None` if they have not all arrived yet.
pub(super) fn array_at<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}
