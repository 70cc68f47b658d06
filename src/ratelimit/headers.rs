//! HTTP header field values: `RateLimit-Policy`, `RateLimit` (IETF httpapi
//! draft-ietf-httpapi-ratelimit-headers, structured-field lists) and `Retry-After`.
//!
//! Plain strings, no HTTP crate: put them in whatever response type you use.

use std::fmt::Write as _;

use super::decision::{Decision, ceil_secs};
use super::policy::Policy;
use super::quota::{CalendarWindow, Limit};

/// Header name of the policy field.
pub const RATELIMIT_POLICY: &str = "RateLimit-Policy";
/// Header name of the current-state field.
pub const RATELIMIT: &str = "RateLimit";
/// Header name of the retry delay on a 429.
pub const RETRY_AFTER: &str = "Retry-After";

/// The three values for a response, built from a policy and the decision for a request.
///
/// ```
/// use std::num::NonZeroU32;
/// use keymint::ManualClock;
/// use keymint::ratelimit::{MemoryLimiter, Policy, Quota, RateLimitHeaders};
///
/// let policy = Policy::single("default", Quota::per_minute(NonZeroU32::new(100).unwrap()))?;
/// let limiter = MemoryLimiter::with_clock(ManualClock::default());
/// let decision = limiter.check_now("k", &policy, 1)?;
/// let h = RateLimitHeaders::new(&policy, &decision);
/// assert_eq!(h.policy, r#""default";q=100;w=60"#);
/// assert_eq!(h.ratelimit, r#""default";r=99;t=1"#);
/// assert_eq!(h.retry_after, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitHeaders {
    /// Value of `RateLimit-Policy`: every limit of the policy.
    pub policy: String,
    /// Value of `RateLimit`: the limit the decision describes.
    pub ratelimit: String,
    /// Value of `Retry-After` (delay-seconds, rounded up) for a denial with a known wait.
    pub retry_after: Option<String>,
}

impl RateLimitHeaders {
    /// Builds all three values.
    pub fn new(policy: &Policy, decision: &Decision) -> Self {
        Self {
            policy: policy_field(policy),
            ratelimit: ratelimit_field(policy, decision),
            retry_after: retry_after_field(decision),
        }
    }
}

/// `RateLimit-Policy`: one item per limit, `"name";q=<quota>;w=<window seconds>`.
/// Items after the first are named `name.1`, `name.2`, ... For a GCRA quota `q` is the
/// burst and `w` the time to refill it completely (rounded up); for a calendar month,
/// whose length varies, `w` is left out.
pub fn policy_field(policy: &Policy) -> String {
    let mut out = String::with_capacity(32 * policy.limits().len());
    for (i, limit) in policy.limits().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "\"{}\";q={}", policy.item_name(i), limit.max());
        let window = match limit {
            Limit::Rate(q) => Some(ceil_secs(q.window()).max(1)),
            Limit::Calendar(c) => match c.window() {
                CalendarWindow::UtcDay => Some(86_400),
                CalendarWindow::UtcMonth => None,
            },
        };
        if let Some(w) = window {
            let _ = write!(out, ";w={w}");
        }
    }
    out
}

/// `RateLimit`: `"name";r=<remaining>;t=<seconds until reset, rounded up>` for the limit
/// the decision describes (`t` is left out when it never resets).
pub fn ratelimit_field(policy: &Policy, decision: &Decision) -> String {
    let mut out = format!(
        "\"{}\";r={}",
        policy.item_name(decision.limit_index),
        decision.remaining
    );
    if decision.reset_after != std::time::Duration::MAX {
        let _ = write!(out, ";t={}", ceil_secs(decision.reset_after));
    }
    out
}

/// `Retry-After` in delay-seconds, rounded up and at least 1, for a denial with a known
/// wait; `None` otherwise.
pub fn retry_after_field(decision: &Decision) -> Option<String> {
    if decision.allowed {
        return None;
    }
    decision.retry_after_secs().map(|s| s.to_string())
}
