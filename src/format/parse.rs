//! Splitting and checking a presented key string. Rejection never allocates.

use std::fmt;

use super::base62;
use super::checksum::{self, CHECKSUM_LEN};
use super::key_id::{KeyId, MAX_ID_LEN, MIN_ID_LEN};
use super::prefix::{self, MAX_PREFIX_LEN};
use crate::format::KeyHint;
use crate::format::ParseError;

/// Shortest secret a format may use.
pub const MIN_SECRET_LEN: usize = 22;
/// Longest secret a format may use.
pub const MAX_SECRET_LEN: usize = 64;
/// Secret length of [`KeyFormat::new`](crate::KeyFormat::new).
pub const DEFAULT_SECRET_LEN: usize = 32;
/// The longest string any format can produce; longer input is rejected before it is read.
pub const MAX_KEY_LEN: usize = MAX_PREFIX_LEN + 1 + MAX_ID_LEN + 1 + MAX_SECRET_LEN + CHECKSUM_LEN;

/// What a parse expects of the parts; `None` accepts anything the format allows. An
/// expected prefix must be a valid [`Prefix`](super::Prefix) (the parser relies on it).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expect<'a> {
    pub(crate) prefix: Option<&'a str>,
    pub(crate) id_len: Option<usize>,
    pub(crate) secret_len: Option<usize>,
}

/// A key that passed every offline check (characters, structure, lengths, checksum).
///
/// It borrows the presented string. `Debug` shows the prefix and id but never the secret.
/// Passing these checks says nothing about whether the key exists or is valid: that takes
/// the store and the hash.
#[derive(Clone, Copy)]
pub struct ParsedKey<'k> {
    key: &'k str,
    prefix_end: usize,
    id_end: usize,
}

impl<'k> ParsedKey<'k> {
    /// A view of a key this crate just generated (already well-formed).
    pub(crate) fn from_generated(key: &'k str, prefix_end: usize, id_end: usize) -> Self {
        Self {
            key,
            prefix_end,
            id_end,
        }
    }

    /// The prefix, such as `sk_live`.
    pub fn prefix(&self) -> &'k str {
        &self.key[..self.prefix_end]
    }

    /// The public id: the handle the key's record is stored under.
    pub fn id(&self) -> &'k str {
        &self.key[self.prefix_end + 1..self.id_end]
    }

    /// The id as an owned [`KeyId`].
    pub fn key_id(&self) -> KeyId {
        KeyId::from_checked(self.id())
    }

    /// The random secret segment (without prefix, id or checksum): the part that is hashed
    /// at rest. Handle with care: never log it.
    pub fn expose_secret(&self) -> &'k str {
        &self.key[self.id_end + 1..self.key.len() - CHECKSUM_LEN]
    }

    /// The hint that may be shown to people: prefix, id and the key's last 4 characters.
    pub fn hint(&self) -> KeyHint {
        KeyHint::new(self.prefix(), self.id(), self.key)
    }
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("prefix", &self.prefix())
            .field("id", &self.id())
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// Parses `key` as a v1 key of any well-formed prefix, id length and secret length.
///
/// Use [`KeyFormat::parse`](crate::KeyFormat::parse) when you know which format to expect;
/// it also rejects foreign prefixes and lengths.
///
/// ```
/// let key = keymint::parse_key("sk_live_AbC123xyZ789_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1j4R67")?;
/// assert_eq!(key.prefix(), "sk_live");
/// assert_eq!(key.id(), "AbC123xyZ789");
/// assert_eq!(key.hint().as_str(), "sk_live_AbC123xyZ789_…4R67");
/// # Ok::<(), keymint::ParseError>(())
/// ```
///
/// # Errors
/// The first [`ParseError`] found, in this order: length, characters, structure, prefix,
/// id length, secret length, checksum.
pub fn parse_key(key: &str) -> Result<ParsedKey<'_>, ParseError> {
    parse(
        key,
        MAX_KEY_LEN,
        Expect {
            prefix: None,
            id_len: None,
            secret_len: None,
        },
    )
}

/// [`parse_key`] with a tighter length cap: for a set of formats whose longest key is
/// `max_len`.
pub(crate) fn parse_bounded(key: &str, max_len: usize) -> Result<ParsedKey<'_>, ParseError> {
    parse(
        key,
        max_len,
        Expect {
            prefix: None,
            id_len: None,
            secret_len: None,
        },
    )
}

/// The shared parser. `max_len` is checked before any byte is read.
pub(crate) fn parse<'k>(
    key: &'k str,
    max_len: usize,
    expect: Expect<'_>,
) -> Result<ParsedKey<'k>, ParseError> {
    let bytes = key.as_bytes();
    if bytes.is_empty() {
        return Err(ParseError::Empty);
    }
    if bytes.len() > max_len {
        return Err(ParseError::TooLong {
            len: bytes.len(),
            max: max_len,
        });
    }
    if let Some(position) = base62::find_non_key_char(bytes) {
        return Err(ParseError::InvalidCharacter { position });
    }
    let id_end = rfind_underscore(bytes).ok_or(ParseError::MissingSeparator)?;
    let prefix_end = rfind_underscore(&bytes[..id_end]).ok_or(ParseError::MissingSeparator)?;

    let prefix = &bytes[..prefix_end];
    match expect.prefix {
        // The expected prefix is a valid `Prefix`, so an equal one needs no second look.
        Some(expected) if prefix == expected.as_bytes() => {}
        Some(_) if prefix::is_valid(prefix) => return Err(ParseError::PrefixMismatch),
        _ if !prefix::is_valid(prefix) => return Err(ParseError::InvalidPrefix),
        _ => {}
    }

    let id_len = id_end - prefix_end - 1;
    let id_ok = match expect.id_len {
        Some(expected) => id_len == expected,
        None => (MIN_ID_LEN..=MAX_ID_LEN).contains(&id_len),
    };
    if !id_ok {
        let (min, max) = expect.id_len.map_or((MIN_ID_LEN, MAX_ID_LEN), |n| (n, n));
        return Err(ParseError::IdLength {
            found: id_len,
            min,
            max,
        });
    }

    let tail_len = bytes.len() - id_end - 1;
    let secret_len = tail_len.saturating_sub(CHECKSUM_LEN);
    let secret_ok = tail_len > CHECKSUM_LEN
        && match expect.secret_len {
            Some(expected) => secret_len == expected,
            None => (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret_len),
        };
    if !secret_ok {
        let (min, max) = expect
            .secret_len
            .map_or((MIN_SECRET_LEN, MAX_SECRET_LEN), |n| (n, n));
        return Err(ParseError::SecretLength {
            found: secret_len,
            min,
            max,
        });
    }

    let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if !checksum::matches(body, checksum) {
        return Err(ParseError::ChecksumMismatch);
    }
    Ok(ParsedKey {
        key,
        prefix_end,
        id_end,
    })
}

/// Position of the last `_` in `bytes`, eight bytes at a time.
///
/// Keys are at most [`MAX_KEY_LEN`] bytes, where a byte loop spends more time than the
/// checksum and a call into `memrchr` pays for its dispatch; a word at a time (SWAR) reads
/// the 38 characters after a default key's last separator in five steps.
fn rfind_underscore(bytes: &[u8]) -> Option<usize> {
    const LOW7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const PATTERN: u64 = 0x0101_0101_0101_0101 * b'_' as u64;
    let mut end = bytes.len();
    while let Some(word) = bytes[..end].last_chunk::<8>() {
        // Bytes equal to `_` become zero; then bit 7 of each byte of `zero` is set exactly
        // where the byte is zero (no carries cross bytes, so no false positives).
        let x = u64::from_le_bytes(*word) ^ PATTERN;
        let zero = !(((x & LOW7) + LOW7) | x | LOW7);
        if zero != 0 {
            let highest = (63 - zero.leading_zeros()) as usize / 8;
            return Some(end - 8 + highest);
        }
        end -= 8;
    }
    bytes[..end].iter().rposition(|&b| b == b'_')
}

#[cfg(test)]
mod tests {
    use super::rfind_underscore;

    #[test]
    fn rfind_underscore_agrees_with_a_byte_loop() {
        let mut text = Vec::new();
        for len in 0..40 {
            for byte in [b'_', b'a', 0x00, 0x5E, 0x60, 0xDF, 0xFF] {
                text.clear();
                text.extend((0..len).map(|i| if i % 7 == 3 { byte } else { b'x' }));
                for at in 0..=len {
                    let mut probe = text.clone();
                    if at < len {
                        probe[at] = b'_';
                    }
                    let expected = probe.iter().rposition(|&b| b == b'_');
                    assert_eq!(rfind_underscore(&probe), expected, "{probe:?}");
                }
            }
        }
    }
}
