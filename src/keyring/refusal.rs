//! Why a verification stopped: one value that yields both the precise reason for the audit
//! sink and the error the caller sees (where an unknown id, a wrong secret and a key moved
//! to another prefix are one [`VerifyError::Invalid`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use super::events::FailureReason;
use crate::hash::HashError;
use crate::keyring::VerifyError;
use crate::ratelimit::RateLimitDenial;
use crate::ratelimit::RateLimitError;
use crate::record::Environment;
use crate::scope::MissingScopes;
use crate::store::StoreError;

#[derive(Debug)]
pub(crate) enum Refusal {
    NotFound,
    WrongSecret,
    /// The secret matched a record stored under another prefix.
    WrongPrefix,
    /// The record was issued as another kind or environment than its type now says.
    WrongType,
    /// A derived token that is not believed: malformed, signed by an unknown key, a bad
    /// signature, claims that are not ours, or a parent that does not match them.
    #[cfg_attr(not(feature = "tokens"), allow(dead_code))]
    BadToken,
    WrongEnvironment {
        key: Environment,
        served: Environment,
    },
    OriginNotAllowed,
    SecretKeyInBrowser,
    Revoked,
    Disabled,
    Expired,
    NotYetValid,
    ClientNotAllowed,
    /// A key bound to client certificates, on a connection that presented none.
    CertificateRequired,
    /// A key bound to client certificates, on a connection that presented another one.
    CertificateMismatch,
    InsufficientScope(MissingScopes),
    RateLimited(RateLimitDenial),
    Throttled(RateLimitDenial),
    UnknownPolicy,
    InvalidCost(RateLimitError),
    LimiterUnavailable(RateLimitError),
    UsageExhausted {
        retry_after: Option<std::time::Duration>,
    },
    Overloaded,
    StoreUnavailable(StoreError),
    /// The pepper's key could not be used (a [`HashError::is_unavailable`] error).
    PepperUnavailable(HashError),
    Internal(HashError),
}

impl Refusal {
    /// A hashing failure: a pepper that cannot be reached now, or anything else.
    pub(crate) fn from_hash(error: HashError) -> Self {
        if error.is_unavailable() {
            Self::PepperUnavailable(error)
        } else {
            Self::Internal(error)
        }
    }

    pub(crate) fn reason(&self) -> FailureReason {
        match self {
            Self::NotFound => FailureReason::NotFound,
            Self::WrongSecret => FailureReason::WrongSecret,
            Self::WrongPrefix => FailureReason::WrongPrefix,
            Self::WrongType => FailureReason::WrongType,
            Self::BadToken => FailureReason::InvalidToken,
            Self::WrongEnvironment { .. } => FailureReason::WrongEnvironment,
            Self::OriginNotAllowed => FailureReason::OriginNotAllowed,
            Self::SecretKeyInBrowser => FailureReason::SecretKeyInBrowser,
            Self::Revoked => FailureReason::Revoked,
            Self::Disabled => FailureReason::Disabled,
            Self::Expired => FailureReason::Expired,
            Self::NotYetValid => FailureReason::NotYetValid,
            Self::ClientNotAllowed => FailureReason::ClientNotAllowed,
            Self::CertificateRequired => FailureReason::CertificateRequired,
            Self::CertificateMismatch => FailureReason::CertificateMismatch,
            Self::InsufficientScope(_) => FailureReason::InsufficientScope,
            Self::RateLimited(_) => FailureReason::RateLimited,
            Self::Throttled(_) => FailureReason::Throttled,
            Self::UsageExhausted { .. } => FailureReason::UsageExhausted,
            Self::Overloaded => FailureReason::Overloaded,
            Self::UnknownPolicy
            | Self::InvalidCost(_)
            | Self::LimiterUnavailable(_)
            | Self::StoreUnavailable(_)
            | Self::PepperUnavailable(_)
            | Self::Internal(_) => FailureReason::Unavailable,
        }
    }

    /// Whether the presented credential failed to authenticate (what the failed-attempt
    /// throttle counts).
    pub(crate) fn is_authentication_failure(&self) -> bool {
        matches!(
            self,
            Self::NotFound
                | Self::WrongSecret
                | Self::WrongPrefix
                | Self::WrongType
                | Self::BadToken
        )
    }

    /// Whether the refusal is the server's fault rather than the request's: worth a
    /// (rate-limited) warning.
    pub(crate) fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::UnknownPolicy
                | Self::InvalidCost(_)
                | Self::LimiterUnavailable(_)
                | Self::StoreUnavailable(_)
                | Self::PepperUnavailable(_)
                | Self::Internal(_)
                | Self::Overloaded
        )
    }

    /// The [`VerifyError::code`] that [`into_error`](Self::into_error) will have.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::NotFound
            | Self::WrongSecret
            | Self::WrongPrefix
            | Self::WrongType
            | Self::BadToken => "invalid",
            Self::WrongEnvironment { .. } => "wrong_environment",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::SecretKeyInBrowser => "secret_key_in_browser",
            Self::Revoked => "revoked",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::ClientNotAllowed => "client_not_allowed",
            Self::CertificateRequired => "certificate_required",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::RateLimited(_) => "rate_limited",
            Self::Throttled(_) => "throttled",
            Self::UnknownPolicy => "unknown_policy",
            Self::InvalidCost(_) => "invalid_cost",
            Self::LimiterUnavailable(_) => "rate_limiter_unavailable",
            Self::UsageExhausted { .. } => "usage_exhausted",
            Self::Overloaded => "overloaded",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::PepperUnavailable(_) => "pepper_unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub(crate) fn into_error(self) -> VerifyError {
        match self {
            Self::NotFound
            | Self::WrongSecret
            | Self::WrongPrefix
            | Self::WrongType
            | Self::BadToken => VerifyError::Invalid,
            Self::WrongEnvironment { key, served } => VerifyError::WrongEnvironment { key, served },
            Self::OriginNotAllowed => VerifyError::OriginNotAllowed,
            Self::SecretKeyInBrowser => VerifyError::SecretKeyInBrowser,
            Self::Revoked => VerifyError::Revoked,
            Self::Disabled => VerifyError::Disabled,
            Self::Expired => VerifyError::Expired,
            Self::NotYetValid => VerifyError::NotYetValid,
            Self::ClientNotAllowed => VerifyError::ClientNotAllowed,
            Self::CertificateRequired => VerifyError::CertificateRequired,
            Self::CertificateMismatch => VerifyError::CertificateMismatch,
            Self::InsufficientScope(missing) => VerifyError::InsufficientScope(missing),
            Self::RateLimited(denial) => VerifyError::RateLimited(denial),
            Self::Throttled(denial) => VerifyError::Throttled(denial),
            Self::UnknownPolicy => VerifyError::UnknownPolicy,
            Self::InvalidCost(e) => VerifyError::InvalidCost(e),
            Self::LimiterUnavailable(e) => VerifyError::RateLimiterUnavailable(e),
            Self::UsageExhausted { retry_after } => VerifyError::UsageExhausted { retry_after },
            Self::Overloaded => VerifyError::Overloaded,
            Self::StoreUnavailable(e) => VerifyError::StoreUnavailable(e),
            Self::PepperUnavailable(e) => VerifyError::PepperUnavailable(e),
            Self::Internal(e) => VerifyError::Internal(e),
        }
    }
}

/// Lets one warning through per interval and counts the rest, so that a failing store
/// under a flood of requests writes one line every few seconds, not one per request.
#[derive(Debug)]
pub(crate) struct WarnEvery {
    interval_secs: i64,
    next_secs: AtomicI64,
    suppressed: AtomicU64,
}

impl WarnEvery {
    pub(crate) const fn new(interval_secs: i64) -> Self {
        Self {
            interval_secs,
            next_secs: AtomicI64::new(i64::MIN),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether to log now (at unix second `now_secs`), and how many warnings were
    /// suppressed since the last one that was let through.
    pub(crate) fn admit(&self, now_secs: i64) -> Option<u64> {
        let next = self.next_secs.load(Ordering::Relaxed);
        if now_secs >= next
            && self
                .next_secs
                .compare_exchange(
                    next,
                    now_secs.saturating_add(self.interval_secs),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_let_through_once_per_interval_with_a_count_of_the_rest() {
        let every = WarnEvery::new(10);
        assert_eq!(every.admit(100), Some(0));
        assert_eq!(every.admit(100), None);
        assert_eq!(every.admit(109), None);
        assert_eq!(every.admit(110), Some(2));
        assert_eq!(every.admit(111), None);
    }
}
