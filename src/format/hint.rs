//! The part of a key that may be shown to people.

use std::fmt;

use serde::Deserialize;

/// The part of a key that may be shown to people: `sk_live_AbC123xyZ789_…k2Qz` (prefix,
/// id and the key's last four characters, which belong to the checksum).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyHint(Box<str>);

impl KeyHint {
    /// Length of the visible tail.
    pub const TAIL_LEN: usize = 4;

    pub(crate) fn new(prefix: &str, id: &str, key: &str) -> Self {
        let tail = &key[key.len().saturating_sub(Self::TAIL_LEN)..];
        Self(format!("{prefix}_{id}_…{tail}").into())
    }
}

text_newtype!(KeyHint);

/// Hints are read back from storage as written: they are display text, not an input.
impl<'de> Deserialize<'de> for KeyHint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Self(text.into()))
    }
}

impl fmt::Debug for KeyHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHint({})", self.0)
    }
}
