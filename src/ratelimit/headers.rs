//! HTTP header field values: `RateLimit-Policy`, `RateLimit` (IETF httpapi
//! draft-ietf-httpapi-ratelimit-headers, revision -10 of 2025-09, structured-field lists)
//! and `Retry-After`.
//!
//! In revision -10 the `t` parameter of `RateLimit` is "the number of seconds until
//! additional quota associated with the quota policy is made available" (earlier revisions:
//! until the quota resets; later ones redefine it again). That is what `t` reports here:
//! for a GCRA limit the time until one more request would be admitted (so it is at most
//! the replenish interval), for a calendar window the time until it ends; `t` is left out
//! when nothing has been used, since no additional quota is coming. `Retry-After` on a
//! denial is never earlier than `t`.
//!
//! Plain strings, no HTTP crate: put them in whatever response type you use.

use std::fmt::Write as _;
use std::time::Duration;

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

/// `RateLimit`: `"name";r=<remaining>;t=<seconds until more quota, rounded up>` for the
/// limit the decision describes (`t` is left out when no additional quota is coming).
pub fn ratelimit_field(policy: &Policy, decision: &Decision) -> String {
    let mut out = format!(
        "\"{}\";r={}",
        policy.item_name(decision.limit_index),
        decision.remaining
    );
    let more = policy
        .limits()
        .get(decision.limit_index)
        .and_then(|limit| more_after(limit, decision));
    if let Some(more) = more {
        let _ = write!(out, ";t={}", ceil_secs(more).max(1));
    }
    out
}

/// Time until the limit admits one more unit than `decision.remaining`, or `None` when it
/// is already full (nothing more will come).
pub fn more_after(limit: &Limit, decision: &Decision) -> Option<Duration> {
    match limit {
        Limit::Rate(q) => {
            // For GCRA, `reset_after` is the debt: how far the theoretical arrival time is
            // ahead of now. One more unit is free once the debt has fallen by enough.
            if decision.reset_after == Duration::MAX {
                return None; // never (a credits-style decision)
            }
            let debt = u64::try_from(decision.reset_after.as_nanos()).unwrap_or(u64::MAX);
            if debt == 0 {
                return None;
            }
            let next_free = decision
                .remaining
                .saturating_add(1)
                .saturating_mul(q.interval_ns());
            let wait = debt.saturating_add(next_free).saturating_sub(q.tau_ns());
            Some(Duration::from_nanos(wait.max(1)))
        }
        Limit::Calendar(_) => (decision.remaining < decision.limit
            && decision.reset_after != Duration::MAX)
            .then_some(decision.reset_after),
    }
}

/// `Retry-After` in delay-seconds, rounded up and at least 1, for a denial with a known
/// wait; `None` otherwise.
pub fn retry_after_field(decision: &Decision) -> Option<String> {
    if decision.allowed {
        return None;
    }
    decision.retry_after_secs().map(|s| s.to_string())
}
