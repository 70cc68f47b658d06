//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! keymint only emits; your application installs a recorder (a Prometheus exporter, for
//! example) and every keyring reports to it. **Install the recorder before building your
//! keyrings**: a keyring registers the handles of its hot path (verifications, their
//! durations, cache lookups) once, when it is built, so that a verification costs a few
//! atomic operations rather than a metric lookup; a keyring built before any recorder was
//! installed reports those to nobody. Without a recorder, or without the feature, the
//! verify path pays two clock reads and a few no-op calls (`cargo bench --bench keyring`
//! with and without `--features metrics`; see the README's Monitoring section).
//!
//! Labels are bounded: outcome codes, path and operation names, and the rate-limit policy
//! names you configured. No label ever carries a key id, an owner, an address or anything
//! else that grows with traffic.
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `keymint_verifications_total` | counter | `outcome`: `ok` or a [`VerifyError::code`](crate::VerifyError::code) | every verification |
//! | `keymint_verify_duration_seconds` | histogram | `path`: `cached`, `uncached`, `token` or `rejected` | time in [`Keyring::verify`](crate::Keyring::verify); `rejected` means refused before any lookup (malformed, unknown prefix, bad checksum); `token` a derived token (feature `tokens`) |
//! | `keymint_cache_lookups_total` | counter | `result`: `hit` or `miss` | verified-key cache lookups (hit ratio = hit / (hit + miss)) |
//! | `keymint_store_lookup_duration_seconds` | histogram | | the store read of an uncached verification |
//! | `keymint_hash_duration_seconds` | histogram | | the secret check of an uncached verification (Argon2 or HMAC) |
//! | `keymint_rate_limit_denials_total` | counter | `policy`: the policy's name (`key` for a key's own limit) | requests refused by a rate limit |
//! | `keymint_uncached_in_flight` | gauge | | verifications holding a place on the uncached path: a store lookup and hash running (all keyrings of the process) |
//! | `keymint_uncached_waiting` | gauge | | verifications waiting for such a place |
//! | `keymint_uncached_overloaded_total` | counter | | verifications refused because the hashing slots and queue were full |
//! | `keymint_store_errors_total` | counter | `op`: `verify`, `issue`, `manage` (revoke, rotate, update, ...), `last_used` or `usage` | store failures, by what the keyring was doing |
//! | `keymint_limiter_errors_total` | counter | | rate-limiter failures seen by verifications |
//! | `keymint_keys_total` | counter | `event`: `issued`, `rotated`, `revoked` | key lifecycle |

/// `keymint_verifications_total`.
pub const VERIFICATIONS: &str = "keymint_verifications_total";
/// `keymint_verify_duration_seconds`.
pub const VERIFY_DURATION: &str = "keymint_verify_duration_seconds";
/// `keymint_cache_lookups_total`.
pub const CACHE_LOOKUPS: &str = "keymint_cache_lookups_total";
/// `keymint_store_lookup_duration_seconds`.
pub const STORE_LOOKUP_DURATION: &str = "keymint_store_lookup_duration_seconds";
/// `keymint_hash_duration_seconds`.
pub const HASH_DURATION: &str = "keymint_hash_duration_seconds";
/// `keymint_rate_limit_denials_total`.
pub const RATE_LIMIT_DENIALS: &str = "keymint_rate_limit_denials_total";
/// `keymint_uncached_in_flight`.
pub const UNCACHED_IN_FLIGHT: &str = "keymint_uncached_in_flight";
/// `keymint_uncached_waiting`.
pub const UNCACHED_WAITING: &str = "keymint_uncached_waiting";
/// `keymint_uncached_overloaded_total`.
pub const UNCACHED_OVERLOADED: &str = "keymint_uncached_overloaded_total";
/// `keymint_store_errors_total`.
pub const STORE_ERRORS: &str = "keymint_store_errors_total";
/// `keymint_limiter_errors_total`.
pub const LIMITER_ERRORS: &str = "keymint_limiter_errors_total";
/// `keymint_keys_total`.
pub const KEYS: &str = "keymint_keys_total";

/// What the keyring was doing when its store failed, for [`STORE_ERRORS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreOp {
    Verify,
    Issue,
    Manage,
    LastUsed,
    Usage,
}

impl StoreOp {
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn label(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::Issue => "issue",
            Self::Manage => "manage",
            Self::LastUsed => "last_used",
            Self::Usage => "usage",
        }
    }
}

/// Which way a verification went, for [`VERIFY_DURATION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VerifyPath {
    Rejected = 0,
    Cached = 1,
    Uncached = 2,
    /// A derived token (feature `tokens`).
    #[cfg_attr(not(feature = "tokens"), allow(dead_code))]
    Token = 3,
}

impl VerifyPath {
    #[cfg(feature = "metrics")]
    fn label(self) -> &'static str {
        match self {
            Self::Rejected => "rejected",
            Self::Cached => "cached",
            Self::Uncached => "uncached",
            Self::Token => "token",
        }
    }
}

/// A start time when metrics are compiled in; nothing otherwise. For the slow paths
/// (store reads, hashes), where a clock read is noise.
#[derive(Clone, Copy)]
pub(crate) struct Timer(#[cfg(feature = "metrics")] std::time::Instant);

impl Timer {
    #[inline]
    pub(crate) fn start() -> Self {
        Self(
            #[cfg(feature = "metrics")]
            std::time::Instant::now(),
        )
    }
}

/// Every outcome a verification can have: `ok` and each `VerifyError::code`.
#[cfg(feature = "metrics")]
const OUTCOMES: [&str; 25] = [
    "ok",
    "malformed",
    "unknown_prefix",
    "invalid",
    "revoked",
    "disabled",
    "expired",
    "not_yet_valid",
    "wrong_environment",
    "origin_not_allowed",
    "secret_key_in_browser",
    "client_not_allowed",
    "certificate_required",
    "certificate_mismatch",
    "insufficient_scope",
    "rate_limited",
    "throttled",
    "unknown_policy",
    "invalid_cost",
    "rate_limiter_unavailable",
    "usage_exhausted",
    "overloaded",
    "store_unavailable",
    "pepper_unavailable",
    "internal",
];

/// The hot path's handles, registered once per keyring (with whatever recorder is
/// installed then).
pub(crate) struct Handles {
    #[cfg(feature = "metrics")]
    outcomes: Vec<metrics::Counter>,
    #[cfg(feature = "metrics")]
    durations: [metrics::Histogram; 4],
    #[cfg(feature = "metrics")]
    cache: [metrics::Counter; 2],
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handles").finish_non_exhaustive()
    }
}

impl Handles {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(feature = "metrics")]
            outcomes: OUTCOMES
                .iter()
                .map(|outcome| metrics::counter!(VERIFICATIONS, "outcome" => *outcome))
                .collect(),
            #[cfg(feature = "metrics")]
            durations: [
                VerifyPath::Rejected,
                VerifyPath::Cached,
                VerifyPath::Uncached,
                VerifyPath::Token,
            ]
            .map(|path| metrics::histogram!(VERIFY_DURATION, "path" => path.label())),
            #[cfg(feature = "metrics")]
            cache: ["hit", "miss"]
                .map(|result| metrics::counter!(CACHE_LOOKUPS, "result" => result)),
        }
    }

    /// One verification, begun and ended at these clock readings (Unix nanoseconds).
    #[inline]
    #[allow(unused_variables)]
    pub(crate) fn verification(
        &self,
        outcome: &'static str,
        path: VerifyPath,
        began: i64,
        ended: i64,
    ) {
        #[cfg(feature = "metrics")]
        {
            let slot = OUTCOMES.iter().position(|o| *o == outcome);
            match slot.and_then(|i| self.outcomes.get(i)) {
                Some(counter) => counter.increment(1),
                None => metrics::counter!(VERIFICATIONS, "outcome" => outcome).increment(1),
            }
            #[allow(clippy::cast_precision_loss)] // nanoseconds of one call
            let seconds = ended.saturating_sub(began).max(0) as f64 / 1e9;
            self.durations[path as usize].record(seconds);
        }
    }

    /// One verified-key cache lookup.
    #[inline]
    #[allow(unused_variables)]
    pub(crate) fn cache_lookup(&self, hit: bool) {
        #[cfg(feature = "metrics")]
        self.cache[usize::from(!hit)].increment(1);
    }
}

#[cfg(feature = "metrics")]
mod emit {
    use super::*;

    pub(crate) fn store_lookup(timer: Timer) {
        metrics::histogram!(STORE_LOOKUP_DURATION).record(timer.0.elapsed().as_secs_f64());
    }

    pub(crate) fn hash(timer: Timer) {
        metrics::histogram!(HASH_DURATION).record(timer.0.elapsed().as_secs_f64());
    }

    pub(crate) fn rate_limit_denial(policy: &str) {
        metrics::counter!(RATE_LIMIT_DENIALS, "policy" => policy.to_owned()).increment(1);
    }

    /// One more verification holds a place on the uncached path (increments, so that
    /// racing threads and several keyrings add up instead of overwriting each other).
    pub(crate) fn uncached_enter() {
        metrics::gauge!(UNCACHED_IN_FLIGHT).increment(1.0);
    }

    pub(crate) fn uncached_leave() {
        metrics::gauge!(UNCACHED_IN_FLIGHT).decrement(1.0);
    }

    /// One more verification waits for a place.
    #[cfg(feature = "tokio")]
    pub(crate) fn uncached_wait() {
        metrics::gauge!(UNCACHED_WAITING).increment(1.0);
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn uncached_waited() {
        metrics::gauge!(UNCACHED_WAITING).decrement(1.0);
    }

    pub(crate) fn uncached_overloaded() {
        metrics::counter!(UNCACHED_OVERLOADED).increment(1);
    }

    pub(crate) fn store_error(op: StoreOp) {
        metrics::counter!(STORE_ERRORS, "op" => op.label()).increment(1);
    }

    pub(crate) fn limiter_error() {
        metrics::counter!(LIMITER_ERRORS).increment(1);
    }

    pub(crate) fn key_event(event: &'static str) {
        metrics::counter!(KEYS, "event" => event).increment(1);
    }
}

#[cfg(not(feature = "metrics"))]
#[allow(clippy::missing_const_for_fn, clippy::needless_pass_by_value)]
mod emit {
    use super::Timer;

    #[inline(always)]
    pub(crate) fn store_lookup(_: Timer) {}
    #[inline(always)]
    pub(crate) fn hash(_: Timer) {}
    #[inline(always)]
    pub(crate) fn rate_limit_denial(_: &str) {}
    #[inline(always)]
    pub(crate) fn uncached_enter() {}
    #[inline(always)]
    pub(crate) fn uncached_leave() {}
    #[cfg(feature = "tokio")]
    #[inline(always)]
    pub(crate) fn uncached_wait() {}
    #[cfg(feature = "tokio")]
    #[inline(always)]
    pub(crate) fn uncached_waited() {}
    #[inline(always)]
    pub(crate) fn uncached_overloaded() {}
    #[inline(always)]
    pub(crate) fn store_error(_: super::StoreOp) {}
    #[inline(always)]
    pub(crate) fn limiter_error() {}
    #[inline(always)]
    pub(crate) fn key_event(_: &'static str) {}
}

pub(crate) use emit::*;
