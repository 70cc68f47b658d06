//! Errors of the key format. No error carries key material: parse errors hold positions
//! and lengths only.

use thiserror::Error;

/// A key format or one of its parts could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The prefix is empty, longer than 32 characters, or not `a-z0-9` segments joined by
    /// single `_`.
    #[error("invalid prefix: expected 1 to 32 characters of a-z/0-9 segments joined by single '_'")]
    InvalidPrefix,
    /// An id length outside `MIN_ID_LEN..=MAX_ID_LEN`.
    #[error("id length {0} is outside the allowed 8..=32")]
    IdLength(usize),
    /// A secret length outside `MIN_SECRET_LEN..=MAX_SECRET_LEN`.
    #[error("secret length {0} is outside the allowed 22..=64")]
    SecretLength(usize),
    /// A key id that is not 8 to 32 base62 characters.
    #[error("invalid key id: expected 8 to 32 base62 characters")]
    InvalidId,
}

/// Why a presented string is not a well-formed key. Checked without I/O, in the order of
/// the variants below; rejection does not allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The string is empty.
    #[error("key is empty")]
    Empty,
    /// The string is longer than any key of the expected format; it was not read.
    #[error("key is too long: {len} bytes, at most {max} expected")]
    TooLong {
        /// Length of the presented string, in bytes.
        len: usize,
        /// Longest length accepted.
        max: usize,
    },
    /// A byte that is neither base62 nor `_`.
    #[error("invalid character at byte {position}")]
    InvalidCharacter {
        /// Byte offset of the first offending byte.
        position: usize,
    },
    /// Fewer than two `_` separators.
    #[error("missing '_' separators between prefix, id and secret")]
    MissingSeparator,
    /// The prefix part is not well-formed.
    #[error("invalid prefix")]
    InvalidPrefix,
    /// A well-formed prefix that is not the expected one.
    #[error("unknown prefix")]
    PrefixMismatch,
    /// The id part has the wrong length.
    #[error("id has {found} characters, expected {min}..={max}")]
    IdLength {
        /// Characters found.
        found: usize,
        /// Fewest accepted.
        min: usize,
        /// Most accepted.
        max: usize,
    },
    /// The secret part has the wrong length.
    #[error("secret has {found} characters, expected {min}..={max}")]
    SecretLength {
        /// Characters found.
        found: usize,
        /// Fewest accepted.
        min: usize,
        /// Most accepted.
        max: usize,
    },
    /// The checksum does not match: a typo, a truncated key or random text.
    #[error("checksum mismatch")]
    ChecksumMismatch,
}
