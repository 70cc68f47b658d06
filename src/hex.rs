//! Lowercase hexadecimal: how the crate writes digests and random ids as text (the audit
//! chain's hashes, derived tokens' ids, the hash of a reported leaked token).

use std::fmt::Write as _;

/// `bytes` as lowercase hexadecimal, two digits a byte.
pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::lower_hex;

    #[test]
    fn two_lowercase_digits_a_byte() {
        assert_eq!(lower_hex(&[]), "");
        assert_eq!(lower_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
