//! The expression tree behind a requirement, shared by the parser, the compiler and the
//! requirement itself.

use super::value::Scope;

/// The tree behind a [`Requirement`]. `All` and `Any` always have two or more items.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Expr {
    Scope(Scope),
    Not(Box<Expr>),
    All(Vec<Expr>),
    Any(Vec<Expr>),
}

/// Words the requirement language keeps for itself; a single-segment scope spelled like
/// one cannot appear in a requirement.
pub(crate) const RESERVED: [&str; 3] = ["and", "or", "not"];
