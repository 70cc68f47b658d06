//! Configuration of a [`Keyring`], with secure defaults.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::TimeDelta;

use super::cache::VerifiedCache;
use super::key_type::KeyTypes;
use super::last_used::LastUsed;
use super::{AuditSink, Inner, Keyring};
use crate::clock::{Clock, SharedClock};
use crate::hash::HashPolicy;
use crate::invalidation::CacheInvalidation;
use crate::keyring::KeyringError;
use crate::ratelimit::{MemoryLimiter, Policy, RateLimiter};
use crate::scope::Roles;
use crate::store::KeyStore;

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

/// Builds a [`Keyring`]; see [`Keyring::builder`] for the defaults.
///
/// Every setting lives in one configuration value, checked in one place by
/// [`build`](Self::build); `L` is the rate limiter, [`DefaultLimiter`] until
/// [`rate_limiter`](Self::rate_limiter) chooses another.
#[must_use]
pub struct KeyringBuilder<S, L = DefaultLimiter> {
    store: S,
    limiter: L,
    config: Config,
}

/// Everything a keyring is configured with, apart from its store and limiter.
struct Config {
    types: KeyTypes,
    policies: HashMap<String, Arc<Policy>>,
    default_policy: Option<String>,
    failed_attempts: Option<Policy>,
    hashes: HashPolicy,
    clock: SharedClock,
    cache: Option<(TimeDelta, usize)>,
    rotation_grace: TimeDelta,
    last_used_debounce: TimeDelta,
    audit: Option<Arc<dyn AuditSink>>,
    invalidation: Option<Arc<dyn CacheInvalidation>>,
    roles: Roles,
    uncached_concurrency: Option<(usize, usize)>,
    anomalies: Option<super::AnomalyConfig>,
    usage: Option<UsageFactory>,
    #[cfg(feature = "tokens")]
    tokens: Option<crate::token::Tokens>,
}

/// Makes the usage recorder once the keyring's clock is known.
type UsageFactory =
    Box<dyn FnOnce(chrono::DateTime<chrono::Utc>) -> crate::usage::UsageRecorder + Send>;

/// The default rate limiter of a [`KeyringBuilder`]: a [`MemoryLimiter`] that
/// [`build`](KeyringBuilder::build) creates on the keyring's own clock, so a keyring built
/// with a [`ManualClock`](crate::ManualClock) limits on manual time too.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultLimiter;

/// The in-memory limiter a [`Keyring`] uses unless told otherwise.
pub type KeyringMemoryLimiter = MemoryLimiter<SharedClock>;

/// What [`KeyringBuilder::rate_limiter`] accepts: any [`RateLimiter`], or the
/// [`DefaultLimiter`], which becomes a [`KeyringMemoryLimiter`] on the keyring's clock.
pub trait IntoRateLimiter {
    /// The limiter the keyring will use.
    type Limiter: RateLimiter;
    /// Makes it, given the keyring's clock.
    fn into_rate_limiter(self, clock: &SharedClock) -> Self::Limiter;
}

impl<L: RateLimiter> IntoRateLimiter for L {
    type Limiter = L;
    fn into_rate_limiter(self, _clock: &SharedClock) -> L {
        self
    }
}

impl IntoRateLimiter for DefaultLimiter {
    type Limiter = KeyringMemoryLimiter;
    fn into_rate_limiter(self, clock: &SharedClock) -> KeyringMemoryLimiter {
        MemoryLimiter::with_clock(clock.clone())
    }
}

/// Why [`KeyringBuilder::build`] refused a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cache lifetime is not in `(0, MAX_CACHE_TTL]`.
    #[error("cache ttl must be more than 0 and at most 10 minutes")]
    CacheTtl,
    /// The cache holds no entries.
    #[error("cache capacity must be at least 1")]
    CacheCapacity,
    /// The rotation grace period is negative or longer than 366 days.
    #[error("rotation grace must be between 0 and 366 days")]
    RotationGrace,
    /// The last-used debounce is negative or longer than a day.
    #[error("last-used debounce must be between 0 and a day")]
    LastUsedDebounce,
    /// No verification could take the uncached path.
    #[error("uncached concurrency must be at least 1")]
    UncachedConcurrency,
    /// [`KeyringBuilder::default_policy`] names a policy that was not defined.
    #[error("the default rate-limit policy {0:?} is not defined")]
    UndefinedDefaultPolicy(String),
    /// Two key types share a prefix.
    #[error("two key types have the prefix {0:?}")]
    DuplicateKeyType(String),
    /// A key type's default policy was not defined on the keyring.
    #[error("key type {key_type:?} names the undefined rate-limit policy {policy:?}")]
    UndefinedKeyTypePolicy {
        /// The key type.
        key_type: String,
        /// The policy it names.
        policy: String,
    },
    /// A key type's lifetimes are not positive, or its default exceeds its maximum.
    #[error("key type {0:?}: lifetimes must be positive and the default at most the maximum")]
    KeyTypeLifetime(String),
    /// The token configuration is out of range; the message says which setting.
    #[error("{0}")]
    Tokens(&'static str),
}

impl<S: KeyStore> KeyringBuilder<S> {
    pub(super) fn new(types: KeyTypes, store: S) -> Self {
        Self {
            store,
            limiter: DefaultLimiter,
            config: Config {
                types,
                policies: HashMap::new(),
                default_policy: None,
                failed_attempts: None,
                hashes: HashPolicy::default(),
                clock: SharedClock::default(),
                cache: Some((DEFAULT_CACHE_TTL, DEFAULT_CACHE_CAPACITY)),
                rotation_grace: DEFAULT_ROTATION_GRACE,
                last_used_debounce: DEFAULT_LAST_USED_DEBOUNCE,
                audit: None,
                invalidation: None,
                roles: Roles::new(),
                uncached_concurrency: None,
                anomalies: None,
                #[cfg(feature = "tokens")]
                tokens: None,
                usage: None,
            },
        }
    }
}

impl<S: KeyStore, L: IntoRateLimiter> KeyringBuilder<S, L> {
    /// How secrets are hashed and which stored hashes are accepted.
    pub fn hashes(mut self, hashes: HashPolicy) -> Self {
        self.config.hashes = hashes;
        self
    }

    /// Where time comes from (a [`ManualClock`](crate::ManualClock) in tests). The default
    /// in-memory rate limiter and the failed-attempt throttle follow it; give a limiter
    /// of your own the same clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.config.clock = SharedClock::new(clock);
        self
    }

    /// Verified-key cache lifetime (0 < ttl <= [`MAX_CACHE_TTL`]) and entry count (>= 1).
    pub fn cache(mut self, ttl: TimeDelta, capacity: usize) -> Self {
        self.config.cache = Some((ttl, capacity));
        self
    }

    /// No verified-key cache: every verification reads the store and hashes.
    pub fn without_cache(mut self) -> Self {
        self.config.cache = None;
        self
    }

    /// How long a rotated key keeps working (0 stops it at once; at most 366 days).
    pub fn rotation_grace(mut self, grace: TimeDelta) -> Self {
        self.config.rotation_grace = grace;
        self
    }

    /// Minimum interval between last-used writes of one key (>= 0).
    pub fn last_used_debounce(mut self, interval: TimeDelta) -> Self {
        self.config.last_used_debounce = interval;
        self
    }

    /// Named bundles of scopes that records may reference; resolved at verify time, so
    /// changing a role (by rebuilding the keyring) changes every key that references it.
    pub fn roles(mut self, roles: Roles) -> Self {
        self.config.roles = roles;
        self
    }

    /// Where audit events go.
    pub fn audit(mut self, sink: impl AuditSink) -> Self {
        self.config.audit = Some(Arc::new(sink));
        self
    }

    /// Accepts and derives short-lived tokens (feature `tokens`): see [`crate::token`].
    #[cfg(feature = "tokens")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokens")))]
    pub fn tokens(mut self, tokens: crate::token::Tokens) -> Self {
        self.config.tokens = Some(tokens);
        self
    }

    /// Watches verified keys for unusual use (a sudden rise in a key's rate, a network it
    /// has not been seen from) and sends an [`AuditEvent::Anomaly`](super::AuditEvent::Anomaly)
    /// to the audit sink for each. Off by default; see [`AnomalyConfig`](super::AnomalyConfig)
    /// for what it detects and what it cannot. Costs a map lookup per verification.
    pub fn anomaly_detection(mut self, config: super::AnomalyConfig) -> Self {
        self.config.anomalies = Some(config);
        self
    }

    /// Counts each request of a known key per UTC day and outcome (see
    /// [`keymint::usage`](crate::usage)) and writes the counts to `store` in batches, at
    /// most once per `flush_interval` (and on
    /// [`Keyring::flush_usage`](super::Keyring::flush_usage)): a verification costs a map
    /// update, never a write. Counts not yet written are lost if the process dies; call
    /// `flush_usage` on shutdown.
    pub fn usage(
        mut self,
        store: impl crate::usage::UsageStore,
        flush_interval: TimeDelta,
    ) -> Self {
        // At least a second: a shorter interval would start a flush on every request.
        let secs = flush_interval.num_seconds().max(1);
        self.config.usage = Some(Box::new(move |now| {
            crate::usage::UsageRecorder::new(store, secs, now)
        }));
        self
    }

    /// The fleet's cache-invalidation channel.
    pub fn invalidation(mut self, channel: impl CacheInvalidation) -> Self {
        self.config.invalidation = Some(Arc::new(channel));
        self
    }

    /// The rate-limit backend (default: an in-memory [`MemoryLimiter`] on the keyring's
    /// clock; a `RedisLimiter` (feature `redis`) for fleet-wide limits).
    pub fn rate_limiter<L2: RateLimiter>(self, limiter: L2) -> KeyringBuilder<S, L2> {
        KeyringBuilder {
            store: self.store,
            limiter,
            config: self.config,
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
    /// connection from the rest of the keyring (credits, updates). Without the `tokio`
    /// feature hashing runs in place on the caller and only the total
    /// `concurrency + max_waiting` is bounded.
    pub fn uncached_concurrency(mut self, concurrency: usize, max_waiting: usize) -> Self {
        self.config.uncached_concurrency = Some((concurrency, max_waiting));
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
        self.config
            .policies
            .insert(policy.name().to_owned(), Arc::new(policy));
        self
    }

    /// The policy (defined with [`policy`](Self::policy)) for keys that name none. Without
    /// it, such keys are not rate-limited.
    pub fn default_policy(mut self, name: &str) -> Self {
        self.config.default_policy = Some(name.to_owned());
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
        self.config.failed_attempts = Some(policy);
        self
    }

    /// Checks the configuration and builds the keyring.
    ///
    /// # Errors
    /// [`KeyringError::Config`] naming the setting that is out of range (a [`ConfigError`]),
    /// [`KeyringError::Hash`] when the dummy hash for unknown ids cannot be computed,
    /// [`KeyringError::Rng`] when no randomness is available for the cache key.
    pub fn build(self) -> Result<Keyring<S, L::Limiter>, KeyringError> {
        let config = self.config;
        let cache = match config.cache {
            None => None,
            Some((ttl, capacity)) => {
                if ttl <= TimeDelta::zero() || ttl > MAX_CACHE_TTL {
                    return Err(ConfigError::CacheTtl.into());
                }
                if capacity == 0 {
                    return Err(ConfigError::CacheCapacity.into());
                }
                Some(VerifiedCache::new(ttl, capacity)?)
            }
        };
        if config.rotation_grace < TimeDelta::zero()
            || config.rotation_grace > super::manage::MAX_ROTATION_GRACE
        {
            return Err(ConfigError::RotationGrace.into());
        }
        if config.last_used_debounce < TimeDelta::zero()
            || config.last_used_debounce > TimeDelta::days(1)
        {
            return Err(ConfigError::LastUsedDebounce.into());
        }
        let (concurrency, max_waiting) = config.uncached_concurrency.unwrap_or_else(|| {
            let cpus = std::thread::available_parallelism().map_or(1, usize::from);
            (cpus, cpus * 64)
        });
        if concurrency == 0 {
            return Err(ConfigError::UncachedConcurrency.into());
        }
        if let Some(prefix) = config.types.duplicate() {
            return Err(ConfigError::DuplicateKeyType(prefix.to_string()).into());
        }
        for key_type in config.types.iter() {
            if let Some(policy) = key_type.policy()
                && !config.policies.contains_key(policy)
            {
                return Err(ConfigError::UndefinedKeyTypePolicy {
                    key_type: key_type.name().to_string(),
                    policy: policy.to_owned(),
                }
                .into());
            }
            let (default, max) = key_type.lifetimes();
            let positive = |d: Option<TimeDelta>| d.is_none_or(|d| d > TimeDelta::zero());
            if !positive(default) || !positive(max) || default.zip(max).is_some_and(|(d, m)| d > m)
            {
                return Err(ConfigError::KeyTypeLifetime(key_type.name().to_string()).into());
            }
        }
        let default_policy = match &config.default_policy {
            None => None,
            Some(name) => Some(
                config
                    .policies
                    .get(name)
                    .cloned()
                    .ok_or_else(|| ConfigError::UndefinedDefaultPolicy(name.clone()))?,
            ),
        };
        #[cfg(feature = "tokens")]
        let tokens = match config.tokens {
            None => None,
            Some(tokens) => {
                tokens.validate().map_err(ConfigError::Tokens)?;
                Some(super::token::TokenState::new(tokens)?)
            }
        };
        // Built now, not on the first unknown id: that request would otherwise take twice
        // as long as a wrong secret, and a failure here would silently drop the padding.
        config.hashes.prepare_dummy()?;
        let limiter = self.limiter.into_rate_limiter(&config.clock);
        let built_at = {
            use crate::clock::Clock as _;
            config.clock.now()
        };
        Ok(Keyring {
            inner: Arc::new(Inner {
                types: config.types,
                store: self.store,
                limiter,
                policies: config.policies,
                default_policy,
                throttle: config
                    .failed_attempts
                    .map(|p| Arc::new(super::throttle::Throttle::new(p, config.clock.clone()))),
                hashes: config.hashes,
                clock: config.clock,
                metrics: crate::metrics::Handles::new(),
                anomalies: config.anomalies.map(super::anomaly::AnomalyDetector::new),
                usage: config.usage.map(|make| make(built_at)),
                cache,
                rotation_grace: config.rotation_grace,
                last_used: LastUsed::new(config.last_used_debounce),
                audit: config.audit,
                invalidation: config.invalidation,
                roles: config.roles,
                gate: super::hash_gate::HashGate::new(concurrency, max_waiting),
                warnings: super::refusal::WarnEvery::new(WARN_INTERVAL_SECS),
                store_failures: std::sync::atomic::AtomicU64::new(0),
                store_failing: std::sync::atomic::AtomicBool::new(false),
                #[cfg(feature = "tokens")]
                tokens,
            }),
            actor: None,
        })
    }
}

impl<S, L> std::fmt::Debug for KeyringBuilder<S, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.config;
        f.debug_struct("KeyringBuilder")
            .field(
                "types",
                &c.types.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .field("hashes", &c.hashes)
            .field("cache", &c.cache)
            .field("rotation_grace", &c.rotation_grace)
            .field("policies", &c.policies.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}
