//! A set of granted scopes, compiled for fast checks.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::exact::ExactTable;
use super::trie::Trie;
use super::value::Scope;

/// The scopes granted to a key, compiled for checks that never compare the grants one by
/// one: a hash table of the grants as written answers exact matches with one lookup, and
/// a trie of their segments with wildcard edges answers the rest with one lookup per
/// segment.
///
/// Grants are kept deduplicated and sorted; [`iter`](Self::iter) and serde (a list of
/// strings) use that order.
///
/// ```
/// use keymint::{Scope, ScopeSet};
///
/// let granted: ScopeSet = ["users:*", "billing:read"]
///     .into_iter()
///     .map(Scope::new)
///     .collect::<Result<_, _>>()?;
/// assert!(granted.covers(&Scope::new("users:read:self")?));
/// assert!(granted.covers(&Scope::new("billing:read")?));
/// assert!(!granted.covers(&Scope::new("billing:write")?));
/// # Ok::<(), keymint::ScopeError>(())
/// ```
#[derive(Clone, Default)]
pub struct ScopeSet {
    grants: BTreeSet<Scope>,
    exact: ExactTable,
    trie: Trie,
}

impl ScopeSet {
    /// A set of `grants`.
    pub fn new(grants: impl IntoIterator<Item = Scope>) -> Self {
        let mut set = Self::default();
        set.extend(grants);
        set
    }

    /// Adds `grant`; returns whether it was new.
    pub fn insert(&mut self, grant: Scope) -> bool {
        if self.grants.contains(&grant) {
            return false;
        }
        self.trie.insert(&grant);
        self.exact.insert(grant.clone());
        self.grants.insert(grant)
    }

    /// Whether some grant covers `required`.
    ///
    /// For a concrete `required` this is the grant rule of the [module docs](super). A
    /// `required` with wildcards is covered only by a grant at least as broad, one that
    /// covers every concrete scope the pattern stands for: `admin:*` is covered by
    /// `admin:*`, `*:*` or `*`, not by `admin:users`.
    pub fn covers(&self, required: &Scope) -> bool {
        // A grant covers itself (wildcards included), so an exact match settles it. Debug
        // builds (every test) check that the trie agrees.
        let exact = self.exact.contains(required);
        debug_assert!(!exact || self.trie.covers(required), "{required}");
        exact || self.trie.covers(required)
    }

    /// Whether some grant overlaps `pattern`: shares at least one concrete scope with it
    /// (see [`Scope::overlaps`]). This is what a wildcard means under `not` in a
    /// [`Requirement`](super::Requirement): `not admin:*` holds only when no grant
    /// overlaps `admin:*`. For a concrete `pattern`, the same as [`covers`](Self::covers).
    pub fn overlaps(&self, pattern: &Scope) -> bool {
        if pattern.is_concrete() {
            return self.covers(pattern);
        }
        self.grants.iter().any(|grant| grant.overlaps(pattern))
    }

    /// The grants, sorted.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Scope> + '_ {
        self.grants.iter()
    }

    /// Whether `grant` is in the set as written (not whether it is covered).
    pub fn contains(&self, grant: &Scope) -> bool {
        self.grants.contains(grant)
    }

    /// Number of distinct grants.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }
}

impl Extend<Scope> for ScopeSet {
    fn extend<I: IntoIterator<Item = Scope>>(&mut self, grants: I) {
        for grant in grants {
            self.insert(grant);
        }
    }
}

impl<'a> Extend<&'a Scope> for ScopeSet {
    fn extend<I: IntoIterator<Item = &'a Scope>>(&mut self, grants: I) {
        for grant in grants {
            if !self.grants.contains(grant) {
                self.insert(grant.clone());
            }
        }
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(grants: I) -> Self {
        Self::new(grants)
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::collections::btree_set::Iter<'a, Scope>;
    fn into_iter(self) -> Self::IntoIter {
        self.grants.iter()
    }
}

impl PartialEq for ScopeSet {
    fn eq(&self, other: &Self) -> bool {
        self.grants == other.grants
    }
}

impl Eq for ScopeSet {}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.grants.iter().map(Scope::as_str))
            .finish()
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.grants)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::new(Vec::<Scope>::deserialize(deserializer)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(grants: &[&str]) -> ScopeSet {
        grants.iter().map(|g| Scope::new(g).unwrap()).collect()
    }

    fn scope(s: &str) -> Scope {
        Scope::new(s).unwrap()
    }

    #[test]
    fn empty_set_covers_nothing() {
        let empty = ScopeSet::default();
        assert!(empty.is_empty());
        assert!(!empty.covers(&scope("users")));
        assert!(!empty.covers(&scope("*")));
    }

    #[test]
    fn insert_deduplicates_and_iter_is_sorted() {
        let mut s = set(&["b", "a:*"]);
        assert!(!s.insert(scope("b")));
        assert!(s.insert(scope("a")));
        assert_eq!(s.len(), 3);
        let listed: Vec<_> = s.iter().map(Scope::as_str).collect();
        assert_eq!(listed, ["a", "a:*", "b"]);
        assert_eq!(format!("{s:?}"), r#"{"a", "a:*", "b"}"#);
    }

    #[test]
    fn backtracks_from_literal_to_wildcard_branch() {
        // `users:read` leads into a literal branch that does not end in `self`; the
        // wildcard branch does.
        let s = set(&["users:read:all", "users:*:self"]);
        assert!(s.covers(&scope("users:read:self")));
        assert!(s.covers(&scope("users:read:all")));
        assert!(!s.covers(&scope("users:write:all")));
    }

    #[test]
    fn serde_is_a_list_of_strings() {
        let s: ScopeSet = serde_json::from_str(r#"["users:*","billing:read","users:*"]"#).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.covers(&scope("users:read")));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"["billing:read","users:*"]"#
        );
        assert!(serde_json::from_str::<ScopeSet>(r#"["Users"]"#).is_err());
    }
}
