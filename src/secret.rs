//! Types that hold a plaintext key: zeroized on drop, never printed.

use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::format::{KeyId, ParsedKey};

/// The part of a key that may be shown to people: `sk_live_AbC123xyZ789_…k2Qz` (prefix,
/// id and the key's last four characters, which belong to the checksum).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHint(Box<str>);

impl KeyHint {
    /// Length of the visible tail.
    pub const TAIL_LEN: usize = 4;

    pub(crate) fn new(prefix: &str, id: &str, key: &str) -> Self {
        let tail = &key[key.len().saturating_sub(Self::TAIL_LEN)..];
        Self(format!("{prefix}_{id}_…{tail}").into())
    }

    /// The hint as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHint({})", self.0)
    }
}

/// A freshly minted key. The plaintext exists only here: show it to its owner once, store
/// its hash, and drop it. It is zeroized on drop, is neither `Clone` nor `Serialize`, and
/// its `Debug` prints only the hint.
///
/// ```
/// let key = keymint::KeyFormat::new("sk_test")?.generate()?;
/// let shown = format!("{key:?}");
/// assert!(shown.contains(key.id().as_str()));
/// assert!(!shown.contains(key.parsed().expose_secret()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct GeneratedKey {
    key: Zeroizing<String>,
    prefix_len: usize,
    id: KeyId,
}

impl GeneratedKey {
    pub(crate) fn new(key: Zeroizing<String>, prefix_len: usize, id_len: usize) -> Self {
        let id = KeyId::from_checked(&key[prefix_len + 1..prefix_len + 1 + id_len]);
        Self {
            key,
            prefix_len,
            id,
        }
    }

    /// The whole plaintext key, to hand to its owner once.
    pub fn expose_secret(&self) -> &str {
        &self.key
    }

    /// The public id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.key[..self.prefix_len]
    }

    /// The hint that may be shown to people.
    pub fn hint(&self) -> KeyHint {
        KeyHint::new(self.prefix(), self.id.as_str(), &self.key)
    }

    /// The key split into its parts (its [`ParsedKey::expose_secret`] is the secret
    /// segment that gets hashed).
    pub fn parsed(&self) -> ParsedKey<'_> {
        ParsedKey::from_generated(
            &self.key,
            self.prefix_len,
            self.prefix_len + 1 + self.id.as_str().len(),
        )
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("hint", &self.hint())
            .finish_non_exhaustive()
    }
}
