//! The keyring: issue, verify, revoke, disable, update and rotate keys over any
//! [`KeyStore`].
//!
//! # Verification order
//!
//! [`Keyring::verify`] checks, in this fixed order, and stops at the first failure (a
//! request refused at one step is charged nothing by the later ones):
//!
//! 1. format, checksum and key type, found from the prefix (no I/O: garbage never reaches
//!    the store);
//! 2. the verified-key cache; a hit costs no store read and no hash;
//! 3. on a miss, the expensive path, bounded as a whole: the failed-attempt throttle for
//!    the client (when configured), the store lookup by id, and the constant-time secret
//!    check (an unknown id pays a dummy hash, so both take about as long);
//! 4. the record belongs to the presented prefix and key type (else refused like a wrong
//!    secret);
//! 5. the key's environment is the one the request is served in;
//! 6. status (revoked, disabled), not-before, expiry — on every cache hit too;
//! 7. client address against the key's allowed networks; origin (publishable keys from
//!    their allowed origins, secret keys not from browsers); client certificate (keys bound
//!    to one verify only with it: [`VerifyContext::client_certificate`]);
//! 8. scopes: the key's own plus its roles', against the request's [`Requirement`](crate::Requirement);
//! 9. the key's rate-limit policy (its own, else its type's, else the keyring's default),
//!    charged to its lineage;
//! 10. uses left (credits), taken atomically from the store (shared with a rotation
//!     successor during the grace period).
//!
//! Every authentication failure (malformed, unknown id, wrong secret, wrong prefix or type)
//! is charged to the failed-attempt throttle.

mod anomaly;
mod builder;
mod cache;
mod chained_log;
mod error;
mod events;
mod hash_gate;
mod issue;
mod key_type;
mod last_used;
mod leak;
mod manage;
mod refill;
mod refusal;
mod throttle;
#[cfg(feature = "tokens")]
mod token;
mod verify;

use std::sync::Arc;

use chrono::TimeDelta;

pub use anomaly::{Anomaly, AnomalyConfig};
pub use builder::{
    ConfigError, DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_TTL, DEFAULT_LAST_USED_DEBOUNCE,
    DEFAULT_ROTATION_GRACE, DefaultLimiter, IntoRateLimiter, KeyringBuilder, KeyringMemoryLimiter,
    MAX_CACHE_TTL,
};
pub use error::{KeyringError, VerifyError};
pub use events::{AuditEvent, AuditSink, FailureReason, SelfServiceAction};
pub use issue::{IssueRequest, IssuedKey};
pub use key_type::{KeyType, KeyTypes};

pub use manage::{KeyFilter, KeyUpdate, MAX_FILTER_SCAN};
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
    /// Who the management calls through this handle are audited as done by.
    actor: Option<Arc<str>>,
}

/// A keyring on the in-memory store and the in-memory rate limiter: the embedded default.
pub type MemoryKeyring = Keyring<crate::store::MemoryStore>;

impl<S, L> Clone for Keyring<S, L> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            actor: self.actor.clone(),
        }
    }
}

struct Inner<S, L> {
    types: KeyTypes,
    store: S,
    limiter: L,
    policies: HashMap<String, Arc<Policy>>,
    default_policy: Option<Arc<Policy>>,
    throttle: Option<Arc<throttle::Throttle>>,
    gate: hash_gate::HashGate,
    hashes: HashPolicy,
    clock: SharedClock,
    /// The hot path's metric handles (nothing without the `metrics` feature).
    metrics: crate::metrics::Handles,
    anomalies: Option<anomaly::AnomalyDetector>,
    usage: Option<crate::usage::UsageRecorder>,
    cache: Option<cache::VerifiedCache>,
    rotation_grace: TimeDelta,
    last_used: last_used::LastUsed,
    audit: Option<Arc<dyn AuditSink>>,
    invalidation: Option<Arc<dyn CacheInvalidation>>,
    roles: crate::scope::Roles,
    warnings: refusal::WarnEvery,
    /// Store lookups of the uncached path that failed, ever: a verification that waited for
    /// a slot while one failed fails closed at once instead of trying the store again.
    store_failures: std::sync::atomic::AtomicU64,
    /// Whether the latest finished store lookup of the uncached path failed.
    store_failing: std::sync::atomic::AtomicBool,
    /// Derived tokens: their configuration and their parents' cache.
    #[cfg(feature = "tokens")]
    tokens: Option<token::TokenState>,
}

impl<S: KeyStore> Keyring<S> {
    /// A builder for a keyring of `types` (a [`KeyTypes`] set, or a single [`KeyFormat`]
    /// for one secret type in the `live` environment) over `store`, with secure defaults:
    /// Argon2id (OWASP parameters), the system clock, a 30 s verified-key cache of 100 000
    /// entries, a 24 h rotation grace period, bounded uncached work and last-used writes
    /// debounced to one a minute per key.
    pub fn builder(types: impl Into<KeyTypes>, store: S) -> KeyringBuilder<S> {
        KeyringBuilder::new(types.into(), store)
    }
}

impl<S: KeyStore, L: RateLimiter> Keyring<S, L> {
    /// The format of the keys of the default (first) key type.
    pub fn format(&self) -> &KeyFormat {
        self.inner.types.default_type().format()
    }

    /// The key types this keyring issues and accepts, the default first.
    pub fn key_types(&self) -> &KeyTypes {
        &self.inner.types
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
        #[cfg(feature = "tokens")]
        if let Some(tokens) = &self.inner.tokens {
            tokens.parents.invalidate(id.as_str());
        }
    }

    /// Drops every cached verification in this process: the next verification of each key
    /// reads the store. Invalidation listeners call it whenever they (re)subscribe, since
    /// messages sent while they were disconnected are lost. A verification that read the
    /// store before the flush does not cache what it read.
    pub fn invalidate_all_cached(&self) {
        if let Some(cache) = &self.inner.cache {
            cache.invalidate_all();
        }
        #[cfg(feature = "tokens")]
        if let Some(tokens) = &self.inner.tokens {
            tokens.parents.invalidate_all();
        }
    }

    /// Sends `event` to the keyring's audit sink, if it has one: for layers above the
    /// keyring (the self-service router) that act on its keys and must leave a trail.
    pub fn record_event(&self, event: AuditEvent) {
        self.audit(|| event);
    }

    /// The grace period [`rotate`](Self::rotate) gives an old key when asked for none.
    pub fn rotation_grace(&self) -> TimeDelta {
        self.inner.rotation_grace
    }

    /// A handle to this keyring whose management calls (issue, rotate, revoke, disable,
    /// enable, update) are audited as done by `actor`: the host's user or service id, for
    /// the audit trail's "who did what". It shares everything else with `self`; make one per
    /// request or per admin session, it is cheap.
    ///
    /// ```
    /// # use keymint::{IssueRequest, KeyFormat, Keyring, MemoryStore};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new()).build()?;
    /// let admin = keyring.acting_as("staff:alice");
    /// let issued = admin.issue(IssueRequest::new("acct_42", "CI")).await?;
    /// admin.revoke(&issued.record.id, "no longer needed").await?; // audited as staff:alice's
    /// # Ok(()) }
    /// ```
    pub fn acting_as(&self, actor: impl Into<String>) -> Self {
        Self {
            inner: self.inner.clone(),
            actor: Some(Arc::from(actor.into())),
        }
    }

    /// Who this handle's management calls are audited as done by (see
    /// [`acting_as`](Self::acting_as)).
    pub fn actor(&self) -> Option<&str> {
        self.actor.as_deref()
    }

    fn actor_name(&self) -> Option<String> {
        self.actor.as_deref().map(str::to_owned)
    }

    fn audit(&self, event: impl FnOnce() -> AuditEvent) {
        if let Some(sink) = &self.inner.audit {
            sink.record(&event());
        }
    }

    /// The key type a stored record belongs to (by its prefix).
    fn key_type_of(&self, record: &crate::record::KeyRecord) -> Result<&KeyType, KeyringError> {
        self.inner
            .types
            .get(record.prefix.as_str())
            .ok_or(KeyringError::InvalidState(
                "the key's type is not configured on this keyring",
            ))
    }

    /// Local invalidation plus the fleet-wide announcement.
    fn changed(&self, id: &crate::KeyId) {
        self.invalidate_cached(id);
        if let Some(bus) = &self.inner.invalidation {
            bus.publish(id);
        }
    }
}

impl<S: KeyStore, L: RateLimiter> crate::invalidation::InvalidationTarget for Keyring<S, L> {
    fn invalidate(&self, id: &crate::KeyId) {
        self.invalidate_cached(id);
    }

    fn invalidate_all(&self) {
        self.invalidate_all_cached();
    }

    fn publishing_origin(&self) -> Option<u64> {
        self.inner
            .invalidation
            .as_ref()
            .and_then(|bus| bus.origin())
    }
}

impl<S, L> std::fmt::Debug for Keyring<S, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field(
                "types",
                &self
                    .inner
                    .types
                    .iter()
                    .map(|t| t.name())
                    .collect::<Vec<_>>(),
            )
            .field("hashes", &self.inner.hashes)
            .field("cache", &self.inner.cache)
            .field("rotation_grace", &self.inner.rotation_grace)
            .field("policies", &self.inner.policies.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
