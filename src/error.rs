//! Error types. Every `Display` is a lowercase sentence fragment without a trailing period,
//! and no error ever carries secret material: parse errors hold positions and lengths only.

use thiserror::Error;

/// A key format or one of its parts could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The prefix is empty, longer than 32 characters, or not `a-z0-9` segments joined by
    /// single `_`.
    #[error("invalid prefix: expected 1 to 32 characters of a-z/0-9 segments joined by single '_'")]
    InvalidPrefix,
    /// An id length outside `MIN_ID_LEN..=MAX_ID_LEN`.
    #[error("id length {0} is outside the allowed 8..=32")]
    IdLength(usize),
    /// A secret length outside `MIN_SECRET_LEN..=MAX_SECRET_LEN`.
    #[error("secret length {0} is outside the allowed 22..=64")]
    SecretLength(usize),
    /// A key id that is not 8 to 32 base62 characters.
    #[error("invalid key id: expected 8 to 32 base62 characters")]
    InvalidId,
}

/// Why a presented string is not a well-formed key. Checked without I/O, in the order of
/// the variants below; rejection does not allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The string is empty.
    #[error("key is empty")]
    Empty,
    /// The string is longer than any key of the expected format; it was not read.
    #[error("key is too long: {len} bytes, at most {max} expected")]
    TooLong {
        /// Length of the presented string, in bytes.
        len: usize,
        /// Longest length accepted.
        max: usize,
    },
    /// A byte that is neither base62 nor `_`.
    #[error("invalid character at byte {position}")]
    InvalidCharacter {
        /// Byte offset of the first offending byte.
        position: usize,
    },
    /// Fewer than two `_` separators.
    #[error("missing '_' separators between prefix, id and secret")]
    MissingSeparator,
    /// The prefix part is not well-formed.
    #[error("invalid prefix")]
    InvalidPrefix,
    /// A well-formed prefix that is not the expected one.
    #[error("unknown prefix")]
    PrefixMismatch,
    /// The id part has the wrong length.
    #[error("id has {found} characters, expected {min}..={max}")]
    IdLength {
        /// Characters found.
        found: usize,
        /// Fewest accepted.
        min: usize,
        /// Most accepted.
        max: usize,
    },
    /// The secret part has the wrong length.
    #[error("secret has {found} characters, expected {min}..={max}")]
    SecretLength {
        /// Characters found.
        found: usize,
        /// Fewest accepted.
        min: usize,
        /// Most accepted.
        max: usize,
    },
    /// The checksum does not match: a typo, a truncated key or random text.
    #[error("checksum mismatch")]
    ChecksumMismatch,
}

/// The operating system's random source failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("operating system random source failed: {0}")]
pub struct RngError(#[from] getrandom::Error);

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

/// A [`KeyStore`](crate::KeyStore) operation failed.
#[derive(Clone, Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Insert of an id that exists, or update of a record whose version moved on.
    #[error("conflict: the record exists or was changed concurrently")]
    Conflict,
    /// No record with that id.
    #[error("record not found")]
    NotFound,
    /// The backend could not answer (connection, timeout, corrupt row). Authentication
    /// fails closed on this error.
    #[error("store unavailable")]
    Unavailable(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a backend error as [`StoreError::Unavailable`].
    pub fn unavailable(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(std::sync::Arc::new(source))
    }
}

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
    /// The client address is outside the key's allowed networks.
    #[error("client address not allowed for this api key")]
    ClientNotAllowed,
    /// The key does not hold the scopes the request requires.
    #[error("{0}")]
    InsufficientScope(crate::scope::MissingScopes),
    /// The key's rate limit refused the request; nothing was charged.
    #[error("rate limited: {0}")]
    RateLimited(crate::keyring::RateLimitDenial),
    /// Too many failed verifications from this client address; checked before any store
    /// or hash work.
    #[error("too many failed attempts: {0}")]
    Throttled(crate::keyring::RateLimitDenial),
    /// The key names a rate-limit policy that the keyring does not define: access is
    /// denied until the configuration is fixed.
    #[error("api key names an unknown rate-limit policy")]
    UnknownPolicy,
    /// The rate limiter could not decide (for example Redis is down with a fail-closed
    /// policy): access is denied.
    #[error("rate limiter unavailable")]
    RateLimiterUnavailable(#[source] crate::ratelimit::RateLimitError),
    /// The request's cost is above what the key's policy can ever admit: a bug in the
    /// caller or the policy, not a client error.
    #[error("request cost cannot be admitted by the rate-limit policy")]
    InvalidCost(#[source] crate::ratelimit::RateLimitError),
    /// The key has no uses left.
    #[error("api key usage exhausted")]
    UsageExhausted,
    /// Too many verifications are on the uncached path (store lookup and hash): refused at
    /// once rather than queued without bound (see `KeyringBuilder::uncached_concurrency`).
    #[error("too many verifications in progress")]
    Overloaded,
    /// The store could not answer: access is denied (fail closed).
    #[error("key store unavailable")]
    StoreUnavailable(#[source] StoreError),
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
            | Self::NotYetValid => 401,
            Self::ClientNotAllowed | Self::InsufficientScope(_) => 403,
            Self::RateLimited(_) | Self::Throttled(_) | Self::UsageExhausted => 429,
            Self::StoreUnavailable(_) | Self::RateLimiterUnavailable(_) | Self::Overloaded => 503,
            Self::Internal(_) | Self::UnknownPolicy | Self::InvalidCost(_) => 500,
        }
    }

    /// `RateLimit-Policy`, `RateLimit` and `Retry-After` values for a 429 from a rate limit
    /// or the failed-attempt throttle.
    pub fn rate_limit_headers(&self) -> Option<crate::ratelimit::RateLimitHeaders> {
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
            Self::ClientNotAllowed => "client_not_allowed",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::RateLimited(_) => "rate_limited",
            Self::Throttled(_) => "throttled",
            Self::UnknownPolicy => "unknown_policy",
            Self::InvalidCost(_) => "invalid_cost",
            Self::RateLimiterUnavailable(_) => "rate_limiter_unavailable",
            Self::UsageExhausted => "usage_exhausted",
            Self::Overloaded => "overloaded",
            Self::StoreUnavailable(_) => "store_unavailable",
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
    Config(&'static str),
}

impl From<StoreError> for KeyringError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            other => Self::Store(other),
        }
    }
}
