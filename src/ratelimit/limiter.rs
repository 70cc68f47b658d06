//! The backend trait.

use std::future::Future;

use super::decision::Decision;
use super::error::RateLimitError;
use super::policy::Policy;

/// A rate-limit backend: decides whether `key` may spend `cost` under `policy`.
///
/// Implementations must guarantee:
///
/// * **All or nothing.** The request is admitted only if every limit of the policy admits
///   it; a denied request is charged to none of them. Under concurrency a backend may be
///   conservative (deny a request that a strictly sequential order would admit) but must
///   never admit beyond any limit.
/// * **Peek.** `cost == 0` reports the state (would a request of cost 1 pass, how many
///   remain) and changes nothing.
/// * **Weights.** `cost >= 1` charges that many units to every limit. A cost above a
///   limit's burst can never be admitted and is an error
///   ([`RateLimitError::CostTooHigh`]), not a denial.
/// * **Keys are opaque.** Any string, including hostile ones, must map to its own state;
///   backends bound their work by the key's length and never echo it in errors.
///
/// Written with `-> impl Future + Send` so implementors can use `async fn`.
pub trait RateLimiter: Send + Sync + 'static {
    /// Checks and, when admitted, charges `cost` to `key` under `policy`.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::CostTooHigh`] for a cost no limit can admit;
    /// [`RateLimitError::Unavailable`] when the backend fails (subject to the backend's
    /// failure policy); [`RateLimitError::TableFull`] when a bounded in-memory table is full.
    fn check(
        &self,
        key: &str,
        policy: &Policy,
        cost: u32,
    ) -> impl Future<Output = Result<Decision, RateLimitError>> + Send;
}
