//! A rate limit a key carries in its own record: `limit` requests per `period`.

use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::Policy;
use super::quota::Quota;

/// A key's own rate limit, stored in its record and applied like a policy (named `key` in
/// the `RateLimit` fields): up to `limit` requests at once, refilled over `period`.
/// Serialised as `{"limit", "period_ms"}`.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use keymint::ratelimit::KeyLimit;
///
/// let limit = KeyLimit::new(NonZeroU32::new(100).unwrap(), Duration::from_secs(60)).unwrap();
/// assert_eq!(limit.policy().name(), "key");
/// assert!(KeyLimit::new(NonZeroU32::MIN, Duration::from_micros(1500)).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "KeyLimitRepr", into = "KeyLimitRepr")]
pub struct KeyLimit {
    limit: NonZeroU32,
    period: Duration,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
struct KeyLimitRepr {
    limit: NonZeroU32,
    period_ms: u64,
}

impl KeyLimit {
    /// The name of the policy it becomes.
    pub const POLICY_NAME: &'static str = "key";

    /// `limit` requests per `period`. `None` when the period is zero, not a whole number of
    /// milliseconds (its stored resolution), or over ten years.
    pub fn new(limit: NonZeroU32, period: Duration) -> Option<Self> {
        let whole_ms = period.subsec_nanos().is_multiple_of(1_000_000);
        let in_range = !period.is_zero() && period <= Duration::from_secs(10 * 366 * 86_400);
        (whole_ms && in_range && Quota::new(limit, period).is_some())
            .then_some(Self { limit, period })
    }

    /// Requests per period.
    pub fn limit(&self) -> NonZeroU32 {
        self.limit
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The one-limit policy it is applied as.
    pub fn policy(&self) -> Policy {
        let quota = Quota::new(self.limit, self.period).unwrap_or(Quota::per_second(self.limit));
        #[allow(clippy::expect_used)] // the name is a valid constant
        Policy::single(Self::POLICY_NAME, quota).expect("valid policy name")
    }
}

impl From<KeyLimit> for KeyLimitRepr {
    fn from(k: KeyLimit) -> Self {
        Self {
            limit: k.limit,
            period_ms: u64::try_from(k.period.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl TryFrom<KeyLimitRepr> for KeyLimit {
    type Error = &'static str;
    fn try_from(r: KeyLimitRepr) -> Result<Self, Self::Error> {
        KeyLimit::new(r.limit, Duration::from_millis(r.period_ms))
            .ok_or("key rate limit needs a positive period of at most ten years")
    }
}
