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

/// Digit value of a base62 character, or `None`.
#[inline]
pub(crate) const fn digit(byte: u8) -> Option<u32> {
    match byte {
        b'0'..=b'9' => Some((byte - b'0') as u32),
        b'A'..=b'Z' => Some((byte - b'A') as u32 + 10),
        b'a'..=b'z' => Some((byte - b'a') as u32 + 36),
        _ => None,
    }
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
