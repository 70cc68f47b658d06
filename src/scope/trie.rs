//! The matcher behind [`ScopeSet`](super::ScopeSet): a trie of grant segments with
//! wildcard edges.
//!
//! Nodes are grant prefixes. A node has at most one `*` child (a wildcard in the middle of
//! a grant: exactly one segment) and two flags: `end` (a grant ends here) and `tail` (a
//! grant ends here with a trailing `*`: one or more further segments). Literal edges of
//! all nodes live in one open-addressed table keyed by (parent, packed segment), where a
//! packed segment is its first seven bytes and its length in one `u64`: segments of up to
//! seven bytes are identified by the key alone, longer ones are confirmed by comparing the
//! text. A step down the trie is one hash and, typically, one probe.
//!
//! A check walks the required scope's segments from the root, trying the literal child
//! and then the `*` child. Every node sits at a fixed depth and is reached by one path
//! only, so a check visits each node at most once: the work is one probe per segment on
//! the good path and never more than the size of the trie, never exponential. The table's
//! contents come from the grants, not from the scope being checked, so hostile required
//! scopes cannot lengthen its probe sequences.

use super::value::{Scope, WILDCARD};

/// No node: marks an empty table slot and a missing `*` child.
const NONE: u32 = u32::MAX;

/// Segments this long or shorter are identified by their packed key alone.
const EXACT_KEY_LEN: usize = 7;

/// The packed key of the first segment of `rest` (its first seven bytes, little-endian,
/// and its length in the high byte) and that segment's length. Segment bytes are never
/// zero, so equal keys mean equal segments up to seven bytes.
///
/// When eight bytes are available, the `:` is found with one word operation (the classic
/// "has zero byte" test on the word xor `::::::::`; in little-endian order a false
/// positive can only follow a true match, so the lowest flagged byte is the first `:`).
#[inline(always)]
fn split_segment(rest: &[u8]) -> (u64, usize) {
    const COLONS: u64 = u64::from_le_bytes([b':'; 8]);
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let (word, len) = match rest.first_chunk::<8>() {
        Some(chunk) => {
            let word = u64::from_le_bytes(*chunk);
            let x = word ^ COLONS;
            let found = x.wrapping_sub(ONES) & !x & HIGHS;
            let len = if found != 0 {
                (found.trailing_zeros() / 8) as usize
            } else {
                8 + rest[8..]
                    .iter()
                    .position(|&b| b == b':')
                    .unwrap_or(rest.len() - 8)
            };
            (word, len)
        }
        None => {
            let mut word = 0u64;
            let mut len = 0;
            for &b in rest {
                if b == b':' {
                    break;
                }
                word |= u64::from(b) << (8 * len);
                len += 1;
            }
            (word, len)
        }
    };
    let head = len.min(EXACT_KEY_LEN);
    let mask = (1u64 << (8 * head)) - 1;
    // Segments are at most 64 bytes, so the length fits the high byte.
    #[allow(clippy::cast_possible_truncation)]
    let high = u64::from(len.min(255) as u8) << 56;
    ((word & mask) | high, len)
}

#[derive(Clone, Debug)]
struct Node {
    /// The segment on the edge into this node (empty for the root and `*` children).
    segment: Box<str>,
    /// The child for a `*` segment that is not the grant's last, or [`NONE`].
    star: u32,
    /// A grant ends at this node.
    end: bool,
    /// A grant ends at this node with a trailing `*`.
    tail: bool,
}

impl Node {
    fn new(segment: &str) -> Self {
        Self {
            segment: segment.into(),
            star: NONE,
            end: false,
            tail: false,
        }
    }
}

/// One literal edge: `parent --segment--> child`, where `key` is the packed segment.
#[derive(Clone, Copy, Debug)]
struct Slot {
    key: u64,
    parent: u32,
    child: u32,
}

const EMPTY: Slot = Slot {
    key: 0,
    parent: NONE,
    child: NONE,
};

#[derive(Clone, Debug)]
pub(crate) struct Trie {
    /// `nodes[0]` is the root.
    nodes: Vec<Node>,
    /// Open-addressed edge table, a power of two in size, at most half full.
    slots: Vec<Slot>,
    /// `64 - log2(slots.len())`: the hash's top bits pick the first slot.
    shift: u32,
    edges: usize,
}

impl Default for Trie {
    fn default() -> Self {
        Self {
            nodes: vec![Node::new("")],
            slots: vec![EMPTY; 8],
            shift: 64 - 3,
            edges: 0,
        }
    }
}

#[inline(always)]
fn first_slot(key: u64, parent: u32, shift: u32) -> usize {
    let mixed = (key ^ u64::from(parent).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    // The shift leaves at most log2(slots.len()) bits.
    #[allow(clippy::cast_possible_truncation)]
    let index = (mixed >> shift) as usize;
    index
}

impl Trie {
    /// The literal child of `parent` for `segment`, whose packed key is `key`.
    #[inline(always)]
    fn child(&self, parent: u32, key: u64, segment: &[u8]) -> Option<u32> {
        let mask = self.slots.len() - 1;
        let mut i = first_slot(key, parent, self.shift);
        loop {
            let slot = self.slots[i];
            if slot.parent == NONE {
                return None;
            }
            if slot.key == key
                && slot.parent == parent
                && (segment.len() <= EXACT_KEY_LEN
                    || self.nodes[slot.child as usize].segment.as_bytes() == segment)
            {
                return Some(slot.child);
            }
            i = (i + 1) & mask;
        }
    }

    fn place(slots: &mut [Slot], shift: u32, slot: Slot) {
        let mask = slots.len() - 1;
        let mut i = first_slot(slot.key, slot.parent, shift);
        while slots[i].parent != NONE {
            i = (i + 1) & mask;
        }
        slots[i] = slot;
    }

    fn add_edge(&mut self, parent: u32, key: u64, segment: &str) -> u32 {
        let child = self.push(segment);
        if (self.edges + 1) * 2 > self.slots.len() {
            let mut slots = vec![EMPTY; self.slots.len() * 2];
            let shift = self.shift - 1;
            for slot in self.slots.iter().filter(|s| s.parent != NONE) {
                Self::place(&mut slots, shift, *slot);
            }
            self.slots = slots;
            self.shift = shift;
        }
        let slot = Slot { key, parent, child };
        Self::place(&mut self.slots, self.shift, slot);
        self.edges += 1;
        child
    }

    pub(crate) fn insert(&mut self, grant: &Scope) {
        let mut node = 0u32;
        let mut segments = grant.segments().peekable();
        while let Some(segment) = segments.next() {
            let last = segments.peek().is_none();
            if segment == WILDCARD {
                if last {
                    self.nodes[node as usize].tail = true;
                    return;
                }
                node = match self.nodes[node as usize].star {
                    NONE => {
                        let child = self.push("");
                        self.nodes[node as usize].star = child;
                        child
                    }
                    child => child,
                };
            } else {
                let (key, _) = split_segment(segment.as_bytes());
                node = match self.child(node, key, segment.as_bytes()) {
                    Some(child) => child,
                    None => self.add_edge(node, key, segment),
                };
            }
        }
        self.nodes[node as usize].end = true;
    }

    fn push(&mut self, segment: &str) -> u32 {
        self.nodes.push(Node::new(segment));
        // A trie holds at most MAX_SEGMENTS nodes per grant; four billion of them would
        // need hundreds of gigabytes of grants first.
        #[allow(clippy::cast_possible_truncation)]
        let id = (self.nodes.len() - 1) as u32;
        id
    }

    /// Whether some grant covers `required` (wildcards in `required` are covered only by
    /// grants at least as broad, see the module docs).
    pub(crate) fn covers(&self, required: &Scope) -> bool {
        self.walk(0, Some(required.as_str().as_bytes()))
    }

    /// Whether the grants below `node` cover `rest`: the required segments not consumed
    /// yet, joined by `:` (`None` once all are consumed). Loops down the trie and recurses
    /// only where both a literal and a `*` child could match.
    fn walk(&self, mut node: u32, mut rest: Option<&[u8]>) -> bool {
        loop {
            let here = &self.nodes[node as usize];
            let Some(required) = rest else {
                return here.end;
            };
            if here.tail {
                return true; // a trailing `*` covers one or more remaining segments
            }
            let (key, len) = split_segment(required);
            let first = &required[..len];
            rest = required.get(len + 1..);
            let literal = if first == WILDCARD.as_bytes() {
                // A required `*` in the middle stands for any one segment: only a granted
                // `*` covers it. A trailing required `*` (one or more segments) is covered
                // only by a granted trailing `*`, checked above.
                if rest.is_none() {
                    return false;
                }
                None
            } else {
                self.child(node, key, first)
            };
            node = match (literal, here.star) {
                (Some(child), NONE) => child,
                (None, NONE) => return false,
                (None, star) => star,
                (Some(child), star) => {
                    if self.walk(child, rest) {
                        return true;
                    }
                    star
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(segment: &str) -> u64 {
        split_segment(segment.as_bytes()).0
    }

    #[test]
    fn packed_keys_tell_short_segments_apart() {
        assert_eq!(split_segment(b"users:read"), (key("users"), 5));
        assert_eq!(key("read"), key("read"));
        assert_ne!(key("read"), key("reads"));
        assert_ne!(key("a"), key("a."));
        // Long segments that share seven bytes and a length share a key ...
        assert_eq!(key("members_a"), key("members_b"));
    }

    #[test]
    fn word_at_a_time_split_matches_a_byte_loop() {
        let naive = |rest: &[u8]| {
            let len = rest.iter().position(|&b| b == b':').unwrap_or(rest.len());
            let mut key = (len as u64) << 56;
            for (i, &b) in rest[..len.min(7)].iter().enumerate() {
                key |= u64::from(b) << (8 * i);
            }
            (key, len)
        };
        let long = "abcdefghijklmnopq";
        for first in 1..=long.len() {
            for rest in ["", ":x", ":yz:w", ":members_a:b"] {
                let text = format!("{}{rest}", &long[..first]);
                assert_eq!(
                    split_segment(text.as_bytes()),
                    naive(text.as_bytes()),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn long_segments_with_equal_keys_are_told_apart_by_text() {
        let mut trie = Trie::default();
        for grant in ["members_a:x", "members_b:y", "members_c"] {
            trie.insert(&Scope::new(grant).unwrap());
        }
        let covers = |s: &str| trie.covers(&Scope::new(s).unwrap());
        assert!(covers("members_a:x") && covers("members_b:y") && covers("members_c"));
        assert!(!covers("members_a:y") && !covers("members_b:x") && !covers("members_d"));
    }

    #[test]
    fn the_edge_table_grows_and_keeps_every_edge() {
        let mut trie = Trie::default();
        let grants: Vec<Scope> = (0..300)
            .map(|i| Scope::new(&format!("r{}:a{}", i % 37, i)).unwrap())
            .collect();
        for grant in &grants {
            trie.insert(grant);
        }
        assert!(trie.slots.len() >= 2 * trie.edges);
        assert_eq!(trie.edges, 37 + 300);
        for grant in &grants {
            assert!(trie.covers(grant), "{grant}");
        }
        assert!(!trie.covers(&Scope::new("r1:a2").unwrap()));
    }
}
