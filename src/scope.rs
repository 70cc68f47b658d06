//! Scopes: what a key may do, and what a route or call needs.
//!
//! A [`Scope`] is one or more segments joined by `:` (`users:read`, `billing:invoices:write`).
//! A key holds a [`ScopeSet`] of grants (its own scopes plus those of its [`Roles`]); a
//! route states a [`Requirement`] such as `users:read and (billing:read or admin:*)`.
//!
//! # Grant rules
//!
//! - A segment without wildcard matches only itself.
//! - A granted `*` segment matches exactly one segment, except as the grant's last segment,
//!   where it matches one or more remaining segments. So `*` alone grants everything.
//! - A grant never covers a shorter scope: `users:*` does not cover `users`.
//!
//! | granted        | required          | covered | why                                        |
//! |----------------|-------------------|---------|--------------------------------------------|
//! | `users`        | `users`           | yes     | equal                                      |
//! | `users`        | `users:read`      | no      | no wildcard: covers only itself            |
//! | `users:read`   | `users`           | no      | a grant never covers a shorter scope       |
//! | `users:*`      | `users:read`      | yes     | trailing `*`: one or more segments         |
//! | `users:*`      | `users:read:self` | yes     | trailing `*`: one or more segments         |
//! | `users:*`      | `users`           | no      | `*` needs at least one segment             |
//! | `users:*:self` | `users:read:self` | yes     | inner `*`: exactly one segment             |
//! | `users:*:self` | `users:read`      | no      | `self` is missing                          |
//! | `users:*:self` | `users:a:b:self`  | no      | inner `*`: exactly one segment             |
//! | `*:read`       | `billing:read`    | yes     | inner `*`: exactly one segment             |
//! | `*:read`       | `billing:read:x`  | no      | the grant ends at `read`                   |
//! | `*`            | `anything:at:all` | yes     | `*` alone grants everything                |
//!
//! # Wildcards in requirements
//!
//! Required scopes are normally concrete. A requirement may name a wildcard scope such as
//! `admin:*`: it means "holds *all* of `admin:*`", and it is satisfied only by a grant at
//! least as broad, one that covers every concrete scope the pattern stands for. Holding
//! one scope under `admin:` is not enough, so a check meant for administrators cannot be
//! passed with `admin:read_logs` (fail closed). Precisely: a required `*` in the middle is
//! covered only by a granted `*` (middle or trailing); a required trailing `*` only by a
//! granted trailing `*`.
//!
//! | granted        | required       | satisfied | why                                      |
//! |----------------|----------------|-----------|------------------------------------------|
//! | `admin:*`      | `admin:*`      | yes       | equal                                    |
//! | `*`            | `admin:*`      | yes       | broader                                  |
//! | `*:*`          | `admin:*`      | yes       | broader: any first segment, then 1 or more |
//! | `admin:users`  | `admin:*`      | no        | narrower: one scope under `admin:`       |
//! | `admin:*:read` | `admin:*`      | no        | does not cover `admin:users`             |
//! | `admin:*`      | `admin:*:read` | yes       | trailing `*` covers the rest             |
//! | `admin:*:read` | `admin:*:read` | yes       | equal                                    |
//! | `*:*:read`     | `admin:*:read` | yes       | broader                                  |
//!
//! Under `not`, a wildcard means "none of it": `not admin:*` holds only when no grant
//! overlaps `admin:*` (shares a concrete scope with it), so `users:read and not admin:*`
//! refuses a key that holds `admin:users`. Both readings fail closed, so neither
//! `admin:*` nor `not admin:*` is satisfied by `admin:users` alone; for concrete scopes
//! `not` is the plain negation.
//!
//! # Requirement language
//!
//! ```text
//! requirement = or-expr
//! or-expr     = and-expr *( "or" and-expr )
//! and-expr    = unary *( "and" unary )
//! unary       = "not" unary / primary
//! primary     = scope / "(" or-expr ")"
//! ```
//!
//! `not` binds tightest, then `and`, then `or`: `a or b and not c` is `a or (b and (not
//! c))`. Keywords are lowercase; a scope spelled `and`, `or` or `not` cannot be named.
//! Input is capped at [`MAX_REQUIREMENT_LEN`] bytes and [`MAX_REQUIREMENT_DEPTH`] levels of
//! parentheses and `not`, so hostile text cannot exhaust the stack. Errors carry the byte
//! position of the problem.
//!
//! ```
//! use keymint::{Requirement, RequirementError};
//!
//! let needs = Requirement::parse("users:read  and(billing:read or admin:*)")?;
//! assert_eq!(needs.to_string(), "users:read and (billing:read or admin:*)");
//! assert_eq!(
//!     Requirement::parse("users:read and (billing:read"),
//!     Err(RequirementError::UnclosedParen { position: 15 })
//! );
//! # Ok::<(), RequirementError>(())
//! ```

mod error;
mod exact;
mod expr;
mod missing;
mod parse;
mod program;
mod requirement;
mod roles;
mod set;
mod trie;
mod value;

pub use error::{RequirementError, RoleError, ScopeError};
pub use missing::MissingScopes;
pub use parse::{MAX_REQUIREMENT_DEPTH, MAX_REQUIREMENT_LEN};
pub use requirement::Requirement;
pub use roles::Roles;
pub use set::ScopeSet;
pub use value::{MAX_SCOPE_LEN, MAX_SEGMENT_LEN, MAX_SEGMENTS, Scope};
