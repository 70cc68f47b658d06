//! Configuration of a [`Keyring`], with secure defaults.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::TimeDelta;

use super::cache::VerifiedCache;
use super::last_used::LastUsed;
use super::{AuditSink, CacheInvalidation, Inner, Keyring};
use crate::clock::{Clock, SystemClock};
use crate::error::KeyringError;
use crate::format::KeyFormat;
use crate::hash::HashPolicy;
use crate::ratelimit::{MemoryLimiter, Policy, RateLimiter};
use crate::scope::Roles;
use crate::store::KeyStore;

/// Builds a [`Keyring`]; see [`Keyring::builder`] for the defaults.
#[must_use]
pub struct KeyringBuilder<S, L = MemoryLimiter> {
    format: KeyFormat,
    store: S,
    limiter: L,
    policies: HashMap<String, Arc<Policy>>,
    default_policy: Option<String>,
    failed_attempts: Option<Policy>,
    hashes: HashPolicy,
    clock: Arc<dyn Clock>,
    cache: Option<(TimeDelta, usize)>,
    rotation_grace: TimeDelta,
    last_used_debounce: TimeDelta,
    audit: Option<Arc<dyn AuditSink>>,
    invalidation: Option<Arc<dyn CacheInvalidation>>,
    roles: Roles,
    uncached_concurrency: Option<(usize, usize)>,
}

/// Seconds between two warnings about failing verifications (the rest are counted).
const WARN_INTERVAL_SECS: i64 = 10;

/// Default verified-key cache lifetime.
pub const DEFAULT_CACHE_TTL: TimeDelta = TimeDelta::seconds(30);
/// Default verified-key cache size, in entries.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;
/// Longest cache lifetime accepted: a revocation made in another process without an
/// invalidation channel takes up to this long to be seen there.
pub const MAX_CACHE_TTL: TimeDelta = TimeDelta::minutes(10);
/// Default time a rotated key keeps working.
pub const DEFAULT_ROTATION_GRACE: TimeDelta = TimeDelta::hours(24);
/// Default minimum interval between last-used writes of one key.
pub const DEFAULT_LAST_USED_DEBOUNCE: TimeDelta = TimeDelta::minutes(1);

impl<S: KeyStore> KeyringBuilder<S> {
    pub(super) fn new(format: KeyFormat, store: S) -> Self {
        Self {
            format,
            store,
            limiter: MemoryLimiter::new(),
            policies: HashMap::new(),
            default_policy: None,
            failed_attempts: None,
            hashes: HashPolicy::default(),
            clock: Arc::new(SystemClock),
            cache: Some((DEFAULT_CACHE_TTL, DEFAULT_CACHE_CAPACITY)),
            rotation_grace: DEFAULT_ROTATION_GRACE,
            last_used_debounce: DEFAULT_LAST_USED_DEBOUNCE,
            audit: None,
            invalidation: None,
            roles: Roles::new(),
            uncached_concurrency: None,
        }
    }
}

impl<S: KeyStore, L: RateLimiter> KeyringBuilder<S, L> {
    /// How secrets are hashed and which stored hashes are accepted.
    pub fn hashes(mut self, hashes: HashPolicy) -> Self {
        self.hashes = hashes;
        self
    }

    /// Where time comes from (a [`ManualClock`](crate::ManualClock) in tests). Give the
    /// rate limiter the same clock ([`MemoryLimiter::with_clock`]).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Verified-key cache lifetime (0 < ttl <= [`MAX_CACHE_TTL`]) and entry count (>= 1).
    pub fn cache(mut self, ttl: TimeDelta, capacity: usize) -> Self {
        self.cache = Some((ttl, capacity));
        self
    }

    /// No verified-key cache: every verification reads the store and hashes.
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// How long a rotated key keeps working (0 stops it at once; at most 366 days).
    pub fn rotation_grace(mut self, grace: TimeDelta) -> Self {
        self.rotation_grace = grace;
        self
    }

    /// Minimum interval between last-used writes of one key (>= 0).
    pub fn last_used_debounce(mut self, interval: TimeDelta) -> Self {
        self.last_used_debounce = interval;
        self
    }

    /// Named bundles of scopes that records may reference; resolved at verify time, so
    /// changing a role (by rebuilding the keyring) changes every key that references it.
    pub fn roles(mut self, roles: Roles) -> Self {
        self.roles = roles;
        self
    }

    /// Where audit events go.
    pub fn audit(mut self, sink: impl AuditSink) -> Self {
        self.audit = Some(Arc::new(sink));
        self
    }

    /// The fleet's cache-invalidation channel.
    pub fn invalidation(mut self, channel: impl CacheInvalidation) -> Self {
        self.invalidation = Some(Arc::new(channel));
        self
    }

    /// The rate-limit backend (default: an in-memory [`MemoryLimiter`] on the system
    /// clock; a [`RedisLimiter`](crate::ratelimit::RedisLimiter) for fleet-wide limits).
    pub fn rate_limiter<L2: RateLimiter>(self, limiter: L2) -> KeyringBuilder<S, L2> {
        KeyringBuilder {
            format: self.format,
            store: self.store,
            limiter,
            policies: self.policies,
            default_policy: self.default_policy,
            failed_attempts: self.failed_attempts,
            hashes: self.hashes,
            clock: self.clock,
            cache: self.cache,
            rotation_grace: self.rotation_grace,
            last_used_debounce: self.last_used_debounce,
            audit: self.audit,
            invalidation: self.invalidation,
            roles: self.roles,
            uncached_concurrency: self.uncached_concurrency,
        }
    }

    /// At most `concurrency` verifications take the uncached path (the store lookup and
    /// the secret hash) at once, and at most `max_waiting` wait for a place; more are
    /// refused with [`VerifyError::Overloaded`](crate::VerifyError::Overloaded) (503).
    /// Default: one per CPU, and 64 waiting per place.
    ///
    /// Forged keys pass the public checksum, so this is what bounds the database
    /// connections, blocking threads and Argon2 memory (19 MiB per hash at the defaults)
    /// that a flood of them can take. A place is held until the hash it admitted has
    /// finished, also when the caller gives up waiting. Keep `concurrency` below your
    /// store's connection pool size, so that uncached verifications can never take every
    /// connection from the rest of the keyring (credits, updates).
    pub fn uncached_concurrency(mut self, concurrency: usize, max_waiting: usize) -> Self {
        self.uncached_concurrency = Some((concurrency, max_waiting));
        self
    }

    /// The old name of [`uncached_concurrency`](Self::uncached_concurrency), which now
    /// bounds the store lookup as well as the hash.
    #[deprecated(since = "0.1.0", note = "renamed to `uncached_concurrency`")]
    pub fn hash_concurrency(self, concurrency: usize, max_waiting: usize) -> Self {
        self.uncached_concurrency(concurrency, max_waiting)
    }

    /// Defines a rate-limit policy that keys may name
    /// ([`IssueRequest::rate_limit_policy`](super::IssueRequest::rate_limit_policy)).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policies
            .insert(policy.name().to_owned(), Arc::new(policy));
        self
    }

    /// The policy (defined with [`policy`](Self::policy)) for keys that name none. Without
    /// it, such keys are not rate-limited.
    pub fn default_policy(mut self, name: &str) -> Self {
        self.default_policy = Some(name.to_owned());
        self
    }

    /// Throttles failed verifications per client (IPv4 address or IPv6 /64): a client over
    /// `policy` is refused ([`VerifyError::Throttled`](crate::VerifyError::Throttled))
    /// before any store or hash work. Needs the client address in the
    /// [`VerifyContext`](super::VerifyContext) (a warning is logged once if it is
    /// missing). The count lives in this process, in a table of its own (at most 2^20
    /// clients); in a fleet each process counts separately. Concurrent attempts that pass
    /// the check together are all counted afterwards.
    pub fn failed_attempt_throttle(mut self, policy: Policy) -> Self {
        self.failed_attempts = Some(policy);
        self
    }

    /// Checks the configuration and builds the keyring.
    ///
    /// # Errors
    /// [`KeyringError::Config`] for an out-of-range duration or size or an undefined
    /// default policy, [`KeyringError::Rng`] when no randomness is available for the cache
    /// key.
    pub fn build(self) -> Result<Keyring<S, L>, KeyringError> {
        let cache = match self.cache {
            None => None,
            Some((ttl, capacity)) => {
                if ttl <= TimeDelta::zero() || ttl > MAX_CACHE_TTL {
                    return Err(KeyringError::Config("cache ttl must be in (0, 10 min]"));
                }
                if capacity == 0 {
                    return Err(KeyringError::Config("cache capacity must be at least 1"));
                }
                Some(VerifiedCache::new(ttl, capacity)?)
            }
        };
        if self.rotation_grace < TimeDelta::zero()
            || self.rotation_grace > super::manage::MAX_ROTATION_GRACE
        {
            return Err(KeyringError::Config(
                "rotation grace must be between 0 and 366 days",
            ));
        }
        if self.last_used_debounce > TimeDelta::days(1) {
            return Err(KeyringError::Config(
                "last-used debounce must be at most a day",
            ));
        }
        // Built now, not on the first unknown id: that request would otherwise take twice
        // as long as a wrong secret, and a failure here would silently drop the padding.
        self.hashes.prepare_dummy()?;
        let (concurrency, max_waiting) = self.uncached_concurrency.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            (cpus, cpus * 64)
        });
        if concurrency == 0 {
            return Err(KeyringError::Config(
                "uncached concurrency must be at least 1",
            ));
        }
        if self.last_used_debounce < TimeDelta::zero() {
            return Err(KeyringError::Config(
                "last-used debounce must not be negative",
            ));
        }
        let default_policy = match &self.default_policy {
            None => None,
            Some(name) => Some(
                self.policies
                    .get(name)
                    .cloned()
                    .ok_or(KeyringError::Config("the default policy is not defined"))?,
            ),
        };
        Ok(Keyring {
            inner: Arc::new(Inner {
                format: self.format,
                store: self.store,
                limiter: self.limiter,
                policies: self.policies,
                default_policy,
                throttle: self
                    .failed_attempts
                    .map(|p| super::limits::Throttle::new(p, self.clock.clone())),
                hashes: self.hashes,
                clock: self.clock,
                cache,
                rotation_grace: self.rotation_grace,
                last_used: LastUsed::new(self.last_used_debounce),
                audit: self.audit,
                invalidation: self.invalidation,
                roles: self.roles,
                gate: super::blocking::HashGate::new(concurrency, max_waiting),
                warnings: super::refusal::WarnEvery::new(WARN_INTERVAL_SECS),
            }),
        })
    }
}

impl<S, L> std::fmt::Debug for KeyringBuilder<S, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringBuilder")
            .field("format", &self.format)
            .field("hashes", &self.hashes)
            .field("cache", &self.cache)
            .field("rotation_grace", &self.rotation_grace)
            .field("policies", &self.policies.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
