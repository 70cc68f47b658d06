//! The hot path: from a presented string to a verified key or a precise refusal.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::hash_gate::{GateError, run_blocking, run_detached, spawn_or_run};
use super::key_type::KeyType;
use super::refill::credits_of;
use super::refusal::Refusal;
use super::throttle::Reservation;
use super::{AuditEvent, FailureReason, Keyring};
use crate::certificate::ClientCertificate;
use crate::clock::Clock as _;
use crate::format::{KeyId, ParsedKey};
use crate::hash::Verdict;
use crate::keyring::VerifyError;
use crate::metrics::{self, VerifyPath};
use crate::ratelimit::RateLimitDenial;
use crate::ratelimit::{Decision, Policy, RateLimitError, RateLimitHeaders, RateLimiter};
use crate::record::{Environment, KeyKind, KeyRecord, KeyStatus};
use crate::scope::{Requirement, ScopeSet};
use crate::store::{Decrement, KeyStore, StoreError};

/// Most rotations followed to find the record that holds a lineage's uses: one store read
/// per rotation since, paid only by metered keys still in their grace period.
const MAX_CREDIT_HOPS: usize = 32;

/// Step 4: the record belongs to the presented prefix and its key type. The hash covers
/// only the secret segment, so a key re-prefixed with a recomputed (public) checksum
/// matches too; checked after the hash, so a moved key costs exactly what a wrong secret
/// costs. A record issued as another kind, or in another environment, than its prefix's
/// type says now (a configuration that changed under stored keys) is refused the same way,
/// rather than trusted as what the configuration claims.
fn bound_to_type(
    found: (KeyRecord, Zeroizing<String>, bool),
    presented_prefix: &str,
    key_type: &KeyType,
) -> Result<(KeyRecord, Zeroizing<String>, bool), Refusal> {
    let record = &found.0;
    if record.prefix.as_str() != presented_prefix {
        return Err(Refusal::WrongPrefix);
    }
    let issued_as_other_kind = record.kind.is_some_and(|kind| kind != key_type.kind());
    let issued_elsewhere = record.kind.is_some()
        && record
            .environment
            .as_ref()
            .is_some_and(|env| env != key_type.environment());
    if issued_as_other_kind || issued_elsewhere {
        return Err(Refusal::WrongType);
    }
    Ok(found)
}

/// Step 6 for browsers: publishable keys only from their allowed origins (or any, if their
/// type allows it and they list none); secret and restricted keys not from browsers at all,
/// unless their type allows it.
fn check_origin(
    key_type: &KeyType,
    record: &KeyRecord,
    origin: Option<&str>,
) -> Result<(), Refusal> {
    if key_type.kind() == KeyKind::Publishable {
        let allowed = &record.attributes.allowed_origins;
        let ok = if allowed.is_empty() {
            key_type.allows_any_origin()
        } else {
            origin.is_some_and(|origin| allowed.iter().any(|a| a.matches(origin)))
        };
        return if ok {
            Ok(())
        } else {
            Err(Refusal::OriginNotAllowed)
        };
    }
    if origin.is_some() && !key_type.allows_browsers() {
        return Err(Refusal::SecretKeyInBrowser);
    }
    Ok(())
}

/// Step 7 for bound keys: the connection presented a certificate matching one of the key's
/// bindings (compared in constant time). Unbound keys pass whatever was presented.
fn check_certificate(
    record: &KeyRecord,
    presented: Option<&ClientCertificate>,
) -> Result<(), Refusal> {
    let bindings = &record.attributes.certificate_bindings;
    if bindings.is_empty() {
        return Ok(());
    }
    match presented {
        None => Err(Refusal::CertificateRequired),
        Some(cert) if crate::certificate::any_matches(bindings, cert) => Ok(()),
        Some(_) => Err(Refusal::CertificateMismatch),
    }
}

/// Why a verification that waited for the uncached path did not try the store.
#[derive(Debug, thiserror::Error)]
#[error("the store failed another verification while this one waited; not tried again")]
struct FailedWhileQueued;

fn gate_refusal(error: GateError) -> Refusal {
    match error {
        GateError::Overloaded => {
            metrics::uncached_overloaded();
            Refusal::Overloaded
        }
        GateError::Failed(e) => Refusal::Internal(e),
    }
}

/// The uses a stored record holds at `now`, counting refills that are due but not yet
/// written.
fn credits_now(record: &KeyRecord, now: DateTime<Utc>) -> u64 {
    record.remaining_uses.map_or(u64::MAX, |remaining| {
        credits_of(record, remaining).refilled(now).remaining
    })
}

/// The refusal for a request whose `cost` the record's uses do not cover at `now`, with
/// the wait until its refill schedule covers it (none without a schedule).
fn exhausted(record: &KeyRecord, cost: u32, now: DateTime<Utc>) -> Refusal {
    let credits = credits_of(record, record.remaining_uses.unwrap_or(0));
    let (_, decision) = credits.charge(cost, now);
    Refusal::UsageExhausted {
        retry_after: decision.retry_after,
    }
}

/// What the caller knows about the request a key was presented with.
///
/// ```
/// use keymint::{Requirement, VerifyContext};
///
/// let route_needs: Requirement = "users:read and (billing:read or admin:*)".parse()?;
/// let ctx = VerifyContext::new().client_ip("203.0.113.9".parse()?).require(&route_needs);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct VerifyContext<'r> {
    client_ip: Option<IpAddr>,
    requirement: Option<&'r Requirement>,
    cost: Option<u32>,
    environment: Option<&'r Environment>,
    origin: Option<&'r str>,
    client_certificate: Option<&'r ClientCertificate>,
}

impl<'r> VerifyContext<'r> {
    /// An empty context: no client address known, no scope required.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client's address (checked against the key's allowed networks).
    pub fn client_ip(mut self, ip: IpAddr) -> Self {
        self.client_ip = Some(ip);
        self
    }

    /// The scopes the request needs; a key without them is refused with
    /// [`VerifyError::InsufficientScope`] (HTTP 403).
    pub fn require(mut self, requirement: &'r Requirement) -> Self {
        self.requirement = Some(requirement);
        self
    }

    /// The request's weight against the key's rate limit and uses left (default 1; 0 only
    /// reports the limit's state and spends nothing).
    pub fn cost(mut self, cost: u32) -> Self {
        self.cost = Some(cost);
        self
    }

    /// The environment the request is served in; a valid key of another one is refused
    /// with [`VerifyError::WrongEnvironment`] and charged nothing. Default: the keyring's
    /// default environment (that of its first key type).
    pub fn environment(mut self, environment: &'r Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// The request's `Origin` header value: the request came from a browser. Publishable
    /// keys are checked against their allowed origins; secret and restricted keys are
    /// refused from browsers unless their type allows it.
    pub fn origin(mut self, origin: &'r str) -> Self {
        self.origin = Some(origin);
        self
    }

    /// The client certificate the request's TLS connection presented (mutual TLS). A key
    /// bound to certificates verifies only with a matching one
    /// ([`VerifyError::CertificateRequired`], [`VerifyError::CertificateMismatch`]: HTTP
    /// 401); unbound keys ignore it.
    pub fn client_certificate(mut self, certificate: &'r ClientCertificate) -> Self {
        self.client_certificate = Some(certificate);
        self
    }
}

/// A record that passed the secret check, with its scopes resolved: what the cache holds.
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// Shared: a derived token's view of its parent holds the parent's record, not a copy.
    pub(crate) record: Arc<KeyRecord>,
    pub(crate) granted: ScopeSet,
    pub(crate) key_type: Arc<KeyType>,
    /// The record's own rate limit as a policy, built once per authentication.
    pub(crate) own_policy: Option<Arc<Policy>>,
    /// Unix second before which no last-used write of this key can be due (a floor of the
    /// debounce's answer): a cache hit skips the debounce map until then.
    last_used_due: std::sync::atomic::AtomicI64,
    /// For a derived token: its parent key as authenticated. `granted` is then the token's
    /// narrower grant, and a requirement must hold for both (a `not` term checked against
    /// the token's grant alone could pass where the parent's fails).
    pub(crate) parent: Option<Arc<Authenticated>>,
    /// For a derived token: whether tokens may be used from browsers.
    pub(crate) browser_token: bool,
}

impl Authenticated {
    pub(crate) fn new(
        record: impl Into<Arc<KeyRecord>>,
        granted: ScopeSet,
        key_type: Arc<KeyType>,
        own_policy: Option<Arc<Policy>>,
    ) -> Self {
        Self {
            record: record.into(),
            granted,
            key_type,
            own_policy,
            last_used_due: std::sync::atomic::AtomicI64::new(i64::MIN),
            parent: None,
            browser_token: false,
        }
    }

    /// A derived token of `parent` that may do what `granted` says, as far as its parent
    /// still may.
    #[cfg(feature = "tokens")]
    pub(crate) fn derived(parent: Arc<Self>, granted: ScopeSet, browser_token: bool) -> Self {
        let mut token = Self::new(
            parent.record.clone(),
            granted,
            parent.key_type.clone(),
            parent.own_policy.clone(),
        );
        token.parent = Some(parent);
        token.browser_token = browser_token;
        token
    }
}

/// A key that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedKey {
    key: Arc<Authenticated>,
    remaining_uses: Option<u64>,
    rate_limit: Option<(Arc<Policy>, Decision)>,
    #[cfg(feature = "tokens")]
    pub(super) token: Option<Arc<crate::token::TokenClaims>>,
}

impl VerifiedKey {
    /// The key's record (as of the last store read; may be up to the cache TTL old).
    ///
    /// For a derived token this is its *parent's* record, with the parent's full scopes and
    /// roles: what the token may do is [`scopes`](Self::scopes). Check
    /// `token()` (feature `tokens`) before letting a request manage "its own" key by
    /// [`id`](Self::id): a token must not act as its parent.
    pub fn record(&self) -> &KeyRecord {
        &self.key.record
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.key.record.id
    }

    /// The key's type: its name (prefix), kind and environment.
    pub fn key_type(&self) -> &KeyType {
        &self.key.key_type
    }

    /// What kind of key it is.
    pub fn kind(&self) -> KeyKind {
        self.key.key_type.kind()
    }

    /// The environment the key belongs to (and the request was served in): route to test
    /// or live data by it.
    pub fn environment(&self) -> &Environment {
        self.key.key_type.environment()
    }

    /// The owner the key belongs to.
    pub fn owner(&self) -> &str {
        &self.key.record.owner
    }

    /// Every scope the key holds: its own plus those of its roles. For a derived token,
    /// what the token may do: its scopes, within what its parent holds now.
    pub fn scopes(&self) -> &ScopeSet {
        &self.key.granted
    }

    /// The derived token that was presented instead of the key itself (feature `tokens`):
    /// its claims. The rest of this value describes the token's parent key.
    #[cfg(feature = "tokens")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tokens")))]
    pub fn token(&self) -> Option<&crate::token::TokenClaims> {
        self.token.as_deref()
    }

    /// Uses left after this one, for keys with a use limit.
    pub fn remaining_uses(&self) -> Option<u64> {
        self.remaining_uses
    }

    /// The rate-limit decision, when a policy applied.
    pub fn rate_limit(&self) -> Option<&Decision> {
        self.rate_limit.as_ref().map(|(_, d)| d)
    }

    /// `RateLimit-Policy` and `RateLimit` header values for the response, when a policy
    /// applied.
    pub fn rate_limit_headers(&self) -> Option<RateLimitHeaders> {
        self.rate_limit
            .as_ref()
            .map(|(p, d)| RateLimitHeaders::new(p, d))
    }
}

impl<S: KeyStore, L: RateLimiter> Keyring<S, L> {
    /// Verifies a presented key in the documented order (see the [module docs](super)).
    ///
    /// Never grants access on a store or hash failure.
    ///
    /// # Errors
    /// The first check that failed, as a [`VerifyError`] (with an HTTP status).
    pub async fn verify(
        &self,
        presented: &str,
        ctx: &VerifyContext<'_>,
    ) -> Result<VerifiedKey, VerifyError> {
        let began = self.metrics_clock();
        #[cfg(feature = "tokens")]
        if let Some(tokens) = &self.inner.tokens
            && presented.starts_with(crate::token::TOKEN_HEADER)
        {
            let now = self.now();
            // Boxed, like every path but the cached one: a future holds room for the
            // largest path it may take, and moving that room costs every call.
            return Box::pin(self.verify_token(tokens, presented, ctx, began, now)).await;
        }
        let (parsed, key_type) = match self.inner.types.parse_shared(presented) {
            Ok(found) => found,
            Err(e) => {
                let error = self.refuse_unparsed(e, ctx);
                self.inner.metrics.verification(
                    error.code(),
                    VerifyPath::Rejected,
                    began,
                    self.metrics_clock(),
                );
                return Err(error);
            }
        };
        let now = self.now();
        let mut path = VerifyPath::Rejected;
        match self
            .check(presented, &parsed, key_type, ctx, now, &mut path)
            .await
        {
            Ok(verified) => {
                self.inner
                    .metrics
                    .verification("ok", path, began, self.metrics_clock());
                Ok(verified)
            }
            Err(refusal) => {
                let error = self.refuse(Some(parsed.id()), refusal, ctx, now);
                self.inner
                    .metrics
                    .verification(error.code(), path, began, self.metrics_clock());
                Err(error)
            }
        }
    }

    /// The time, read once per verification through the clock's fast path (for the
    /// system clock a calibrated TSC read, no system call). Layers above the keyring (the
    /// portal) stamp their events with it too.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.inner.clock.now_unix_nanos())
    }

    /// [`refuse`](Self::refuse) for a string that is no key at all, the commonest refusal
    /// under a flood: charged to the throttle, logged at debug, audited if a sink listens,
    /// with no clock reading unless the audit needs one.
    #[cold]
    fn refuse_unparsed(
        &self,
        error: crate::format::ParseError,
        ctx: &VerifyContext<'_>,
    ) -> VerifyError {
        if let Some(throttle) = &self.inner.throttle {
            throttle.charge(ctx.client_ip);
        }
        let (error, reason) = match error {
            crate::format::ParseError::PrefixMismatch => {
                (VerifyError::UnknownPrefix, FailureReason::UnknownPrefix)
            }
            other => (VerifyError::Malformed(other), FailureReason::Malformed),
        };
        tracing::debug!(reason = error.code(), "api key refused");
        if self.inner.audit.is_some() {
            let at = self.now();
            self.audit(|| AuditEvent::VerificationFailed {
                id: None,
                reason,
                client_ip: ctx.client_ip,
                at,
            });
        }
        error
    }

    /// A clock reading for the verification-duration metric: none without the `metrics`
    /// feature.
    #[inline]
    fn metrics_clock(&self) -> i64 {
        #[cfg(feature = "metrics")]
        {
            self.inner.clock.now_unix_nanos()
        }
        #[cfg(not(feature = "metrics"))]
        {
            0
        }
    }

    /// Every step after parsing, in order.
    async fn check(
        &self,
        presented: &str,
        parsed: &ParsedKey<'_>,
        key_type: &Arc<KeyType>,
        ctx: &VerifyContext<'_>,
        now: DateTime<Utc>,
        path: &mut VerifyPath,
    ) -> Result<VerifiedKey, Refusal> {
        let key = self
            .authenticate(presented, parsed, key_type, ctx, now, path)
            .await?;
        let outcome = self.check_authenticated(&key, key_type, ctx, now).await;
        self.count_usage(&key, &outcome, now).await;
        outcome
    }

    /// Counts an authenticated request's outcome for usage analytics, if configured.
    pub(super) async fn count_usage(
        &self,
        key: &Authenticated,
        outcome: &Result<VerifiedKey, Refusal>,
        now: DateTime<Utc>,
    ) {
        if let Some(usage) = &self.inner.usage {
            let code = match outcome {
                Ok(_) => crate::usage::VERIFIED,
                Err(refusal) => refusal.code(),
            };
            if usage.count(&key.record.id, &key.record.owner, code, now) {
                Box::pin(self.flush_usage_in_background(now)).await;
            }
        }
    }

    /// Every step after authentication, in order.
    pub(super) async fn check_authenticated(
        &self,
        key: &Arc<Authenticated>,
        key_type: &Arc<KeyType>,
        ctx: &VerifyContext<'_>,
        now: DateTime<Utc>,
    ) -> Result<VerifiedKey, Refusal> {
        let key = key.clone();
        let record = &key.record;

        let served = ctx
            .environment
            .unwrap_or_else(|| self.inner.types.default_type().environment());
        if key_type.environment() != served {
            return Err(Refusal::WrongEnvironment {
                key: key_type.environment().clone(),
                served: served.clone(),
            });
        }
        match record.status {
            KeyStatus::Active => {}
            KeyStatus::Revoked => return Err(Refusal::Revoked),
            KeyStatus::Disabled => return Err(Refusal::Disabled),
        }
        if record.attributes.not_before.is_some_and(|nb| now < nb) {
            return Err(Refusal::NotYetValid);
        }
        if record.is_expired_at(now) {
            return Err(Refusal::Expired);
        }
        if !record.attributes.allowed_networks.is_empty()
            && !ctx.client_ip.is_some_and(|ip| {
                record
                    .attributes
                    .allowed_networks
                    .iter()
                    .any(|n| n.contains(ip))
            })
        {
            return Err(Refusal::ClientNotAllowed);
        }
        if !key.browser_token {
            check_origin(key_type, record, ctx.origin)?;
        }
        check_certificate(record, ctx.client_certificate)?;
        if let Some(requirement) = ctx.requirement {
            requirement
                .check(&key.granted)
                .map_err(Refusal::InsufficientScope)?;
            if let Some(parent) = &key.parent {
                requirement
                    .check(&parent.granted)
                    .map_err(Refusal::InsufficientScope)?;
            }
        }

        let cost = ctx.cost.unwrap_or(1);
        let rate_limit = self.charge_rate_limit(&key, key_type, cost).await?;
        let remaining_uses = if record.remaining_uses.is_some() {
            Box::pin(self.spend_credits(&key, cost, now)).await?
        } else {
            None
        };

        self.note_use(&key, now).await;
        if let Some(detector) = &self.inner.anomalies {
            for anomaly in detector.observe(record.lineage(), ctx.client_ip, now) {
                tracing::info!(key_id = %record.id, ?anomaly, "unusual api key use");
                self.audit(|| AuditEvent::Anomaly {
                    id: record.id.clone(),
                    anomaly,
                    client_ip: ctx.client_ip,
                    at: now,
                });
            }
        }
        tracing::debug!(key_id = %record.id, "api key verified");
        Ok(VerifiedKey {
            key,
            remaining_uses,
            rate_limit,
            #[cfg(feature = "tokens")]
            token: None,
        })
    }

    /// The lookup and the constant-time secret check: the cached record, or the stored one.
    ///
    /// A cache hit costs no store read and no hash, so it skips the failed-attempt
    /// throttle: an attacker sharing a client address cannot lock out keys that are already
    /// verified. Everything past the cache is the expensive path: throttled per client and
    /// bounded as a whole by the hash gate, whose slot is held from before the lookup until
    /// the hash has finished.
    async fn authenticate(
        &self,
        presented: &str,
        parsed: &ParsedKey<'_>,
        key_type: &Arc<KeyType>,
        ctx: &VerifyContext<'_>,
        now: DateTime<Utc>,
        path: &mut VerifyPath,
    ) -> Result<Arc<Authenticated>, Refusal> {
        // The checksum is left out of the digest: parsing checked it, and it is a function
        // of the rest. Without it a default key (53 bytes) is one SHA-256 block, not two.
        let body = &presented[..presented.len() - crate::format::CHECKSUM_LEN];
        let digest = self.inner.cache.as_ref().map(|c| c.digest(body));
        let generation = self.inner.cache.as_ref().map_or(0, |c| c.generation());
        if let (Some(cache), Some(digest)) = (&self.inner.cache, &digest) {
            if let Some(key) = cache.get(parsed.id(), digest, now) {
                // The digest covers the whole key, prefix included, so this holds for
                // every hit; checked anyway, since a moved key must never ride on a cache
                // entry.
                if key.record.prefix.as_str() == parsed.prefix() {
                    self.inner.metrics.cache_lookup(true);
                    *path = VerifyPath::Cached;
                    return Ok(key);
                }
            }
            self.inner.metrics.cache_lookup(false);
        }
        *path = VerifyPath::Uncached;

        let reservation = self.throttle_reserve(ctx)?;
        let (record, secret, needs_rehash) =
            Box::pin(self.lookup_and_check(parsed, Some(key_type), reservation, false)).await?;
        if needs_rehash {
            Box::pin(self.rehash(record.clone(), secret)).await;
        }
        let key = Arc::new(self.authenticated(record, key_type.clone()));
        if let (Some(cache), Some(digest)) = (&self.inner.cache, digest) {
            cache.insert(generation, digest, key.clone(), now);
        }
        Ok(key)
    }

    /// A record that passed the secret check, with its roles resolved to scopes and its
    /// own rate limit built as a policy, once.
    pub(super) fn authenticated(&self, record: KeyRecord, key_type: Arc<KeyType>) -> Authenticated {
        let granted = self
            .inner
            .roles
            .resolve(&record.attributes.scopes, &record.attributes.roles);
        let own_policy = record
            .attributes
            .rate_limit
            .map(|limit| Arc::new(limit.policy()));
        Authenticated::new(record, granted, key_type, own_policy)
    }

    /// The store lookup and the constant-time secret check, bounded together by the hash
    /// gate. They run as one task of their own that owns the gate slot and the client's
    /// throttle reservation: a caller that stops waiting (an HTTP timeout, a client
    /// disconnect) frees no slot while the store query or the hash still runs, and the
    /// attempt is charged to the client by its outcome, not by whether anyone still waits.
    ///
    /// With `bind_to`, a record of another prefix or type than the presented key's is
    /// refused (step 4); without it, any record whose hash the secret matches is returned
    /// (leak reports: a leaked secret is a leak under whatever prefix it was found).
    pub(super) async fn lookup_and_check(
        &self,
        parsed: &ParsedKey<'_>,
        bind_to: Option<&Arc<KeyType>>,
        reservation: Option<Reservation>,
        priority: bool,
    ) -> Result<(KeyRecord, Zeroizing<String>, bool), Refusal> {
        use std::sync::atomic::Ordering;
        let failures_before = self.inner.store_failures.load(Ordering::Acquire);
        let slot = if priority {
            self.inner.gate.enter_priority().await
        } else {
            self.inner.gate.enter().await
        }
        .map_err(gate_refusal)?;
        // During an outage every slot holder waits out the store's timeout; without this, a
        // verification queued behind them would wait for its turn and then for its own
        // timeout too (one more timeout per round of the queue). A lookup that failed while
        // this one waited means the store is failing now: fail closed at once.
        // Only while the store is failing now (the latest lookup failed): a lookup that
        // succeeded since (an unknown id answered `None` counts) clears it, so one bad row
        // or a single transient error cannot refuse the whole queue.
        if self.inner.store_failures.load(Ordering::Acquire) != failures_before
            && self.inner.store_failing.load(Ordering::Acquire)
        {
            return Err(Refusal::StoreUnavailable(StoreError::unavailable(
                FailedWhileQueued,
            )));
        }
        let keyring = self.clone();
        let id = parsed.key_id();
        let binding = bind_to.map(|key_type| (parsed.prefix().to_owned(), key_type.clone()));
        let secret = Zeroizing::new(parsed.expose_secret().to_owned());
        let work = async move {
            let _slot = slot;
            let checked =
                keyring
                    .lookup_and_hash(id, secret)
                    .await
                    .and_then(|found| match &binding {
                        Some((prefix, key_type)) => bound_to_type(found, prefix, key_type),
                        None => Ok(found),
                    });
            if let (Err(refusal), Some(reservation)) = (&checked, reservation)
                && refusal.is_authentication_failure()
            {
                reservation.keep();
            }
            checked
        };
        run_detached(work).await.map_err(Refusal::Internal)?
    }

    /// The body of [`lookup_and_check`](Self::lookup_and_check), run inside its slot.
    async fn lookup_and_hash(
        &self,
        id: KeyId,
        secret: Zeroizing<String>,
    ) -> Result<(KeyRecord, Zeroizing<String>, bool), Refusal> {
        use std::sync::atomic::Ordering;
        let hashes = self.inner.hashes.clone();
        let lookup = metrics::Timer::start();
        let stored = match self.inner.store.get(&id).await {
            Ok(stored) => {
                self.inner.store_failing.store(false, Ordering::Release);
                stored
            }
            Err(e) => {
                self.inner.store_failing.store(true, Ordering::Release);
                self.inner.store_failures.fetch_add(1, Ordering::AcqRel);
                return Err(Refusal::StoreUnavailable(e));
            }
        };
        metrics::store_lookup(lookup);
        let Some(record) = stored else {
            // Same work as a wrong secret, so timing does not reveal which ids exist.
            let secret = secret.clone();
            run_blocking(move || hashes.verify_dummy_reachable(secret.as_bytes()))
                .await
                .map_err(Refusal::Internal)?
                .map_err(Refusal::from_hash)?;
            return Err(Refusal::NotFound);
        };
        let stored_hash = record.hash.clone();
        let check_secret = secret.clone();
        let hashing = metrics::Timer::start();
        let verdict =
            run_blocking(move || hashes.verify(check_secret.as_bytes(), stored_hash.as_str()))
                .await
                .map_err(Refusal::Internal)?;
        metrics::hash(hashing);
        match verdict {
            Ok(Verdict::Match { needs_rehash }) => Ok((record, secret, needs_rehash)),
            Ok(Verdict::Mismatch) => Err(Refusal::WrongSecret),
            Err(e) => {
                tracing::debug!(key_id = %id, error = %e, "stored hash could not be checked");
                Err(Refusal::from_hash(e))
            }
        }
    }

    /// Step 7: the key's policy (its own, else the keyring's default), charged to the
    /// key's lineage so that rotation hands the budget on instead of resetting it.
    async fn charge_rate_limit(
        &self,
        key: &Authenticated,
        key_type: &KeyType,
        cost: u32,
    ) -> Result<Option<(Arc<Policy>, Decision)>, Refusal> {
        let record = &key.record;
        let named = record
            .attributes
            .rate_limit_policy
            .as_deref()
            .or(key_type.policy());
        let policy = match (&key.own_policy, named) {
            (Some(own), _) => own.clone(),
            (None, Some(name)) => match self.inner.policies.get(name) {
                Some(policy) => policy.clone(),
                None => {
                    tracing::debug!(key_id = %record.id, policy = %name, "key names an undefined rate-limit policy");
                    return Err(Refusal::UnknownPolicy);
                }
            },
            (None, None) => match &self.inner.default_policy {
                Some(policy) => policy.clone(),
                None => return Ok(None),
            },
        };
        match self
            .inner
            .limiter
            .check(record.lineage().as_str(), &policy, cost)
            .await
        {
            Ok(decision) if decision.allowed => Ok(Some((policy, decision))),
            Ok(decision) => {
                metrics::rate_limit_denial(policy.name());
                Err(Refusal::RateLimited(RateLimitDenial::new(policy, decision)))
            }
            Err(e @ RateLimitError::CostTooHigh { .. }) => Err(Refusal::InvalidCost(e)),
            Err(e) => Err(Refusal::LimiterUnavailable(e)),
        }
    }

    /// Step 8: uses left, spent by the request's weight (a peek spends none but is refused
    /// when none are left). A rotated key's uses moved to its successor, which both keys
    /// draw on during the grace period; a copy of the record that predates the rotation
    /// (another process's cache) finds out when its own balance is exhausted.
    async fn spend_credits(
        &self,
        key: &Authenticated,
        cost: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, Refusal> {
        if key.record.remaining_uses.is_none() {
            return Ok(None);
        }
        let mut holder: Option<KeyRecord> = None;
        for _ in 0..MAX_CREDIT_HOPS {
            let current = holder.as_ref().unwrap_or(&key.record);
            if cost == 0 {
                // A peek reads the balance as stored, refilled as it would be now.
                let fresh = self.stored_record(&current.id).await?;
                if let (Some(0), Some(next)) = (fresh.remaining_uses, &fresh.successor) {
                    holder = Some(self.stored_record(next).await?);
                    continue;
                }
                return match fresh.remaining_uses {
                    None => Ok(None),
                    Some(_) => match credits_now(&fresh, now) {
                        0 => Err(exhausted(&fresh, cost, now)),
                        left => Ok(Some(left)),
                    },
                };
            }
            if super::refill::refill_due(current, now) {
                // Only a key's own cache entry is refreshed, never from a token's view of
                // it (whose grant is narrower).
                let cached = (current.id == key.record.id && key.parent.is_none()).then_some(key);
                self.refill_credits(&current.id, cached, now)
                    .await
                    .map_err(Refusal::StoreUnavailable)?;
            }
            match self
                .inner
                .store
                .decrement_remaining(&current.id, u64::from(cost))
                .await
                .map_err(Refusal::StoreUnavailable)?
            {
                Decrement::Taken { remaining } => return Ok(Some(remaining)),
                Decrement::Unlimited => return Ok(None),
                Decrement::Exhausted { .. } => {
                    let fresh = self.stored_record(&current.id).await?;
                    match &fresh.successor {
                        Some(next) if fresh.remaining_uses.is_some() => {
                            holder = Some(self.stored_record(next).await?);
                        }
                        _ => return Err(exhausted(&fresh, cost, now)),
                    }
                }
            }
        }
        // A chain of rotations longer than any grace period allows: fail closed.
        Err(Refusal::UsageExhausted { retry_after: None })
    }

    /// A record that must exist (it was just verified or is linked as a successor).
    async fn stored_record(&self, id: &KeyId) -> Result<KeyRecord, Refusal> {
        match self.inner.store.get(id).await {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(Refusal::StoreUnavailable(
                crate::store::StoreError::NotFound,
            )),
            Err(e) => Err(Refusal::StoreUnavailable(e)),
        }
    }

    /// Reports that `presented` was sent over plain HTTP and refused, so its owner can roll
    /// it: once its secret is confirmed, an [`AuditEvent::SentInClear`] and a rate-limited
    /// warning. The HTTP layer calls it.
    ///
    /// The id and checksum of a key are public, so the report is made only for a real key:
    /// the secret is checked as [`verify`](Self::verify) checks it (the cache, else the
    /// failed-attempt throttle and the bounded uncached path, which a forged key is charged
    /// to), and nothing else is checked or charged. The check runs in the background (on
    /// tokio) and outlives the request: a client that hangs up does not cancel the report.
    pub async fn report_sent_in_clear(&self, presented: &str, client_ip: Option<IpAddr>) {
        let keyring = self.clone();
        let presented = Zeroizing::new(presented.to_owned());
        spawn_or_run(async move {
            keyring.confirm_sent_in_clear(&presented, client_ip).await;
        })
        .await;
    }

    async fn confirm_sent_in_clear(&self, presented: &str, client_ip: Option<IpAddr>) {
        let now = self.inner.clock.now();
        let Ok((parsed, key_type)) = self.inner.types.parse_shared(presented) else {
            return;
        };
        let mut ctx = VerifyContext::new();
        ctx.client_ip = client_ip;
        let mut path = VerifyPath::Rejected;
        let key = match self
            .authenticate(presented, &parsed, key_type, &ctx, now, &mut path)
            .await
        {
            Ok(key) => key,
            Err(refusal) => {
                tracing::debug!(
                    key_id = parsed.id(),
                    reason = refusal.code(),
                    "a key sent over plain http did not authenticate: not reported"
                );
                return;
            }
        };
        let id = key.record.id.clone();
        if let Some(suppressed) = self.inner.warnings.admit(now.timestamp()) {
            tracing::warn!(
                key_id = %id,
                suppressed,
                "api key sent over plain http: refused; roll the key"
            );
        }
        self.audit(|| AuditEvent::SentInClear {
            id,
            client_ip,
            at: now,
        });
    }

    /// Reserves one failed attempt of the client's budget before the expensive path, or
    /// refuses a client whose budget is spent.
    fn throttle_reserve(&self, ctx: &VerifyContext<'_>) -> Result<Option<Reservation>, Refusal> {
        match &self.inner.throttle {
            Some(throttle) => throttle.reserve(ctx.client_ip).map_err(Refusal::Throttled),
            None => Ok(None),
        }
    }

    /// Logs and audits a refusal, charges the failed-attempt throttle for authentication
    /// failures, and turns it into the caller's error.
    pub(super) fn refuse(
        &self,
        id: Option<&str>,
        refusal: Refusal,
        ctx: &VerifyContext<'_>,
        now: DateTime<Utc>,
    ) -> VerifyError {
        // A forged token is charged here (keys that do not parse are charged in
        // `refuse_unparsed`; the expensive path charged its reservation already).
        if matches!(refusal, Refusal::BadToken)
            && let Some(throttle) = &self.inner.throttle
        {
            throttle.charge(ctx.client_ip);
        }
        match &refusal {
            Refusal::StoreUnavailable(_) => metrics::store_error(metrics::StoreOp::Verify),
            Refusal::LimiterUnavailable(_) => metrics::limiter_error(),
            _ => {}
        }
        let reason = refusal.reason();
        let failure = refusal.is_failure();
        let error = refusal.into_error();
        // Refusals are the request's business and cost a debug line at most: a flood of
        // forged keys must not flood the logs. Failures of the service itself are warnings,
        // one every few seconds with a count of the rest.
        if failure {
            if let Some(suppressed) = self.inner.warnings.admit(now.timestamp()) {
                tracing::warn!(
                    reason = error.code(),
                    error = %error,
                    suppressed,
                    "api key verification could not be completed"
                );
            }
        } else {
            tracing::debug!(key_id = id, reason = error.code(), "api key refused");
        }
        self.audit(|| AuditEvent::VerificationFailed {
            id: id.map(KeyId::from_checked),
            reason,
            client_ip: ctx.client_ip,
            at: now,
        });
        error
    }

    /// Upgrades a record's hash to the current hasher, in the background; failures are
    /// logged, never returned.
    async fn rehash(&self, record: KeyRecord, secret: Zeroizing<String>) {
        let keyring = self.clone();
        spawn_or_run(async move {
            let hashes = keyring.inner.hashes.clone();
            // Through the gate: an upgrade wave must not crowd out verifications; when
            // it is full the upgrade simply happens on a later verification.
            let Ok(slot) = keyring.inner.gate.enter().await else {
                return;
            };
            let fresh = match slot.run(move || hashes.hash(secret.as_bytes())).await {
                Ok(Ok(fresh)) => fresh,
                Ok(Err(e)) | Err(GateError::Failed(e)) => {
                    tracing::warn!(key_id = %record.id, error = %e, "rehash failed");
                    return;
                }
                Err(GateError::Overloaded) => return,
            };
            let old_hash = record.hash.clone();
            let result = keyring
                .modify(&record.id, |r| {
                    // Only replace the hash we verified against; a concurrent change wins.
                    if r.hash == old_hash {
                        r.hash = fresh.clone();
                    }
                    Ok(())
                })
                .await;
            match result {
                Ok(_) => keyring.audit(|| AuditEvent::Rehashed {
                    id: record.id.clone(),
                }),
                Err(e) => tracing::warn!(key_id = %record.id, error = %e, "rehash not stored"),
            }
        })
        .await;
    }

    /// Queues a debounced last-used write and flushes in the background.
    async fn note_use(&self, key: &Authenticated, now: DateTime<Utc>) {
        use std::sync::atomic::Ordering;
        let secs = now.timestamp();
        if secs < key.last_used_due.load(Ordering::Relaxed) {
            return;
        }
        let (queued, next_write) = self.inner.last_used.touch(&key.record.id, now);
        key.last_used_due
            .store(next_write.timestamp(), Ordering::Relaxed);
        if !queued || !self.inner.last_used.try_start_flush() {
            return;
        }
        let keyring = self.clone();
        Box::pin(spawn_or_run(async move {
            // Cleared even if the store panics, so later uses still get written.
            let _flushing = super::last_used::FlushGuard(&keyring.inner.last_used);
            // Drain what arrives while writing too, rather than leave it for the next use.
            while keyring.inner.last_used.has_pending() {
                if !keyring.flush_batch().await {
                    break;
                }
            }
        }))
        .await;
    }

    /// Writes the usage counts gathered so far (see
    /// [`KeyringBuilder::usage`](super::KeyringBuilder::usage)) now: call it on shutdown.
    /// A flush the keyring started in the background is waited for, so when this returns
    /// `Ok` every count made before the call is written. Without usage counting configured,
    /// does nothing.
    ///
    /// # Errors
    /// The usage store's failure (the counts are kept for the next flush).
    pub async fn flush_usage(&self) -> Result<(), crate::store::StoreError> {
        match &self.inner.usage {
            Some(usage) => {
                let result = usage.flush(self.inner.clock.now(), true).await;
                if result.is_err() {
                    metrics::store_error(metrics::StoreOp::Usage);
                }
                result
            }
            None => Ok(()),
        }
    }

    /// Requests whose usage was not counted because too many counts were waiting to be
    /// written (the usage store kept failing).
    pub fn usage_not_counted(&self) -> u64 {
        self.inner
            .usage
            .as_ref()
            .map_or(0, crate::usage::UsageRecorder::dropped)
    }

    async fn flush_usage_in_background(&self, now: DateTime<Utc>) {
        let keyring = self.clone();
        spawn_or_run(async move {
            if let Some(usage) = &keyring.inner.usage
                && let Err(e) = usage.flush(now, false).await
            {
                metrics::store_error(metrics::StoreOp::Usage);
                tracing::warn!(error = %e, "usage counts not written; will retry");
            }
        })
        .await;
    }

    /// Writes queued last-used times now. Call it on shutdown, or periodically when not
    /// running on tokio (without a runtime, writes happen inline on the verifying task).
    /// A write the keyring started in the background is waited for (feature `tokio`), so
    /// when this returns `Ok` every use noted before the call is written.
    ///
    /// # Errors
    /// The store's error; the batch stays queued for the next flush (as it does when the
    /// caller stops waiting).
    pub async fn flush_last_used(&self) -> Result<(), crate::store::StoreError> {
        #[cfg(feature = "tokio")]
        let _one_writer = self.inner.last_used.writing.lock().await;
        let batch = self.inner.last_used.take_pending();
        if batch.is_empty() {
            return Ok(());
        }
        let unwritten = super::last_used::Unwritten::new(&self.inner.last_used, batch);
        let result = self.inner.store.record_last_used(unwritten.batch()).await;
        if result.is_ok() {
            unwritten.written();
        } else {
            metrics::store_error(metrics::StoreOp::LastUsed);
        }
        result
    }

    /// One batch; whether it was written.
    async fn flush_batch(&self) -> bool {
        match self.flush_last_used().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "last-used write failed; will retry");
                false
            }
        }
    }
}
