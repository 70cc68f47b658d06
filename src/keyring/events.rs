//! What the keyring tells the host: audit events and cache invalidations.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::format::KeyHint;
use crate::format::KeyId;

/// Receives lifecycle events and verification failures, for an audit log or metrics.
///
/// Called synchronously on the calling task: keep it fast (push to a channel). Events never
/// contain a secret.
pub trait AuditSink: Send + Sync + fmt::Debug + 'static {
    /// Records one event.
    fn record(&self, event: &AuditEvent);
}

/// Something that happened to a key.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// A key was issued (directly or as a rotation successor).
    Issued {
        /// The new key's id.
        id: KeyId,
        /// Its hint.
        hint: KeyHint,
        /// Its owner.
        owner: String,
        /// Who did it: the actor of the [`Keyring::acting_as`](super::Keyring::acting_as)
        /// handle it was done through (`None` through a plain keyring).
        actor: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A presented key was refused.
    VerificationFailed {
        /// The key id, when the presented string was well-formed enough to have one.
        id: Option<KeyId>,
        /// Why, precisely (unlike the error returned to the caller, this tells an unknown
        /// id from a wrong secret).
        reason: FailureReason,
        /// The client address from the request context.
        client_ip: Option<IpAddr>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key was revoked.
    Revoked {
        /// The key.
        id: KeyId,
        /// Why.
        reason: String,
        /// Who did it: the actor of the [`Keyring::acting_as`](super::Keyring::acting_as)
        /// handle it was done through (`None` through a plain keyring).
        actor: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key was disabled.
    Disabled {
        /// The key.
        id: KeyId,
        /// Who did it: the actor of the [`Keyring::acting_as`](super::Keyring::acting_as)
        /// handle it was done through (`None` through a plain keyring).
        actor: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key was enabled again.
    Enabled {
        /// The key.
        id: KeyId,
        /// Who did it: the actor of the [`Keyring::acting_as`](super::Keyring::acting_as)
        /// handle it was done through (`None` through a plain keyring).
        actor: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key was replaced by a successor; it keeps working until `old_expires_at`.
    Rotated {
        /// The old key.
        old: KeyId,
        /// The successor.
        new: KeyId,
        /// End of the old key's grace period.
        old_expires_at: DateTime<Utc>,
        /// Who did it: the actor of the [`Keyring::acting_as`](super::Keyring::acting_as)
        /// handle it was done through (`None` through a plain keyring).
        actor: Option<String>,
    },
    /// A key's attributes were changed.
    Updated {
        /// The key.
        id: KeyId,
        /// Who did it: the actor of the [`Keyring::acting_as`](super::Keyring::acting_as)
        /// handle it was done through (`None` through a plain keyring).
        actor: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key was presented over plain HTTP and refused: it crossed the network in clear,
    /// so its owner should roll it. Reported only once the key's secret was confirmed (see
    /// [`Keyring::report_sent_in_clear`](super::Keyring::report_sent_in_clear)).
    SentInClear {
        /// The key.
        id: KeyId,
        /// The client address.
        client_ip: Option<IpAddr>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An owner managed one of their keys through self-service (the portal router): who
    /// did what to which key.
    SelfService {
        /// Who acted (the host's user id, as its resolver says).
        actor: String,
        /// Whose key it is.
        owner: String,
        /// What was done.
        action: SelfServiceAction,
        /// The key acted on (for a roll, the old key; the new one is in `successor`).
        id: KeyId,
        /// For a roll: the successor.
        successor: Option<KeyId>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A verified key's use looked unusual (see
    /// [`KeyringBuilder::anomaly_detection`](super::KeyringBuilder::anomaly_detection)): a
    /// hint to alert on, never a refusal.
    Anomaly {
        /// The key used.
        id: KeyId,
        /// What looked unusual.
        anomaly: super::Anomaly,
        /// The client's address, when known.
        client_ip: Option<IpAddr>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A secret scanner reported the key leaked (found in public, such as a GitHub
    /// repository), and the report was confirmed: the reported token's secret matches the
    /// key's stored hash. Raised by `keymint::http::leak_alerts` (feature `leak-alerts`);
    /// a revocation it causes is audited as [`Revoked`](Self::Revoked) as well.
    LeakReported {
        /// The leaked key.
        id: KeyId,
        /// Its owner, to notify.
        owner: String,
        /// Where it was found, as reported (may be empty).
        url: String,
        /// What kind of place, as reported (GitHub's `source`: `content`, `commit`,
        /// `issue_comment`, `npm`, ...).
        source: String,
        /// Whether this report revoked the key: `false` when the handler only flags
        /// leaks, or when the key was already revoked.
        revoked: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A short-lived token was derived from a key (feature `tokens`).
    TokenDerived {
        /// The key it was derived from.
        parent: KeyId,
        /// The token's own id (`jti`).
        token_id: String,
        /// What it may do.
        scopes: Vec<crate::scope::Scope>,
        /// When it expires.
        expires_at: DateTime<Utc>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A key's stored hash was upgraded to the current hasher.
    Rehashed {
        /// The key.
        id: KeyId,
    },
}

/// What an owner did through self-service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SelfServiceAction {
    /// Created a key.
    Created,
    /// Rolled (rotated) a key.
    Rolled,
    /// Revoked a key.
    Revoked,
    /// Renamed or re-described a key.
    Edited,
}

/// Precise reason for a failed verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// Not a well-formed key.
    Malformed,
    /// A well-formed key of another prefix.
    UnknownPrefix,
    /// No record with the id.
    NotFound,
    /// The record exists but the secret does not match.
    WrongSecret,
    /// The secret matches a record stored under another prefix: a key moved to another
    /// prefix with a recomputed checksum (the caller sees the same error as for a wrong
    /// secret).
    WrongPrefix,
    /// The secret matches a record issued as another kind or in another environment than
    /// its prefix's key type now says (a configuration changed under stored keys).
    WrongType,
    /// A derived token that is not believed: malformed, signed by an unknown key, a bad
    /// signature, or claims its parent key does not match (the caller sees
    /// [`VerifyError::Invalid`](crate::VerifyError::Invalid)).
    InvalidToken,
    /// A valid key of another environment than the request's.
    WrongEnvironment,
    /// A publishable key used from an origin it does not allow.
    OriginNotAllowed,
    /// A secret or restricted key used from a browser.
    SecretKeyInBrowser,
    /// Revoked.
    Revoked,
    /// Disabled.
    Disabled,
    /// Expired.
    Expired,
    /// Not yet valid.
    NotYetValid,
    /// Client address not allowed.
    ClientNotAllowed,
    /// A key bound to a client certificate, presented without one: a copied key, or a
    /// client that lost its certificate configuration.
    CertificateRequired,
    /// A key bound to a client certificate, presented with another one (another client's
    /// certificate, or a renewal the binding does not cover).
    CertificateMismatch,
    /// The key lacks a required scope.
    InsufficientScope,
    /// No uses left.
    UsageExhausted,
    /// Over the key's rate limit.
    RateLimited,
    /// Over the failed-attempt throttle of its client address.
    Throttled,
    /// Too many verifications were already on the uncached path.
    Overloaded,
    /// Store, limiter or hash failure, or a configuration error.
    Unavailable,
}
