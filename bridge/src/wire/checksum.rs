//! The Internet checksum (RFC 1071): a one's complement sum of 16-bit words.
//!
//! `sum` adds big-endian words with the carries deferred (RFC 1071 §2 (D)), `fold`
//! adds them back in (the "end-around carry" of §1), and `checksum` is the complement
//! of the fold (§1 (2)). Sums of pieces that start at even offsets may be added before
//! folding (§2 (A)), which is how a checksum field is left out of its own sum.

/// Adds `data` as big-endian 16-bit words, an odd last byte padded with zero (RFC 1071 §1).
pub fn sum(data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    let mut acc: u64 = 0;
    for word in &mut chunks {
        acc += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    // Only inputs over 128 KiB get here; folding keeps the sum's value mod 0xffff.
    while acc > u64::from(u32::MAX) {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// Folds a 32-bit sum to 16 bits with end-around carry (RFC 1071 §1, §2 (D)).
pub fn fold(sum: u32) -> u16 {
    let mut acc = sum;
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Returns the Internet checksum of `data`: the complement of its folded sum (RFC 1071 §1 (2)).
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Returns the sum of `data` with the two bytes of its checksum `field` taken as zero.
pub fn sum_without(data: &[u8], field: std::ops::Range<usize>) -> u32 {
    sum(&data[..field.start]) + sum(&data[field.end..])
}

/// Returns whether `data`, its checksum in place, sums to 0xffff (RFC 1071 §1 (3)).
pub fn verifies(data: &[u8]) -> bool {
    fold(sum(data)) == 0xffff
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::fixtures::REQUEST_56;

    /// The numerical example of RFC 1071 §3.
    static RFC1071_EXAMPLE: [u8; 8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];

    #[test]
    fn rfc1071_example() {
        assert_eq!(sum(&RFC1071_EXAMPLE), 0x2_ddf0);
        assert_eq!(fold(0x2_ddf0), 0xddf2);
        assert_eq!(checksum(&RFC1071_EXAMPLE), 0x220d);
    }

    #[test]
    fn empty() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn odd_length_pads_last_byte() {
        assert_eq!(sum(&[0xab]), 0xab00);
        assert_eq!(sum(&[0x12, 0x34, 0xab]), 0x1234 + 0xab00);
        assert_eq!(checksum(&[0x12, 0x34, 0xab]), !(0x1234u16 + 0xab00));
    }

    #[test]
    fn fold_carries_twice() {
        // 0xffff + 0xffff = 0x1fffe folds to 0xffff (one carry);
        // 0xffff_ffff folds to 0x1fffe, then to 0xffff (two carries).
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(0xffff_ffff), 0xffff);
        assert_eq!(fold(0x1_0000), 0x0001);
    }

    #[test]
    fn carry_near_ffff() {
        // 0xfffe + 0x0001 sums to 0xffff exactly: no carry, checksum 0.
        assert_eq!(checksum(&[0xff, 0xfe, 0x00, 0x01]), 0x0000);
        // 0xffff + 0x0001 carries out once: 0x10000 folds to 0x0001.
        assert_eq!(checksum(&[0xff, 0xff, 0x00, 0x01]), 0xfffe);
        // All ones, many words: every addition carries.
        assert_eq!(checksum(&[0xff; 64]), 0x0000);
    }

    #[test]
    fn long_input_stays_congruent() {
        // 200 KiB of 0xff words overflows a plain u32 sum of exact words.
        let data = vec![0xff; 200 * 1024];
        assert_eq!(fold(sum(&data)), 0xffff);
        assert_eq!(checksum(&data), 0x0000);
    }

    #[test]
    fn captured_header_verifies() {
        // A header with its checksum field in place sums to 0xffff (RFC 1071 §1 (3)).
        assert_eq!(fold(sum(&REQUEST_56[..20])), 0xffff);
        assert_eq!(checksum(&REQUEST_56[..20]), 0);
    }

    #[test]
    fn sum_without_leaves_the_field_out() {
        let header = &REQUEST_56[..20];
        assert!(verifies(header));
        assert_eq!(!fold(sum_without(header, 10..12)), 0x20f9);
        assert!(!verifies(&REQUEST_56[..19]));
    }

    #[test]
    fn split_sums_add() {
        let (a, b) = REQUEST_56.split_at(20);
        assert_eq!(fold(sum(a) + sum(b)), fold(sum(&REQUEST_56)));
    }
}
