//! A freshly minted key: the only place a plaintext key exists, zeroized on drop.

use std::fmt;

use zeroize::Zeroizing;

use super::hint::KeyHint;
use super::key_id::KeyId;
use super::parse::ParsedKey;

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
