//! Base62 in the alphabet order the key format fixes: `0-9`, then `A-Z`, then `a-z`.

/// The 62 characters, in digit-value order.
pub(crate) const ALPHABET: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Bytes of a character class table: bit 0 = base62, bit 1 = prefix character (a-z, 0-9).
const BASE62: u8 = 1;
const PREFIX: u8 = 2;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        #[allow(clippy::cast_possible_truncation)] // i < 256
        let c = i as u8;
        let mut class = 0;
        if c.is_ascii_alphanumeric() {
            class |= BASE62;
        }
        if c.is_ascii_digit() || c.is_ascii_lowercase() {
            class |= PREFIX;
        }
        table[i] = class;
        i += 1;
    }
    table
};

/// Whether `byte` is one of the 62 key characters.
#[inline]
pub(crate) const fn is_base62(byte: u8) -> bool {
    CLASSES[byte as usize] & BASE62 != 0
}

/// Whether `byte` may appear in a prefix segment (`a-z`, `0-9`).
#[inline]
pub(crate) const fn is_prefix_char(byte: u8) -> bool {
    CLASSES[byte as usize] & PREFIX != 0
}

/// Digit values by byte; [`NOT_A_DIGIT`] for bytes outside the alphabet.
const DIGITS: [u8; 256] = {
    let mut table = [NOT_A_DIGIT; 256];
    let mut value = 0;
    while value < ALPHABET.len() {
        #[allow(clippy::cast_possible_truncation)] // value < 62
        let digit = value as u8;
        table[ALPHABET[value] as usize] = digit;
        value += 1;
    }
    table
};

/// The [`DIGITS`] entry of a byte outside the alphabet. Its high bit is set (every digit
/// value is below 64), so one OR over several lookups tells whether all were digits.
pub(crate) const NOT_A_DIGIT: u8 = 0xFF;

/// Digit value of a base62 character, or `None`.
#[cfg(test)]
pub(crate) const fn digit(byte: u8) -> Option<u32> {
    match DIGITS[byte as usize] {
        NOT_A_DIGIT => None,
        value => Some(value as u32),
    }
}

/// Digit value of a base62 character, or [`NOT_A_DIGIT`]: branch-free, for hot loops.
#[inline]
pub(crate) const fn digit_or_invalid(byte: u8) -> u8 {
    DIGITS[byte as usize]
}

/// Position of the first byte that is not a key character (base62 or `_`), if any.
///
/// Sixteen bytes at a time: each block is checked by a branch-free fold over range
/// comparisons on a fixed-size array, which the compiler turns into a few vector compares,
/// and only a block that fails is searched byte by byte. A short last block is checked as
/// the (overlapping) last sixteen bytes. Valid keys cost a few cycles per block, and garbage
/// stops at its first bad block.
#[inline]
pub(crate) fn find_non_key_char(bytes: &[u8]) -> Option<usize> {
    let first_bad_in = |start: usize| {
        bytes[start..]
            .iter()
            .position(|&b| !is_key_char(b))
            .map(|i| start + i)
    };
    let mut blocks = bytes.chunks_exact(16);
    let mut start = 0;
    for block in &mut blocks {
        if !block_is_key_chars(block) {
            return first_bad_in(start);
        }
        start += 16;
    }
    let tail_ok = match bytes.last_chunk::<16>() {
        Some(last) if start > 0 => block_is_key_chars(last),
        _ => blocks.remainder().iter().all(|&b| is_key_char(b)),
    };
    if tail_ok { None } else { first_bad_in(start) }
}

#[inline]
fn block_is_key_chars(block: &[u8]) -> bool {
    let mut bad = false;
    for &b in block {
        let ok = b.wrapping_sub(b'0') < 10
            || b.wrapping_sub(b'A') < 26
            || b.wrapping_sub(b'a') < 26
            || b == b'_';
        bad |= !ok;
    }
    !bad
}

/// Whether `byte` is a key character: base62 or `_`.
#[inline]
pub(crate) const fn is_key_char(byte: u8) -> bool {
    is_base62(byte) || byte == b'_'
}

/// Fills `out` with characters drawn uniformly from the alphabet, using operating-system
/// randomness.
///
/// Uniformity comes from rejection sampling: a random byte is used only when it is below
/// 248 (= 4 * 62), so `byte % 62` has no bias; the other 8 of 256 values are discarded.
pub(crate) fn fill_random(out: &mut [u8]) -> Result<(), getrandom::Error> {
    const ACCEPT_BELOW: u8 = 248;
    let mut pool = zeroize::Zeroizing::new([0u8; 64]);
    let mut filled = 0;
    while filled < out.len() {
        getrandom::fill(&mut pool[..])?;
        for &byte in pool.iter() {
            if byte < ACCEPT_BELOW {
                out[filled] = ALPHABET[usize::from(byte % 62)];
                filled += 1;
                if filled == out.len() {
                    break;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_order_matches_digit_values() {
        for (value, &c) in ALPHABET.iter().enumerate() {
            assert_eq!(digit(c).map(|d| d as usize), Some(value));
            assert!(is_base62(c));
        }
        assert_eq!(digit(b'_'), None);
        assert!(!is_base62(b'_'));
        assert!(!is_base62(0xC3));
    }

    #[test]
    fn fast_paths_agree_with_the_plain_definitions() {
        for byte in 0..=u8::MAX {
            let expected = byte.is_ascii_alphanumeric() || byte == b'_';
            assert_eq!(is_key_char(byte), expected, "{byte}");
            let position = find_non_key_char(&[b'a', byte, b'Z']);
            assert_eq!(position, (!expected).then_some(1), "{byte}");
            let value = digit_or_invalid(byte);
            assert_eq!(
                value == NOT_A_DIGIT,
                !byte.is_ascii_alphanumeric(),
                "{byte}"
            );
            assert!(value < 62 || value == NOT_A_DIGIT);
        }
        assert_eq!(find_non_key_char(b""), None);
        for at in 0..40 {
            let mut text = vec![b'x'; 40];
            assert_eq!(find_non_key_char(&text), None);
            text[at] = b'-';
            text[39] = b'!';
            assert_eq!(find_non_key_char(&text), Some(at));
        }
    }

    #[test]
    fn random_characters_cover_the_alphabet_roughly_uniformly() {
        let mut buf = vec![0u8; 62 * 400];
        fill_random(&mut buf).unwrap();
        let mut counts = [0u32; 62];
        for &c in &buf {
            counts[digit(c).unwrap() as usize] += 1;
        }
        // Expected 400 each; a biased or broken sampler (e.g. modulo of 256) would push
        // some characters far outside this band.
        for (i, &n) in counts.iter().enumerate() {
            assert!((250..=560).contains(&n), "character {i} drawn {n} times");
        }
    }
}
