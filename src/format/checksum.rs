//! The 6-character checksum: CRC-32/ISO-HDLC of `prefix "_" id "_" secret`, in base62.

use super::base62;

/// Number of base62 characters in a checksum.
pub(crate) const CHECKSUM_LEN: usize = 6;

/// CRC-32/ISO-HDLC (the zlib/PNG CRC) of `body`.
#[inline]
pub(crate) fn crc32(body: &[u8]) -> u32 {
    crc32fast::hash(body)
}

/// The checksum characters for `body`, most significant digit first, left-padded with `0`.
pub(crate) fn encode(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut value = crc32(body);
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = base62::ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// Decodes six checksum characters to the value they stand for, or `None` when there are
/// not exactly six or a character is not base62. 62^6 > 2^32, so a value above `u32::MAX` never matches any CRC.
#[inline]
pub(crate) fn decode(chars: &[u8]) -> Option<u64> {
    let &[a, b, c, d, e, f] = chars else {
        return None;
    };
    let digits = [a, b, c, d, e, f].map(base62::digit_or_invalid);
    // Digit values are below 64; only `NOT_A_DIGIT` has the high bit.
    if digits.iter().fold(0, |acc, &v| acc | v) & 0x80 != 0 {
        return None;
    }
    // Two independent halves of three digits shorten the multiply chain.
    let half = |h: &[u8]| (u64::from(h[0]) * 62 + u64::from(h[1])) * 62 + u64::from(h[2]);
    Some(half(&digits[..3]) * 62u64.pow(3) + half(&digits[3..]))
}

/// Whether `checksum` is the checksum of `body`.
#[inline]
pub(crate) fn matches(body: &[u8], checksum: &[u8]) -> bool {
    checksum.len() == CHECKSUM_LEN && decode(checksum) == Some(u64::from(crc32(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_the_zlib_crc32() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn encoding_is_msd_first_and_zero_padded() {
        // Reference values computed independently (Python zlib.crc32 + base62).
        assert_eq!(&encode(b"123456789"), b"3jZRME");
        assert_eq!(decode(b"3jZRME"), Some(0xCBF4_3926));
        assert_eq!(
            &encode(b"sk_live_AbC123xyZ789_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            b"1j4R67"
        );
        // CRC of the empty input is 0: six zeros.
        assert_eq!(&encode(b""), b"000000");
    }

    #[test]
    fn six_digits_always_suffice() {
        assert_eq!(decode(b"zzzzzz"), Some(62u64.pow(6) - 1));
        assert!(62u64.pow(6) > u64::from(u32::MAX));
        assert_eq!(
            decode(&encode(&[0xFF; 3])).map(|v| v <= u64::from(u32::MAX)),
            Some(true)
        );
    }
}
