//! A request refused by a rate limit: the policy and the decision, which together give the
//! HTTP fields of the 429 response.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::decision::Decision;
use super::headers::RateLimitHeaders;
use super::policy::Policy;

/// A request refused by a rate limit: which policy, and the decision with its retry time.
#[derive(Clone)]
pub struct RateLimitDenial {
    policy: Arc<Policy>,
    decision: Decision,
}

impl RateLimitDenial {
    /// A denial by `policy` (for custom backends and layers that refuse on their own).
    pub fn new(policy: Arc<Policy>, decision: Decision) -> Self {
        Self { policy, decision }
    }

    /// The policy that refused.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The decision: limit, remaining, reset and retry times.
    pub fn decision(&self) -> &Decision {
        &self.decision
    }

    /// When the same request would be admitted, if known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.decision.retry_after
    }

    /// `RateLimit-Policy`, `RateLimit` and `Retry-After` values for the 429 response.
    pub fn headers(&self) -> RateLimitHeaders {
        RateLimitHeaders::new(&self.policy, &self.decision)
    }
}

impl fmt::Debug for RateLimitDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitDenial")
            .field("policy", &self.policy.name())
            .field("decision", &self.decision)
            .finish()
    }
}

impl fmt::Display for RateLimitDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy {:?}", self.policy.name())?;
        if let Some(secs) = self.decision.retry_after_secs() {
            write!(f, ", retry after {secs} s")?;
        }
        Ok(())
    }
}
