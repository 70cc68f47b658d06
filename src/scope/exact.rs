//! The fast path of [`ScopeSet`](super::ScopeSet): an open-addressed table of the grants
//! as written, so that a required scope equal to a grant (the common case) is found with
//! one hash of its text and one comparison, before any trie walk.
//!
//! The hash is a multiply-rotate over eight-byte words (FxHash style): not resistant to
//! chosen collisions, which is fine here because the table holds only grants; a hostile
//! required scope can choose its own slot but not lengthen the clusters it probes.

use super::value::Scope;

const K: u64 = 0x51_7C_C1_B7_27_22_0A_95;

#[inline(always)]
fn hash(text: &[u8]) -> u64 {
    let mut h = text.len() as u64;
    let mut chunks = text.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let mut tail = 0u64;
    for (i, &b) in chunks.remainder().iter().enumerate() {
        tail |= u64::from(b) << (8 * i);
    }
    h = (h.rotate_left(5) ^ tail).wrapping_mul(K);
    h ^ (h >> 29)
}

#[derive(Clone, Debug)]
pub(crate) struct ExactTable {
    /// `(hash, grant)`; `None` is an empty slot. A power of two in size, at most half full.
    slots: Vec<Option<(u64, Scope)>>,
    len: usize,
}

impl Default for ExactTable {
    fn default() -> Self {
        Self {
            slots: vec![None; 8],
            len: 0,
        }
    }
}

impl ExactTable {
    /// Adds `grant`, which the caller knows is not in the table yet.
    pub(crate) fn insert(&mut self, grant: Scope) {
        if (self.len + 1) * 2 > self.slots.len() {
            let doubled = vec![None; self.slots.len() * 2];
            let old = std::mem::replace(&mut self.slots, doubled);
            for (h, scope) in old.into_iter().flatten() {
                self.place(h, scope);
            }
        }
        let h = hash(grant.as_str().as_bytes());
        self.place(h, grant);
        self.len += 1;
    }

    fn place(&mut self, h: u64, scope: Scope) {
        let mask = self.slots.len() - 1;
        // The mask keeps the index in range whatever the truncation.
        #[allow(clippy::cast_possible_truncation)]
        let mut i = h as usize & mask;
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        self.slots[i] = Some((h, scope));
    }

    /// Whether `scope` is one of the grants, as written.
    #[inline]
    pub(crate) fn contains(&self, scope: &Scope) -> bool {
        let text = scope.as_str().as_bytes();
        let h = hash(text);
        let mask = self.slots.len() - 1;
        #[allow(clippy::cast_possible_truncation)]
        let mut i = h as usize & mask;
        while let Some((slot_hash, grant)) = &self.slots[i] {
            if *slot_hash == h && grant.as_str().as_bytes() == text {
                return true;
            }
            i = (i + 1) & mask;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_grant_and_nothing_else_across_growth() {
        let mut table = ExactTable::default();
        let grants: Vec<Scope> = (0..200)
            .map(|i| Scope::new(&format!("resource{}:action_{}", i % 13, i)).unwrap())
            .collect();
        for grant in &grants {
            table.insert(grant.clone());
        }
        assert_eq!(table.len, 200);
        assert!(table.slots.len() >= 400);
        for grant in &grants {
            assert!(table.contains(grant), "{grant}");
        }
        for other in [
            "resource1:action_2",
            "resource0",
            "resource0:action_0:x",
            "*",
        ] {
            assert!(!table.contains(&Scope::new(other).unwrap()), "{other}");
        }
    }

    #[test]
    fn hash_depends_on_every_byte_and_the_length() {
        assert_ne!(hash(b"users:read"), hash(b"users:reae"));
        assert_ne!(hash(b"abcdefgh"), hash(b"abcdefgh\0"));
        assert_ne!(hash(b"a"), hash(b"b"));
    }
}
