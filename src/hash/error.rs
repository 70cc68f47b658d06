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
    /// A pepper could not be loaded from its source. `origin` names the source (an
    /// environment variable, a file) and `reason` what is wrong with it; neither ever holds
    /// the pepper's bytes.
    #[error("pepper from {origin}: {reason}")]
    PepperSource {
        /// Where the pepper was to come from, such as `environment variable KEYMINT_PEPPER`.
        origin: String,
        /// What is wrong: not set, too short, readable by others, …
        reason: String,
    },
    /// The pepper's key cannot be used now: its hardware module or key service is
    /// unreachable, refused the login, lost the session, or does not hold the key. The hash
    /// is neither written nor checked (there is no fallback to another pepper or to none),
    /// so a verification fails closed; the keyring answers
    /// `VerifyError::PepperUnavailable` (503).
    #[error("pepper unavailable: {0}")]
    PepperUnavailable(String),
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

impl HashError {
    /// Whether the error says a pepper's key could not be reached (a condition that may
    /// pass, such as a hardware module being unavailable), rather than that the stored hash
    /// or the configuration is wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::PepperUnavailable(_))
    }
}
