//! The keyring: issue, verify, revoke, disable, update and rotate keys over any
//! [`KeyStore`].
//!
//! # Verification order
//!
//! [`Keyring::verify`] checks, in this fixed order, and stops at the first failure (a
//! request refused at one step is charged nothing by the later ones):
//!
//! 1. format and checksum (no I/O: garbage never reaches the store);
//! 2. lookup: the verified-key cache, else the store by id;
//! 3. constant-time secret check against the stored hash (an unknown id pays a dummy
//!    hash, so both take about as long);
//! 4. status (revoked, disabled), not-before, expiry — on every cache hit too;
//! 5. client address against the key's allowed networks;
//! 6. scopes: the key's own plus its roles', against the request's [`Requirement`](crate::Requirement);
//! 7. the key's rate-limit policy (its own, else the keyring's default);
//! 8. uses left (credits), taken atomically from the store.
//!
//! A failed-attempt throttle per client address (when configured) runs between steps 1
//! and 2: a client over it is refused before any store or hash work, and every
//! authentication failure (malformed, unknown id, wrong secret) is charged to it.

mod builder;
mod cache;
mod error;
mod events;
mod hash_gate;
mod issue;
mod last_used;
mod manage;
mod refill;
mod refusal;
mod throttle;
mod verify;

use std::sync::Arc;

use chrono::TimeDelta;

pub use builder::{
    ConfigError, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, DEFAULT_LAST_USED_DEBOUNCE,
    DEFAULT_ROTATION_GRACE, DefaultLimiter, IntoRateLimiter, KeyringBuilder, KeyringMemoryLimiter,
    MAX_CACHE_TTL,
};
pub use error::{KeyringError, VerifyError};
pub use events::{AuditEvent, AuditSink, FailureReason};
pub use issue::{IssueRequest, IssuedKey};
pub use manage::KeyUpdate;
pub use verify::{VerifiedKey, VerifyContext};

use crate::clock::SharedClock;
use crate::format::KeyFormat;
use crate::hash::HashPolicy;
use crate::invalidation::CacheInvalidation;
use crate::ratelimit::{Policy, RateLimiter};
use crate::store::KeyStore;
use std::collections::HashMap;

/// The key service a host calls on every request. Cheap to clone (one `Arc`).
///
/// The store `S` and the rate limiter `L` are type parameters because they sit on the hot
/// path and are async: their `impl Future` methods are not object safe without boxing
/// every call, and monomorphising them lets the in-memory backends inline. The clock, the
/// hashers and the audit sink are synchronous and called once per operation, so they are
/// trait objects: a virtual call costs nothing next to their work, and keeping them out of
/// the type keeps `Keyring<S>` short to name. [`MemoryKeyring`] is the common in-memory
/// case.
///
/// ```
/// use keymint::{IssueRequest, KeyFormat, Keyring, MemoryStore, VerifyContext};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keyring = Keyring::builder(KeyFormat::new("sk_test")?, MemoryStore::new()).build()?;
///
/// let issued = keyring.issue(IssueRequest::new("acct_42", "CI deploy")).await?;
/// let presented = issued.key.expose_secret(); // shown to the owner once
///
/// let verified = keyring.verify(presented, &VerifyContext::new()).await?;
/// assert_eq!(verified.record().owner, "acct_42");
///
/// keyring.revoke(&issued.record.id, "leaked").await?;
/// let err = keyring.verify(presented, &VerifyContext::new()).await.unwrap_err();
/// assert_eq!(err.status_code(), 401);
/// # Ok(())
/// # }
/// ```
pub struct Keyring<S, L = KeyringMemoryLimiter> {
    inner: Arc<Inner<S, L>>,
}

/// A keyring on the in-memory store and the in-memory rate limiter: the embedded default.
pub type MemoryKeyring = Keyring<crate::store::MemoryStore>;

impl<S, L> Clone for Keyring<S, L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<S, L> {
    format: KeyFormat,
    store: S,
    limiter: L,
    policies: HashMap<String, Arc<Policy>>,
    default_policy: Option<Arc<Policy>>,
    throttle: Option<throttle::Throttle>,
    gate: hash_gate::HashGate,
    hashes: HashPolicy,
    clock: SharedClock,
    cache: Option<cache::VerifiedCache>,
    rotation_grace: TimeDelta,
    last_used: last_used::LastUsed,
    audit: Option<Arc<dyn AuditSink>>,
    invalidation: Option<Arc<dyn CacheInvalidation>>,
    roles: crate::scope::Roles,
    warnings: refusal::WarnEvery,
}

impl<S: KeyStore> Keyring<S> {
    /// A builder with secure defaults: Argon2id (OWASP parameters), the system clock, a
    /// 30 s verified-key cache of 100 000 entries, a 24 h rotation grace period and
    /// last-used writes debounced to one a minute per key.
    pub fn builder(format: KeyFormat, store: S) -> KeyringBuilder<S> {
        KeyringBuilder::new(format, store)
    }
}

impl<S: KeyStore, L: RateLimiter> Keyring<S, L> {
    /// The format of the keys this keyring issues and accepts.
    pub fn format(&self) -> &KeyFormat {
        &self.inner.format
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// Drops any cached verification of `id` in this process. Call it for every id your
    /// [`CacheInvalidation`] channel delivers from other processes.
    pub fn invalidate_cached(&self, id: &crate::KeyId) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(id.as_str());
        }
    }

    fn audit(&self, event: impl FnOnce() -> AuditEvent) {
        if let Some(sink) = &self.inner.audit {
            sink.record(&event());
        }
    }

    /// Local invalidation plus the fleet-wide announcement.
    fn changed(&self, id: &crate::KeyId) {
        self.invalidate_cached(id);
        if let Some(bus) = &self.inner.invalidation {
            bus.publish(id);
        }
    }
}

impl<S, L> std::fmt::Debug for Keyring<S, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("format", &self.inner.format)
            .field("hashes", &self.inner.hashes)
            .field("cache", &self.inner.cache)
            .field("rotation_grace", &self.inner.rotation_grace)
            .field("policies", &self.inner.policies.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
