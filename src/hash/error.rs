//! Errors of hashing at rest.

use thiserror::Error;

use crate::random::RngError;

/// Hashing a secret or reading a stored hash failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HashError {
    /// The stored string is not a well-formed PHC string.
    #[error("malformed stored hash: {0}")]
    Malformed(&'static str),
    /// The stored hash names an algorithm that no configured hasher accepts.
    #[error("stored hash uses algorithm {0:?}, which is not accepted")]
    UnsupportedAlgorithm(String),
    /// The stored hash's parameters are outside what this crate will compute (for example an
    /// Argon2 memory cost over the cap, which would let a tampered record exhaust memory).
    #[error("stored hash has unsupported parameters: {0}")]
    UnsupportedParams(&'static str),
    /// The stored hash was made with a pepper (HMAC key) that is not configured.
    #[error("stored hash uses pepper {0:?}, which is not configured")]
    UnknownPepper(String),
    /// Hasher configuration out of range.
    #[error("invalid hasher configuration: {0}")]
    InvalidConfig(&'static str),
    /// No randomness for a salt.
    #[error(transparent)]
    Rng(#[from] RngError),
    /// The hash function itself failed.
    #[error("hash computation failed: {0}")]
    Backend(&'static str),
}
