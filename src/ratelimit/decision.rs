//! The answer to one rate-limit check.

use std::time::Duration;

/// Whether a request may proceed, with what the HTTP `RateLimit` and `Retry-After` fields
/// need. For a policy with several limits it describes the most restrictive one: the limit
/// with the fewest requests left when allowed, the one that forces the longest wait when
/// denied ([`limit_index`](Decision::limit_index) says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Decision {
    /// The request was admitted (and charged), or for a peek (cost 0): a request of cost 1
    /// would be admitted now.
    pub allowed: bool,
    /// The limit this decision describes: most requests admitted at once.
    pub limit: u64,
    /// Requests of cost 1 still admissible right now, after this one.
    pub remaining: u64,
    /// Time until that limit is fully replenished (GCRA) or its window ends (calendar,
    /// credits). `Duration::MAX` when it never resets.
    pub reset_after: Duration,
    /// For a denial: the time after which the same request would be admitted, if nothing
    /// else is admitted meanwhile. `None` when allowed, or when it can never be admitted
    /// (credits without refill).
    pub retry_after: Option<Duration>,
    /// Index in the policy of the limit described.
    pub limit_index: usize,
}

impl Decision {
    /// An admitted request (for custom [`RateLimiter`](super::RateLimiter) backends).
    pub const fn allow(limit: u64, remaining: u64, reset_after: Duration) -> Self {
        Self {
            allowed: true,
            limit,
            remaining,
            reset_after,
            retry_after: None,
            limit_index: 0,
        }
    }

    /// A denied request (for custom [`RateLimiter`](super::RateLimiter) backends).
    pub const fn deny(
        limit: u64,
        remaining: u64,
        reset_after: Duration,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            allowed: false,
            limit,
            remaining,
            reset_after,
            retry_after,
            limit_index: 0,
        }
    }

    /// The same decision attributed to limit `index` of its policy.
    #[must_use]
    pub const fn with_limit_index(mut self, index: usize) -> Self {
        self.limit_index = index;
        self
    }

    /// `Retry-After` in whole seconds (delay-seconds), rounded up, at least 1; `None` when
    /// allowed or never.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| ceil_secs(d).max(1))
    }

    /// Merges the per-limit decisions of one policy into the one to report: the longest
    /// wait among denials, else the fewest remaining (ties: the later reset).
    pub(crate) fn most_restrictive(self, other: Self) -> Self {
        match (self.allowed, other.allowed) {
            (true, false) => other,
            (false, true) => self,
            (false, false) => {
                let a = self.retry_after.unwrap_or(Duration::MAX);
                let b = other.retry_after.unwrap_or(Duration::MAX);
                if b > a { other } else { self }
            }
            (true, true) => {
                if (other.remaining, std::cmp::Reverse(other.reset_after))
                    < (self.remaining, std::cmp::Reverse(self.reset_after))
                {
                    other
                } else {
                    self
                }
            }
        }
    }
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
