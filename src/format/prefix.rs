//! The key prefix: `sk_live`, `pk_test`, `acme`.

use super::base62::is_prefix_char;
use crate::format::FormatError;

/// The longest prefix allowed, in characters.
pub const MAX_PREFIX_LEN: usize = 32;

/// A validated key prefix: one or more segments of `a-z` / `0-9`, joined by single `_`,
/// 1 to [`MAX_PREFIX_LEN`] characters in all.
///
/// ```
/// use keymint::Prefix;
///
/// let prefix: Prefix = "sk_live".parse()?;
/// assert_eq!(prefix.as_str(), "sk_live");
/// assert!("sk__live".parse::<Prefix>().is_err());
/// assert!("SK".parse::<Prefix>().is_err());
/// # Ok::<(), keymint::FormatError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix(Box<str>);

impl Prefix {
    /// Validates `prefix`.
    ///
    /// # Errors
    /// [`FormatError::InvalidPrefix`] when `prefix` is empty, longer than
    /// [`MAX_PREFIX_LEN`], has a character outside `a-z0-9_`, or has an empty segment
    /// (leading, trailing or doubled `_`).
    pub fn new(prefix: &str) -> Result<Self, FormatError> {
        if is_valid(prefix.as_bytes()) {
            Ok(Self(prefix.into()))
        } else {
            Err(FormatError::InvalidPrefix)
        }
    }
}

/// Whether `bytes` is a well-formed prefix. Linear, no allocation.
pub(crate) fn is_valid(bytes: &[u8]) -> bool {
    if bytes.is_empty() || bytes.len() > MAX_PREFIX_LEN {
        return false;
    }
    let mut previous_was_separator = true; // a leading `_` is an empty first segment
    for &b in bytes {
        if b == b'_' {
            if previous_was_separator {
                return false;
            }
            previous_was_separator = true;
        } else if is_prefix_char(b) {
            previous_was_separator = false;
        } else {
            return false;
        }
    }
    !previous_was_separator
}

text_newtype!(Prefix, parse = Prefix::new, error = FormatError);
quoted_debug!(Prefix);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_segments_of_lowercase_and_digits() {
        for ok in ["a", "sk", "sk_live", "a1_b2_c3", "0", &"x".repeat(32)] {
            assert!(Prefix::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        let too_long = "x".repeat(33);
        for bad in [
            "", "_", "_a", "a_", "a__b", "A", "sk-live", "sk live", "é", &too_long,
        ] {
            assert_eq!(Prefix::new(bad), Err(FormatError::InvalidPrefix), "{bad:?}");
        }
    }

    #[test]
    fn serde_validates() {
        let p: Prefix = serde_json::from_str("\"sk_live\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"sk_live\"");
        assert!(serde_json::from_str::<Prefix>("\"Bad\"").is_err());
    }
}
