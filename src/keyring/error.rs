//! Errors of the keyring: why a presented key was refused, and why a management operation
//! failed. Every `Display` is a lowercase fragment without a trailing period, and no error
//! carries secret material.

use thiserror::Error;

use crate::format::ParseError;
use crate::hash::HashError;
use crate::random::RngError;
use crate::ratelimit::{RateLimitDenial, RateLimitError, RateLimitHeaders};
use crate::record::Environment;
use crate::scope::MissingScopes;
use crate::store::StoreError;

/// Why a presented key was not accepted. Each variant maps to an HTTP status
/// ([`status_code`](Self::status_code)) and a stable metrics label ([`code`](Self::code)).
///
/// An unknown id and a wrong secret are one variant, [`VerifyError::Invalid`], so callers
/// cannot tell them apart; the [audit sink](crate::AuditSink) receives the precise reason.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a well-formed key of the keyring's format (checked without I/O).
    #[error("malformed api key: {0}")]
    Malformed(ParseError),
    /// A well-formed key of another prefix.
    #[error("unknown api key prefix")]
    UnknownPrefix,
    /// No such key, or the secret does not match.
    #[error("invalid api key")]
    Invalid,
    /// The key was revoked.
    #[error("api key revoked")]
    Revoked,
    /// The key is disabled.
    #[error("api key disabled")]
    Disabled,
    /// The key is past its expiry (or its rotation grace period).
    #[error("api key expired")]
    Expired,
    /// The key's validity has not started.
    #[error("api key not yet valid")]
    NotYetValid,
    /// A valid key of another environment than the one the request is served in (a test
    /// key against live, say). Nothing was charged.
    #[error("this is a {key} key, but the request was made in {served} mode: use a {served} key")]
    WrongEnvironment {
        /// The key's environment.
        key: Environment,
        /// The request's.
        served: Environment,
    },
    /// A publishable key used from an origin it does not list (or with no origin at all).
    #[error("this publishable key may not be used from this origin")]
    OriginNotAllowed,
    /// A secret or restricted key sent from a browser: it has leaked to client code.
    #[error(
        "secret keys belong on servers: this request came from a browser, use a publishable key there"
    )]
    SecretKeyInBrowser,
    /// The client address is outside the key's allowed networks.
    #[error("client address not allowed for this api key")]
    ClientNotAllowed,
    /// The key is bound to a client certificate, and the connection presented none
    /// (RFC 8705: answered like an invalid token). Nothing was charged.
    #[error("this api key is bound to a client certificate: connect with mutual tls")]
    CertificateRequired,
    /// The key is bound to a client certificate, and the connection presented another one.
    /// Nothing was charged.
    #[error("this api key is bound to another client certificate")]
    CertificateMismatch,
    /// The key does not hold the scopes the request requires.
    #[error("{0}")]
    InsufficientScope(MissingScopes),
    /// The key's rate limit refused the request; nothing was charged.
    #[error("rate limited: {0}")]
    RateLimited(RateLimitDenial),
    /// Too many failed verifications from this client address; checked before any store
    /// or hash work.
    #[error("too many failed attempts: {0}")]
    Throttled(RateLimitDenial),
    /// The key names a rate-limit policy that the keyring does not define: access is
    /// denied until the configuration is fixed.
    #[error("api key names an unknown rate-limit policy")]
    UnknownPolicy,
    /// The rate limiter could not decide (for example Redis is down with a fail-closed
    /// policy): access is denied.
    #[error("rate limiter unavailable")]
    RateLimiterUnavailable(#[source] RateLimitError),
    /// The request's cost is above what the key's policy can ever admit: a bug in the
    /// caller or the policy, not a client error.
    #[error("request cost cannot be admitted by the rate-limit policy")]
    InvalidCost(#[source] RateLimitError),
    /// The key has no uses left (for this request's cost).
    #[error("api key usage exhausted")]
    UsageExhausted {
        /// When its refill schedule will have added enough uses; `None` when it has none
        /// (waiting does not help).
        retry_after: Option<std::time::Duration>,
    },
    /// Too many verifications are on the uncached path (store lookup and hash): refused at
    /// once rather than queued without bound (see `KeyringBuilder::uncached_concurrency`).
    #[error("too many verifications in progress")]
    Overloaded,
    /// The store could not answer: access is denied (fail closed).
    #[error("key store unavailable")]
    StoreUnavailable(#[source] StoreError),
    /// The pepper's key could not be used (its hardware module or key service is
    /// unavailable, see [`HashError::PepperUnavailable`]): access is denied (fail closed).
    #[error("pepper unavailable")]
    PepperUnavailable(#[source] HashError),
    /// Verification could not be completed (for example an unreadable stored hash): access
    /// is denied.
    #[error("api key verification failed internally")]
    Internal(#[source] HashError),
}

impl VerifyError {
    /// The HTTP status for this error: 401 for credentials that are not valid, 403 for
    /// valid credentials that may not do this, 429 for limits, 500/503 for failures.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Malformed(_)
            | Self::UnknownPrefix
            | Self::Invalid
            | Self::Revoked
            | Self::Disabled
            | Self::Expired
            | Self::NotYetValid
            | Self::WrongEnvironment { .. }
            | Self::CertificateRequired
            | Self::CertificateMismatch => 401,
            Self::ClientNotAllowed
            | Self::OriginNotAllowed
            | Self::SecretKeyInBrowser
            | Self::InsufficientScope(_) => 403,
            Self::RateLimited(_) | Self::Throttled(_) | Self::UsageExhausted { .. } => 429,
            Self::StoreUnavailable(_)
            | Self::PepperUnavailable(_)
            | Self::RateLimiterUnavailable(_)
            | Self::Overloaded => 503,
            Self::Internal(_) | Self::UnknownPolicy | Self::InvalidCost(_) => 500,
        }
    }

    /// `RateLimit-Policy`, `RateLimit` and `Retry-After` values for a 429 from a rate limit
    /// or the failed-attempt throttle.
    pub fn rate_limit_headers(&self) -> Option<RateLimitHeaders> {
        match self {
            Self::RateLimited(denial) | Self::Throttled(denial) => Some(denial.headers()),
            _ => None,
        }
    }

    /// A short stable label for logs and metrics, such as `"expired"`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnknownPrefix => "unknown_prefix",
            Self::Invalid => "invalid",
            Self::Revoked => "revoked",
            Self::Disabled => "disabled",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongEnvironment { .. } => "wrong_environment",
            Self::OriginNotAllowed => "origin_not_allowed",
            Self::SecretKeyInBrowser => "secret_key_in_browser",
            Self::ClientNotAllowed => "client_not_allowed",
            Self::CertificateRequired => "certificate_required",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::RateLimited(_) => "rate_limited",
            Self::Throttled(_) => "throttled",
            Self::UnknownPolicy => "unknown_policy",
            Self::InvalidCost(_) => "invalid_cost",
            Self::RateLimiterUnavailable(_) => "rate_limiter_unavailable",
            Self::UsageExhausted { .. } => "usage_exhausted",
            Self::Overloaded => "overloaded",
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::PepperUnavailable(_) => "pepper_unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

/// A key management operation (issue, revoke, rotate, update, list) failed.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The request is invalid; the message says which field and why.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// No key with that id.
    #[error("key not found")]
    NotFound,
    /// The operation is not possible in the key's state (for example enabling a revoked key).
    #[error("operation not allowed: {0}")]
    InvalidState(&'static str),
    /// The write that links an old key to its rotation successor failed without a definite
    /// answer (its reply was lost and the store could not be read back). The successor is
    /// kept, not revoked, and returned here so its key is not lost: settle it with
    /// [`Keyring::confirm_rotation`](crate::Keyring::confirm_rotation) once the store
    /// answers.
    #[error("the rotation may or may not have completed: confirm it once the store answers")]
    RotationUnconfirmed(std::sync::Arc<crate::keyring::IssuedKey>),
    /// Concurrent writers kept changing the record; gave up after several attempts.
    #[error("gave up after repeated concurrent updates")]
    Contention,
    /// The store failed.
    #[error("key store error")]
    Store(#[source] StoreError),
    /// Hashing failed.
    #[error("hashing failed")]
    Hash(#[from] HashError),
    /// No randomness for a new key.
    #[error(transparent)]
    Rng(#[from] RngError),
    /// Configuration given to the keyring builder is invalid.
    #[error("invalid keyring configuration: {0}")]
    Config(#[from] super::builder::ConfigError),
    /// A derived token could not be made (feature `tokens`).
    #[cfg(feature = "tokens")]
    #[error("token: {0}")]
    Token(#[from] crate::token::TokenError),
}

impl From<StoreError> for KeyringError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            other => Self::Store(other),
        }
    }
}
