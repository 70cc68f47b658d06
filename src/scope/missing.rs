//! What a failed requirement check reports.

use std::fmt;

use super::value::Scope;

/// A [`Requirement`](super::Requirement) that the granted scopes do not satisfy: maps to
/// HTTP 403 (insufficient scope).
///
/// It names the scopes responsible, deduplicated and sorted:
/// - [`missing`](Self::missing): required scopes that are not covered. For an unsatisfied
///   `a or b` both are listed (either would do); for `a and b` only the uncovered ones.
///   So `a and (b or c)` with nothing granted reports `a, b, c`.
/// - [`forbidden`](Self::forbidden): scopes under a `not` that are covered, so that
///   holding them fails the requirement (`not admin:*` with `admin:*` granted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingScopes {
    pub(crate) missing: Vec<Scope>,
    pub(crate) forbidden: Vec<Scope>,
}

impl MissingScopes {
    /// Required scopes that the grants do not cover.
    pub fn missing(&self) -> &[Scope] {
        &self.missing
    }

    /// Scopes that the requirement excludes with `not` but the grants cover.
    pub fn forbidden(&self) -> &[Scope] {
        &self.forbidden
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, scopes: &[Scope]) -> fmt::Result {
    for (i, scope) in scopes.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(scope.as_str())?;
    }
    Ok(())
}

impl fmt::Display for MissingScopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("insufficient scope")?;
        if !self.missing.is_empty() {
            f.write_str(": missing ")?;
            write_list(f, &self.missing)?;
        }
        if !self.forbidden.is_empty() {
            f.write_str(if self.missing.is_empty() { ": " } else { "; " })?;
            f.write_str("must not hold ")?;
            write_list(f, &self.forbidden)?;
        }
        Ok(())
    }
}

impl std::error::Error for MissingScopes {}
