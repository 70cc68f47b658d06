//! Key format v1: `prefix "_" id "_" secret checksum`.
//!
//! The format is a contract that other tools parse, so it is specified exactly in the
//! crate's design notes and pinned by tests: base62 in the order `0-9A-Za-z`, ids and
//! secrets drawn uniformly by rejection sampling from the operating system's CSPRNG, and a
//! 6-character base62 CRC-32/ISO-HDLC checksum over everything before it.

mod base62;
mod checksum;
mod error;
mod generated;
mod hint;
mod key_id;
mod parse;
mod prefix;
mod scan;

use zeroize::Zeroizing;

pub use error::{FormatError, ParseError};
pub use generated::GeneratedKey;
pub use hint::KeyHint;
pub use key_id::{DEFAULT_ID_LEN, KeyId, MAX_ID_LEN, MIN_ID_LEN};
pub use parse::{
    DEFAULT_SECRET_LEN, MAX_KEY_LEN, MAX_SECRET_LEN, MIN_SECRET_LEN, ParsedKey, parse_key,
};
pub use prefix::{MAX_PREFIX_LEN, Prefix};
pub use scan::{Finding, GENERIC_REGEX, Scanner};

pub(crate) use checksum::CHECKSUM_LEN;
pub(crate) use parse::parse_bounded;

use crate::random::RngError;

/// The shape of one family of keys: a prefix and the lengths of the id and secret.
///
/// ```
/// use keymint::KeyFormat;
///
/// let format = KeyFormat::new("sk_live")?;
/// let key = format.generate()?;
/// let parsed = format.parse(key.expose_secret())?;
/// assert_eq!(parsed.id(), key.id().as_str());
/// assert_eq!(key.expose_secret().len(), format.key_len()); // 8 + 12 + 1 + 32 + 6
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyFormat {
    prefix: Prefix,
    id_len: usize,
    secret_len: usize,
}

impl KeyFormat {
    /// A format with `prefix` and the default lengths ([`DEFAULT_ID_LEN`],
    /// [`DEFAULT_SECRET_LEN`]).
    ///
    /// # Errors
    /// [`FormatError::InvalidPrefix`] when `prefix` is not a valid [`Prefix`].
    pub fn new(prefix: &str) -> Result<Self, FormatError> {
        Self::builder(prefix).build()
    }

    /// A builder starting from `prefix` and the default lengths.
    pub fn builder(prefix: &str) -> KeyFormatBuilder {
        KeyFormatBuilder {
            prefix: prefix.to_owned(),
            id_len: DEFAULT_ID_LEN,
            secret_len: DEFAULT_SECRET_LEN,
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    /// Number of id characters.
    pub fn id_len(&self) -> usize {
        self.id_len
    }

    /// Number of secret characters.
    pub fn secret_len(&self) -> usize {
        self.secret_len
    }

    /// Length of every key of this format, in bytes.
    pub fn key_len(&self) -> usize {
        self.prefix.as_str().len() + 1 + self.id_len + 1 + self.secret_len + CHECKSUM_LEN
    }

    /// Mints a new key from operating-system randomness.
    ///
    /// # Errors
    /// [`RngError`] when the operating system's random source fails.
    pub fn generate(&self) -> Result<GeneratedKey, RngError> {
        let prefix = self.prefix.as_str().as_bytes();
        let mut key = Zeroizing::new(vec![0u8; self.key_len()]);
        let id_start = prefix.len() + 1;
        let secret_start = id_start + self.id_len + 1;
        let checksum_start = secret_start + self.secret_len;

        key[..prefix.len()].copy_from_slice(prefix);
        key[id_start - 1] = b'_';
        base62::fill_random(&mut key[id_start..secret_start - 1])?;
        key[secret_start - 1] = b'_';
        base62::fill_random(&mut key[secret_start..checksum_start])?;
        let checksum = checksum::encode(&key[..checksum_start]);
        key[checksum_start..].copy_from_slice(&checksum);

        // Every byte is ASCII; moving the buffer into a String keeps it in the Zeroizing
        // wrapper and makes no copy.
        let key = std::mem::take(&mut *key);
        #[allow(clippy::expect_used)]
        let key = Zeroizing::new(String::from_utf8(key).expect("prefix and base62 are ASCII"));
        Ok(GeneratedKey::new(key, prefix.len(), self.id_len))
    }

    /// Checks a presented key against this format without any I/O: length cap first, then
    /// characters, structure, prefix, lengths and checksum. Rejections do not allocate.
    ///
    /// # Errors
    /// The first [`ParseError`] found; [`ParseError::PrefixMismatch`] for a well-formed key
    /// of another prefix.
    pub fn parse<'k>(&self, key: &'k str) -> Result<ParsedKey<'k>, ParseError> {
        parse::parse(
            key,
            self.key_len(),
            parse::Expect {
                prefix: Some(self.prefix.as_str()),
                id_len: Some(self.id_len),
                secret_len: Some(self.secret_len),
            },
        )
    }

    /// A regular expression matching keys of this format, for secret scanners such as
    /// gitleaks or GitHub custom patterns. Candidates it finds should be confirmed with
    /// [`KeyFormat::parse`] (the checksum), which removes false positives.
    ///
    /// ```
    /// let format = keymint::KeyFormat::new("sk_live")?;
    /// assert_eq!(format.regex(), r"\bsk_live_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}\b");
    /// # Ok::<(), keymint::FormatError>(())
    /// ```
    pub fn regex(&self) -> String {
        format!(
            r"\b{}_[0-9A-Za-z]{{{}}}_[0-9A-Za-z]{{{}}}\b",
            self.prefix.as_str(),
            self.id_len,
            self.secret_len + CHECKSUM_LEN
        )
    }
}

/// Builds a [`KeyFormat`]; lengths are checked by [`build`](Self::build).
#[derive(Clone, Debug)]
#[must_use]
pub struct KeyFormatBuilder {
    prefix: String,
    id_len: usize,
    secret_len: usize,
}

impl KeyFormatBuilder {
    /// Number of id characters, [`MIN_ID_LEN`]..=[`MAX_ID_LEN`].
    pub fn id_len(mut self, len: usize) -> Self {
        self.id_len = len;
        self
    }

    /// Number of secret characters, [`MIN_SECRET_LEN`]..=[`MAX_SECRET_LEN`].
    pub fn secret_len(mut self, len: usize) -> Self {
        self.secret_len = len;
        self
    }

    /// Validates and builds the format.
    ///
    /// # Errors
    /// [`FormatError::InvalidPrefix`], [`FormatError::IdLength`] or
    /// [`FormatError::SecretLength`].
    pub fn build(self) -> Result<KeyFormat, FormatError> {
        let prefix = Prefix::new(&self.prefix)?;
        if !(MIN_ID_LEN..=MAX_ID_LEN).contains(&self.id_len) {
            return Err(FormatError::IdLength(self.id_len));
        }
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&self.secret_len) {
            return Err(FormatError::SecretLength(self.secret_len));
        }
        Ok(KeyFormat {
            prefix,
            id_len: self.id_len,
            secret_len: self.secret_len,
        })
    }
}

#[cfg(test)]
mod tests;
