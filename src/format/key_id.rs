//! The public key id: the lookup handle stored in clear.

use super::base62::is_base62;
use crate::format::FormatError;

/// Shortest id a format may use.
pub const MIN_ID_LEN: usize = 8;
/// Longest id a format may use.
pub const MAX_ID_LEN: usize = 32;
/// Id length of [`KeyFormat::new`](crate::KeyFormat::new).
pub const DEFAULT_ID_LEN: usize = 12;

/// The public part of a key that names its record: [`MIN_ID_LEN`] to [`MAX_ID_LEN`]
/// base62 characters. Not a secret; safe to log and to store in clear.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Box<str>);

impl KeyId {
    /// Validates `id`.
    ///
    /// # Errors
    /// [`FormatError::InvalidId`] when `id` has a non-base62 character or a length outside
    /// `MIN_ID_LEN..=MAX_ID_LEN`.
    pub fn new(id: &str) -> Result<Self, FormatError> {
        if (MIN_ID_LEN..=MAX_ID_LEN).contains(&id.len()) && id.bytes().all(is_base62) {
            Ok(Self(id.into()))
        } else {
            Err(FormatError::InvalidId)
        }
    }

    /// For ids the parser or generator has already checked.
    pub(crate) fn from_checked(id: &str) -> Self {
        debug_assert!(Self::new(id).is_ok());
        Self(id.into())
    }
}

text_newtype!(KeyId, parse = KeyId::new, error = FormatError);
quoted_debug!(KeyId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_length_and_alphabet() {
        assert!(KeyId::new("AbC123xyZ789").is_ok());
        assert!(KeyId::new(&"a".repeat(MIN_ID_LEN)).is_ok());
        assert!(KeyId::new(&"a".repeat(MAX_ID_LEN)).is_ok());
        assert!(KeyId::new(&"a".repeat(MIN_ID_LEN - 1)).is_err());
        assert!(KeyId::new(&"a".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(KeyId::new("AbC123xyZ78_").is_err());
        assert!(serde_json::from_str::<KeyId>("\"short\"").is_err());
    }
}
