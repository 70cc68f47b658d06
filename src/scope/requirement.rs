//! What a route or call needs: `users:read and (billing:read or admin:*)`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::RequirementError;
use super::expr::{Expr, RESERVED};
use super::missing::MissingScopes;
use super::parse;
use super::program::{self, Op};
use super::set::ScopeSet;
use super::value::Scope;

/// A boolean expression over scopes that granted scopes must satisfy.
///
/// Written as text (see the [module docs](super) for the grammar) or built in code. Its
/// `Display` is canonical (single spaces, only the parentheses the structure needs) and
/// parses back to an equal requirement; serde uses that text.
///
/// ```
/// use keymint::{Requirement, Scope, ScopeSet};
///
/// let needs: Requirement = "users:read and (billing:read or admin:*)".parse()?;
///
/// let granted: ScopeSet = [Scope::new("users:*")?, Scope::new("billing:read")?].into_iter().collect();
/// assert!(needs.check(&granted).is_ok());
///
/// let granted: ScopeSet = [Scope::new("users:read")?].into_iter().collect();
/// let denied = needs.check(&granted).unwrap_err();
/// assert_eq!(denied.to_string(), "insufficient scope: missing admin:*, billing:read");
///
/// // The same requirement, built in code.
/// let built = Requirement::scope("users:read")?
///     .and(Requirement::scope("billing:read")?.or(Requirement::scope("admin:*")?));
/// assert_eq!(built, needs);
/// assert_eq!(built.to_string(), "users:read and (billing:read or admin:*)");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Requirements built in code are trusted: unlike parsed ones they are not held to
/// [`MAX_REQUIREMENT_LEN`](super::MAX_REQUIREMENT_LEN) and
/// [`MAX_REQUIREMENT_DEPTH`](super::MAX_REQUIREMENT_DEPTH), so their text round-trips only
/// while it stays within those caps, and checking a tree nested thousands of levels deep
/// would exhaust the stack.
#[derive(Clone)]
pub struct Requirement {
    expr: Expr,
    /// `expr` compiled for checking.
    program: Box<[Op]>,
}

impl Requirement {
    /// Parses `text`; the same as `text.parse()`.
    ///
    /// # Errors
    /// A [`RequirementError`] with the byte position of the first problem: input too
    /// long or nested too deep, an invalid scope, a misplaced operator or parenthesis.
    pub fn parse(text: &str) -> Result<Self, RequirementError> {
        parse::parse(text).map(Self::from_expr)
    }

    fn from_expr(expr: Expr) -> Self {
        let program = program::compile(&expr);
        Self { expr, program }
    }

    /// A requirement of one scope. A scope with wildcards is satisfied only by a grant at
    /// least as broad (see [`ScopeSet::covers`]).
    ///
    /// # Errors
    /// [`RequirementError::InvalidScope`] when `scope` is not a valid [`Scope`],
    /// [`RequirementError::ReservedWord`] when it is `and`, `or` or `not`.
    pub fn scope(scope: &str) -> Result<Self, RequirementError> {
        match Scope::new(scope) {
            Ok(scope) => Self::try_from(scope),
            Err(source) => Err(RequirementError::InvalidScope {
                position: source.position(),
                source,
            }),
        }
    }

    /// Both `self` and `other`. If `self` is already an `and` of several items, `other`
    /// is appended to it, so `a.and(b).and(c)` is `a and b and c`.
    #[must_use]
    pub fn and(self, other: Requirement) -> Self {
        match self.expr {
            Expr::All(mut items) => {
                items.push(other.expr);
                Self::from_expr(Expr::All(items))
            }
            first => Self::from_expr(Expr::All(vec![first, other.expr])),
        }
    }

    /// Either `self` or `other`. If `self` is already an `or` of several items, `other` is
    /// appended to it, so `a.or(b).or(c)` is `a or b or c`.
    #[must_use]
    pub fn or(self, other: Requirement) -> Self {
        match self.expr {
            Expr::Any(mut items) => {
                items.push(other.expr);
                Self::from_expr(Expr::Any(items))
            }
            first => Self::from_expr(Expr::Any(vec![first, other.expr])),
        }
    }

    /// Not `self`: satisfied when `self` is not. Also available as the `!` operator.
    ///
    /// A wildcard scope under `not` means "none of it": `not admin:*` is refused when any
    /// grant overlaps `admin:*` (see [`ScopeSet::overlaps`]), so that a wildcard never
    /// makes a requirement easier to meet.
    #[allow(clippy::should_implement_trait)] // it is implemented too, by calling this
    #[must_use]
    pub fn not(self) -> Self {
        Self::from_expr(Expr::Not(Box::new(self.expr)))
    }

    /// All of `items`: `None` when there are none (an empty `and` has no text form), the
    /// item itself when there is one.
    ///
    /// ```
    /// use keymint::Requirement;
    ///
    /// let all = Requirement::all([Requirement::scope("a")?, Requirement::scope("b")?]);
    /// assert_eq!(all.map(|r| r.to_string()).as_deref(), Some("a and b"));
    /// assert!(Requirement::all([]).is_none());
    /// # Ok::<(), keymint::RequirementError>(())
    /// ```
    pub fn all(items: impl IntoIterator<Item = Requirement>) -> Option<Self> {
        Self::collect(items, Expr::All)
    }

    /// Any of `items`: `None` when there are none, the item itself when there is one.
    pub fn any(items: impl IntoIterator<Item = Requirement>) -> Option<Self> {
        Self::collect(items, Expr::Any)
    }

    fn collect(
        items: impl IntoIterator<Item = Requirement>,
        wrap: fn(Vec<Expr>) -> Expr,
    ) -> Option<Self> {
        let mut items: Vec<Expr> = items.into_iter().map(|r| r.expr).collect();
        match items.len() {
            0 => None,
            1 => items.pop().map(Self::from_expr),
            _ => Some(Self::from_expr(wrap(items))),
        }
    }

    /// Whether `granted` satisfies the requirement. Never allocates.
    pub fn is_satisfied_by(&self, granted: &ScopeSet) -> bool {
        let satisfied = program::run(&self.program, granted);
        // The compiled program and the tree must agree; every debug-build test checks it.
        debug_assert_eq!(satisfied, eval(&self.expr, granted, true), "{self:?}");
        satisfied
    }

    /// Checks `granted` against the requirement.
    ///
    /// # Errors
    /// [`MissingScopes`] when the requirement is not satisfied, naming the required
    /// scopes that are not covered (for `a and (b or c)` with nothing granted: `a`, `b`
    /// and `c`) and the scopes under a `not` that are covered.
    pub fn check(&self, granted: &ScopeSet) -> Result<(), MissingScopes> {
        if self.is_satisfied_by(granted) {
            return Ok(());
        }
        let mut report = MissingScopes {
            missing: Vec::new(),
            forbidden: Vec::new(),
        };
        explain(&self.expr, granted, true, &mut report);
        for list in [&mut report.missing, &mut report.forbidden] {
            list.sort_unstable();
            list.dedup();
        }
        Err(report)
    }

    /// Every scope the requirement mentions, in text order, repeats included.
    ///
    /// ```
    /// let needs = keymint::Requirement::parse("a and not (b or a)")?;
    /// let named: Vec<_> = needs.scopes().map(|s| s.as_str()).collect();
    /// assert_eq!(named, ["a", "b", "a"]);
    /// # Ok::<(), keymint::RequirementError>(())
    /// ```
    pub fn scopes(&self) -> impl Iterator<Item = &Scope> + '_ {
        let mut out = Vec::new();
        collect_scopes(&self.expr, &mut out);
        out.into_iter()
    }
}

fn collect_scopes<'a>(expr: &'a Expr, out: &mut Vec<&'a Scope>) {
    match expr {
        Expr::Scope(scope) => out.push(scope),
        Expr::Not(inner) => collect_scopes(inner, out),
        Expr::All(items) | Expr::Any(items) => {
            for item in items {
                collect_scopes(item, out);
            }
        }
    }
}

/// Evaluates `expr`, failing closed on wildcards in both directions: under an even number
/// of `not`s (`positive`) a wildcard scope must be covered entirely (`admin:*` needs a
/// grant at least as broad), under an odd number it must not be touched at all (`not
/// admin:*` fails if any grant overlaps `admin:*`, such as `admin:users`). So neither
/// `admin:*` nor `not admin:*` holds for a key with `admin:users`: wildcards never make a
/// requirement easier to meet. For concrete scopes both readings agree, and `not` is the
/// plain negation.
fn eval(expr: &Expr, granted: &ScopeSet, positive: bool) -> bool {
    match expr {
        Expr::Scope(scope) if positive => granted.covers(scope),
        Expr::Scope(scope) => granted.overlaps(scope),
        Expr::Not(inner) => !eval(inner, granted, !positive),
        Expr::All(items) => items.iter().all(|item| eval(item, granted, positive)),
        Expr::Any(items) => items.iter().any(|item| eval(item, granted, positive)),
    }
}

/// Collects the scopes that make `expr` evaluate to `!want`, for an `expr` that does.
/// Under `want == true` an uncovered scope is missing; under `want == false` (inside an
/// odd number of `not`s) a covered scope is forbidden.
fn explain(expr: &Expr, granted: &ScopeSet, want: bool, report: &mut MissingScopes) {
    match expr {
        Expr::Scope(scope) => {
            if want {
                report.missing.push(scope.clone());
            } else {
                report.forbidden.push(scope.clone());
            }
        }
        Expr::Not(inner) => explain(inner, granted, !want, report),
        // An `and` that should hold but does not: each failing item is to blame.
        // An `or` that should not hold but does: each holding item is to blame.
        Expr::All(items) | Expr::Any(items) if matches!(expr, Expr::All(_)) == want => {
            for item in items
                .iter()
                .filter(|item| eval(item, granted, want) != want)
            {
                explain(item, granted, want, report);
            }
        }
        // An `or` that should hold but does not, or an `and` that should not hold but
        // does: every item is to blame (and every item evaluates to `!want`).
        Expr::All(items) | Expr::Any(items) => {
            for item in items {
                explain(item, granted, want, report);
            }
        }
    }
}

impl std::ops::Not for Requirement {
    type Output = Requirement;
    fn not(self) -> Self::Output {
        Requirement::not(self)
    }
}

impl TryFrom<Scope> for Requirement {
    type Error = RequirementError;

    /// # Errors
    /// [`RequirementError::ReservedWord`] for the scopes `and`, `or` and `not`.
    fn try_from(scope: Scope) -> Result<Self, Self::Error> {
        if RESERVED.contains(&scope.as_str()) {
            Err(RequirementError::ReservedWord { position: 0 })
        } else {
            Ok(Self::from_expr(Expr::Scope(scope)))
        }
    }
}

impl FromStr for Requirement {
    type Err = RequirementError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Scope(scope) => f.write_str(scope.as_str()),
            Expr::Not(inner) => match **inner {
                Expr::Scope(_) | Expr::Not(_) => write!(f, "not {inner}"),
                Expr::All(_) | Expr::Any(_) => write!(f, "not ({inner})"),
            },
            Expr::All(items) => write_joined(f, items, " and ", |item| {
                matches!(item, Expr::All(_) | Expr::Any(_))
            }),
            Expr::Any(items) => write_joined(f, items, " or ", |item| matches!(item, Expr::Any(_))),
        }
    }
}

fn write_joined(
    f: &mut fmt::Formatter<'_>,
    items: &[Expr],
    separator: &str,
    needs_parens: fn(&Expr) -> bool,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        if needs_parens(item) {
            write!(f, "({item})")?;
        } else {
            write!(f, "{item}")?;
        }
    }
    Ok(())
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

impl PartialEq for Requirement {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl Eq for Requirement {}

impl std::hash::Hash for Requirement {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.expr.hash(state);
    }
}

impl fmt::Debug for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Requirement(\"{}\")", self.expr)
    }
}

impl Serialize for Requirement {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.expr)
    }
}

impl<'de> Deserialize<'de> for Requirement {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}
