//! The part of a key that may be shown to people.

use std::fmt;

use serde::{Deserialize, Serialize};

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
