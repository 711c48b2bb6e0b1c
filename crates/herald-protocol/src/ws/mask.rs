//! XOR masking of frame payloads (RFC 6455 §5.3), eight bytes at a time without `unsafe`.

/// XORs `data` in place with `key`, where `data` starts `phase` bytes into the masked payload
/// (so a payload can be unmasked piece by piece as it arrives). Masking and unmasking are the
/// same operation.
pub(super) fn apply(data: &mut [u8], key: [u8; 4], phase: usize) {
    let shift = phase % 4;
    let rotated = [key[shift], key[(shift + 1) % 4], key[(shift + 2) % 4], key[(shift + 3) % 4]];
    let (words, tail) = data.as_chunks_mut::<8>();
    // Native byte order on both sides of the XOR keeps lane i of the word paired with
    // rotated[i % 4], whatever the target's endianness.
    let wide = u64::from_ne_bytes([
        rotated[0], rotated[1], rotated[2], rotated[3], rotated[0], rotated[1], rotated[2], rotated[3],
    ]);
    for word in words {
        *word = (u64::from_ne_bytes(*word) ^ wide).to_ne_bytes();
    }
    // Eight is a multiple of four, so the tail starts at the same key offset as `data` did.
    for (byte, k) in tail.iter_mut().zip(rotated.iter().cycle()) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::apply;

    #[test]
    fn matches_bytewise_xor_for_every_length_and_phase() {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..40 {
            for phase in 0..8 {
                let original: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut fast = original.clone();
                apply(&mut fast, key, phase);
                let slow: Vec<u8> = original.iter().enumerate().map(|(i, b)| b ^ key[(phase + i) % 4]).collect();
                assert_eq!(fast, slow, "len {len} phase {phase}");
            }
        }
    }

    #[test]
    fn unmasking_in_pieces_equals_unmasking_at_once() {
        let key = [1, 2, 3, 4];
        let original: Vec<u8> = (0..=255).collect();
        let mut whole = original.clone();
        apply(&mut whole, key, 0);
        for cut in 0..original.len() {
            let mut pieces = original.clone();
            let (a, b) = pieces.split_at_mut(cut);
            apply(a, key, 0);
            apply(b, key, cut);
            assert_eq!(pieces, whole, "cut at {cut}");
        }
    }
}
