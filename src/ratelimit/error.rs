//! Rate-limit errors.

use std::error::Error as StdError;
use std::sync::Arc;

use thiserror::Error;

/// A policy could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The name is empty, longer than [`MAX_NAME_LEN`](super::Policy::MAX_NAME_LEN), or
    /// has characters outside `A-Za-z0-9_.-`.
    #[error("invalid policy name: expected 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'")]
    InvalidName,
    /// No limits, or more than [`MAX_LIMITS`](super::Policy::MAX_LIMITS).
    #[error("a policy needs 1 to {max} limits, got {found}")]
    LimitCount {
        /// Limits given.
        found: usize,
        /// Most allowed.
        max: usize,
    },
}

/// A rate-limit check could not be decided.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum RateLimitError {
    /// The cost is above what one of the policy's limits can ever admit (its burst or
    /// window limit). Such a request would be denied forever, so it is reported as a
    /// programming or configuration error instead of a denial with no retry time.
    #[error("cost {cost} exceeds the largest admissible cost {max} of limit {limit_index}")]
    CostTooHigh {
        /// Requested cost.
        cost: u32,
        /// Largest cost the limit admits.
        max: u32,
        /// Index of the limit in its policy.
        limit_index: usize,
    },
    /// The in-memory table is at its key cap and holds no idle key to evict.
    #[error("rate-limit table is full ({max_keys} keys)")]
    TableFull {
        /// The configured cap.
        max_keys: usize,
    },
    /// The backend (for example Redis) could not be reached or failed.
    #[error("rate-limit backend unavailable")]
    Unavailable(#[source] Arc<dyn StdError + Send + Sync>),
}
