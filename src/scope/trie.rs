//! The matcher behind [`ScopeSet`](super::ScopeSet): a trie of grant segments with
//! wildcard edges.
//!
//! Each node has its literal children sorted by name (binary search), at most one `*`
//! child (a wildcard in the middle of a grant: exactly one segment), and two flags: `end`
//! (a grant ends here) and `tail` (a grant ends here with a trailing `*`: one or more
//! further segments). A check walks the required scope's segments from the root, trying
//! the literal child and then the `*` child. Every node sits at a fixed depth and is
//! reached by one path only, so a check visits each node at most once: the work is
//! bounded by the number of segments on the good path (typically 1 to 3 binary searches),
//! and in the worst case by the size of the trie, never exponential.

use super::value::{Scope, WILDCARD};

#[derive(Clone, Debug, Default)]
struct Node {
    /// Literal children, sorted by segment.
    children: Vec<(Box<str>, u32)>,
    /// The child for a `*` segment that is not the grant's last.
    star: Option<u32>,
    /// A grant ends at this node.
    end: bool,
    /// A grant ends at this node with a trailing `*`.
    tail: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct Trie {
    /// `nodes[0]` is the root.
    nodes: Vec<Node>,
}

impl Default for Trie {
    fn default() -> Self {
        Self {
            nodes: vec![Node::default()],
        }
    }
}

impl Trie {
    pub(crate) fn insert(&mut self, grant: &Scope) {
        let mut node = 0usize;
        let mut segments = grant.segments().peekable();
        while let Some(segment) = segments.next() {
            let last = segments.peek().is_none();
            if segment == WILDCARD {
                if last {
                    self.nodes[node].tail = true;
                    return;
                }
                node = match self.nodes[node].star {
                    Some(child) => child as usize,
                    None => {
                        let child = self.push();
                        self.nodes[node].star = Some(child);
                        child as usize
                    }
                };
            } else {
                node = match self.nodes[node]
                    .children
                    .binary_search_by(|(name, _)| (**name).cmp(segment))
                {
                    Ok(i) => self.nodes[node].children[i].1 as usize,
                    Err(i) => {
                        let child = self.push();
                        self.nodes[node].children.insert(i, (segment.into(), child));
                        child as usize
                    }
                };
            }
        }
        self.nodes[node].end = true;
    }

    fn push(&mut self) -> u32 {
        self.nodes.push(Node::default());
        // A trie holds at most MAX_SEGMENTS nodes per grant; four billion of them would
        // need hundreds of gigabytes of grants first.
        #[allow(clippy::cast_possible_truncation)]
        let id = (self.nodes.len() - 1) as u32;
        id
    }

    /// Whether some grant covers `required` (wildcards in `required` are covered only by
    /// grants at least as broad, see the module docs).
    pub(crate) fn covers(&self, required: &Scope) -> bool {
        self.walk(0, Some(required.as_str()))
    }

    /// Whether the grants below `node` cover `rest`: the required segments not consumed
    /// yet, joined by `:` (`None` once all are consumed).
    fn walk(&self, node: u32, rest: Option<&str>) -> bool {
        let node = &self.nodes[node as usize];
        let Some(rest) = rest else {
            return node.end;
        };
        if node.tail {
            return true; // a trailing `*` covers one or more remaining segments, whatever they are
        }
        let (first, after) = match rest.split_once(':') {
            Some((first, after)) => (first, Some(after)),
            None => (rest, None),
        };
        if first == WILDCARD {
            // A required `*` in the middle stands for any one segment: only a granted `*`
            // covers it. A trailing required `*` (one or more segments) is covered only by
            // a granted trailing `*`, checked above.
            return after.is_some() && node.star.is_some_and(|star| self.walk(star, after));
        }
        if let Ok(i) = node
            .children
            .binary_search_by(|(name, _)| (**name).cmp(first))
        {
            if self.walk(node.children[i].1, after) {
                return true;
            }
        }
        node.star.is_some_and(|star| self.walk(star, after))
    }
}
