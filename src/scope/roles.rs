//! Roles: named bundles of scopes, resolved when a key is checked.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::RoleError;
use super::set::ScopeSet;
use super::value::{MAX_SEGMENT_LEN, Scope, is_segment_byte};

/// Named bundles of scopes. A key record lists role names next to its own grants; the
/// keyring resolves them at verify time with [`resolve`](Self::resolve), so changing a
/// role changes every key that references it.
///
/// Role names follow the rules of one concrete scope segment: 1 to
/// [`MAX_SEGMENT_LEN`] characters of `a-z 0-9 _ - .`. Cloning is cheap (the table is
/// shared behind an [`Arc`]); changing a clone copies the table first, so other holders
/// keep what they had. Serde: a map from role name to a list of scopes.
///
/// ```
/// use keymint::{Roles, Scope};
///
/// let mut roles = Roles::new();
/// roles.insert("support", [Scope::new("users:read")?, Scope::new("tickets:*")?])?;
///
/// let own = [Scope::new("billing:read")?];
/// let granted = roles.resolve(&own, &["support".to_owned(), "gone".to_owned()]);
/// assert!(granted.covers(&Scope::new("tickets:close")?));
/// assert!(granted.covers(&Scope::new("billing:read")?));
/// assert_eq!(granted.len(), 3);
/// // Unknown role names grant nothing; find them with `unknown`.
/// assert_eq!(roles.unknown(&["support".to_owned(), "gone".to_owned()]).collect::<Vec<_>>(), ["gone"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Roles {
    table: Arc<BTreeMap<Box<str>, Vec<Scope>>>,
}

impl Roles {
    /// No roles.
    pub fn new() -> Self {
        Self::default()
    }

    /// Defines role `name` as `scopes`, replacing any earlier definition, which is
    /// returned.
    ///
    /// # Errors
    /// A [`RoleError`] when `name` is not a valid role name.
    pub fn insert(
        &mut self,
        name: &str,
        scopes: impl IntoIterator<Item = Scope>,
    ) -> Result<Option<Vec<Scope>>, RoleError> {
        validate_name(name)?;
        let mut scopes: Vec<Scope> = scopes.into_iter().collect();
        scopes.sort_unstable();
        scopes.dedup();
        Ok(Arc::make_mut(&mut self.table).insert(name.into(), scopes))
    }

    /// [`insert`](Self::insert) in builder style.
    ///
    /// # Errors
    /// A [`RoleError`] when `name` is not a valid role name.
    pub fn with_role(
        mut self,
        name: &str,
        scopes: impl IntoIterator<Item = Scope>,
    ) -> Result<Self, RoleError> {
        self.insert(name, scopes)?;
        Ok(self)
    }

    /// Removes role `name`, returning its scopes.
    pub fn remove(&mut self, name: &str) -> Option<Vec<Scope>> {
        if !self.table.contains_key(name) {
            return None;
        }
        Arc::make_mut(&mut self.table).remove(name)
    }

    /// The scopes of role `name` (sorted, deduplicated).
    pub fn get(&self, name: &str) -> Option<&[Scope]> {
        self.table.get(name).map(Vec::as_slice)
    }

    /// The role names, sorted.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.table.keys().map(|name| &**name)
    }

    /// Number of roles.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no role is defined.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The scopes a key holds: its own `grants` plus the scopes of every role in
    /// `role_names`. Names of roles that are not defined (deleted since, or never valid)
    /// contribute nothing: a key never gains access from a role that does not exist. Use
    /// [`unknown`](Self::unknown) to report them.
    pub fn resolve(&self, grants: &[Scope], role_names: &[String]) -> ScopeSet {
        let mut set = ScopeSet::new(grants.iter().cloned());
        for name in role_names {
            if let Some(scopes) = self.table.get(name.as_str()) {
                set.extend(scopes);
            }
        }
        set
    }

    /// The names in `role_names` that are not defined here, in the given order.
    pub fn unknown<'a>(&'a self, role_names: &'a [String]) -> impl Iterator<Item = &'a str> + 'a {
        role_names
            .iter()
            .map(String::as_str)
            .filter(|name| !self.table.contains_key(*name))
    }
}

/// Checks a role name: one concrete scope segment.
fn validate_name(name: &str) -> Result<(), RoleError> {
    if name.is_empty() {
        return Err(RoleError::Empty);
    }
    if name.len() > MAX_SEGMENT_LEN {
        return Err(RoleError::TooLong {
            len: name.len(),
            max: MAX_SEGMENT_LEN,
        });
    }
    match name.bytes().position(|b| !is_segment_byte(b)) {
        Some(position) => Err(RoleError::InvalidCharacter { position }),
        None => Ok(()),
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.table.iter()).finish()
    }
}

impl Serialize for Roles {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.table.iter())
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let table = BTreeMap::<String, Vec<Scope>>::deserialize(deserializer)?;
        let mut roles = Roles::new();
        for (name, scopes) in table {
            roles.insert(&name, scopes).map_err(D::Error::custom)?;
        }
        Ok(roles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(s: &str) -> Scope {
        Scope::new(s).unwrap()
    }

    #[test]
    fn names_are_validated_like_a_concrete_segment() {
        let mut roles = Roles::new();
        assert_eq!(roles.insert("", []), Err(RoleError::Empty));
        assert_eq!(
            roles.insert("a:b", []),
            Err(RoleError::InvalidCharacter { position: 1 })
        );
        assert_eq!(
            roles.insert("*", []),
            Err(RoleError::InvalidCharacter { position: 0 })
        );
        let long = "r".repeat(MAX_SEGMENT_LEN + 1);
        assert_eq!(
            roles.insert(&long, []),
            Err(RoleError::TooLong { len: 65, max: 64 })
        );
        assert!(roles.insert(&long[1..], []).is_ok());
        assert!(roles.insert("read-only_v1.2", []).is_ok());
    }

    #[test]
    fn changing_a_role_changes_what_resolves_and_leaves_clones_alone() {
        let mut roles = Roles::new()
            .with_role("ops", [scope("deploy:read")])
            .unwrap();
        let before = roles.clone();
        let names = ["ops".to_owned()];
        assert!(!roles.resolve(&[], &names).covers(&scope("deploy:run")));

        let old = roles.insert("ops", [scope("deploy:*")]).unwrap();
        assert_eq!(old, Some(vec![scope("deploy:read")]));
        assert!(roles.resolve(&[], &names).covers(&scope("deploy:run")));
        assert!(!before.resolve(&[], &names).covers(&scope("deploy:run")));

        assert_eq!(roles.remove("ops"), Some(vec![scope("deploy:*")]));
        assert!(roles.resolve(&[], &names).is_empty());
        assert_eq!(roles.unknown(&names).collect::<Vec<_>>(), ["ops"]);
    }

    #[test]
    fn serde_is_a_map_of_scope_lists() {
        let roles: Roles =
            serde_json::from_str(r#"{"admin":["*"],"reader":["users:read","billing:read"]}"#)
                .unwrap();
        assert_eq!(roles.names().collect::<Vec<_>>(), ["admin", "reader"]);
        assert_eq!(
            serde_json::to_string(&roles).unwrap(),
            r#"{"admin":["*"],"reader":["billing:read","users:read"]}"#
        );
        assert!(serde_json::from_str::<Roles>(r#"{"Admin":["*"]}"#).is_err());
        assert!(serde_json::from_str::<Roles>(r#"{"admin":["users::x"]}"#).is_err());
    }
}
