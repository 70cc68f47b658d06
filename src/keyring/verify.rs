//! The hot path: from a presented string to a verified key or a precise refusal.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::blocking::{GateError, spawn_or_run};
use super::limits::RateLimitDenial;
use super::{AuditEvent, FailureReason, Keyring};
use crate::error::{ParseError, VerifyError};
use crate::format::{KeyId, ParsedKey};
use crate::hash::Verdict;
use crate::ratelimit::{Decision, Policy, RateLimitError, RateLimitHeaders, RateLimiter};
use crate::record::{KeyRecord, KeyStatus};
use crate::scope::{Requirement, ScopeSet};
use crate::store::{Decrement, KeyStore};

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
}

/// A record that passed the secret check, with its scopes resolved: what the cache holds.
#[derive(Debug)]
pub(crate) struct Authenticated {
    pub(crate) record: KeyRecord,
    pub(crate) granted: ScopeSet,
}

/// A key that passed every check.
#[derive(Clone, Debug)]
pub struct VerifiedKey {
    key: Arc<Authenticated>,
    remaining_uses: Option<u64>,
    rate_limit: Option<(Arc<Policy>, Decision)>,
}

impl VerifiedKey {
    /// The key's record (as of the last store read; may be up to the cache TTL old).
    pub fn record(&self) -> &KeyRecord {
        &self.key.record
    }

    /// The key's id.
    pub fn id(&self) -> &KeyId {
        &self.key.record.id
    }

    /// The owner the key belongs to.
    pub fn owner(&self) -> &str {
        &self.key.record.owner
    }

    /// Every scope the key holds: its own plus those of its roles.
    pub fn scopes(&self) -> &ScopeSet {
        &self.key.granted
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
        let now = self.inner.clock.now();
        let parsed = match self.inner.format.parse(presented) {
            Ok(parsed) => parsed,
            Err(ParseError::PrefixMismatch) => {
                self.throttle_charge(ctx);
                return Err(self.refuse(
                    None,
                    FailureReason::UnknownPrefix,
                    ctx,
                    now,
                    VerifyError::UnknownPrefix,
                ));
            }
            Err(e) => {
                self.throttle_charge(ctx);
                return Err(self.refuse(
                    None,
                    FailureReason::Malformed,
                    ctx,
                    now,
                    VerifyError::Malformed(e),
                ));
            }
        };

        self.throttle_check(ctx, now)?;
        let key = match self.authenticate(presented, &parsed, ctx, now).await {
            Ok(key) => key,
            Err(e) => {
                if matches!(e, VerifyError::Invalid) {
                    self.throttle_charge(ctx);
                }
                return Err(e);
            }
        };
        let record = &key.record;
        let fail = |reason, err| Err(self.refuse(Some(&record.id), reason, ctx, now, err));

        match record.status {
            KeyStatus::Active => {}
            KeyStatus::Revoked => return fail(FailureReason::Revoked, VerifyError::Revoked),
            KeyStatus::Disabled => return fail(FailureReason::Disabled, VerifyError::Disabled),
        }
        if record.not_before.is_some_and(|nb| now < nb) {
            return fail(FailureReason::NotYetValid, VerifyError::NotYetValid);
        }
        if record.is_expired_at(now) {
            return fail(FailureReason::Expired, VerifyError::Expired);
        }
        if !record.allowed_networks.is_empty()
            && !ctx
                .client_ip
                .is_some_and(|ip| record.allowed_networks.iter().any(|n| n.contains(ip)))
        {
            return fail(
                FailureReason::ClientNotAllowed,
                VerifyError::ClientNotAllowed,
            );
        }

        if let Some(requirement) = ctx.requirement {
            if let Err(missing) = requirement.check(&key.granted) {
                return fail(
                    FailureReason::InsufficientScope,
                    VerifyError::InsufficientScope(missing),
                );
            }
        }

        let policy = match &record.rate_limit_policy {
            Some(name) => match self.inner.policies.get(name) {
                Some(policy) => Some(policy.clone()),
                None => {
                    tracing::error!(key_id = %record.id, policy = %name, "key names an undefined rate-limit policy");
                    return fail(FailureReason::Unavailable, VerifyError::UnknownPolicy);
                }
            },
            None => self.inner.default_policy.clone(),
        };
        let cost = ctx.cost.unwrap_or(1);
        let rate_limit = match policy {
            None => None,
            Some(policy) => match self
                .inner
                .limiter
                .check(record.id.as_str(), &policy, cost)
                .await
            {
                Ok(decision) if decision.allowed => Some((policy, decision)),
                Ok(decision) => {
                    return fail(
                        FailureReason::RateLimited,
                        VerifyError::RateLimited(RateLimitDenial::new(policy, decision)),
                    );
                }
                Err(e @ RateLimitError::CostTooHigh { .. }) => {
                    return fail(FailureReason::Unavailable, VerifyError::InvalidCost(e));
                }
                Err(e) => {
                    return fail(
                        FailureReason::Unavailable,
                        VerifyError::RateLimiterUnavailable(e),
                    );
                }
            },
        };

        let mut remaining_uses = None;
        // Credits are spent by the same weight as the rate limit; a peek spends none.
        if record.remaining_uses.is_some() && cost > 0 {
            if super::credits::refill_due(record, now) {
                if let Err(e) = self.refill_credits(&key, now).await {
                    return fail(FailureReason::Unavailable, VerifyError::StoreUnavailable(e));
                }
            }
            match self
                .inner
                .store
                .decrement_remaining(&record.id, u64::from(cost))
                .await
            {
                Ok(Decrement::Taken { remaining }) => remaining_uses = Some(remaining),
                Ok(Decrement::Unlimited) => {}
                Ok(Decrement::Exhausted { .. }) => {
                    return fail(FailureReason::UsageExhausted, VerifyError::UsageExhausted);
                }
                Err(e) => {
                    return fail(FailureReason::Unavailable, VerifyError::StoreUnavailable(e));
                }
            }
        }

        self.note_use(&record.id, now).await;
        tracing::debug!(key_id = %record.id, "api key verified");
        Ok(VerifiedKey {
            key: key.clone(),
            remaining_uses,
            rate_limit,
        })
    }

    /// Steps 2 and 3: the cached record, or the stored one after a constant-time secret check.
    async fn authenticate(
        &self,
        presented: &str,
        parsed: &ParsedKey<'_>,
        ctx: &VerifyContext<'_>,
        now: DateTime<Utc>,
    ) -> Result<Arc<Authenticated>, VerifyError> {
        let digest = self.inner.cache.as_ref().map(|c| c.digest(presented));
        let generation = self.inner.cache.as_ref().map_or(0, |c| c.generation());
        if let (Some(cache), Some(digest)) = (&self.inner.cache, &digest) {
            if let Some(key) = cache.get(parsed.id(), digest, now) {
                return Ok(key);
            }
        }

        let id = parsed.key_id();
        let secret = Zeroizing::new(parsed.expose_secret().to_owned());
        let refuse = |reason, error| self.refuse(Some(&id), reason, ctx, now, error);
        let stored = match self.inner.store.get(&id).await {
            Ok(stored) => stored,
            Err(e) => {
                return Err(refuse(
                    FailureReason::Unavailable,
                    VerifyError::StoreUnavailable(e),
                ));
            }
        };
        let Some(record) = stored else {
            // Same work as a wrong secret, so timing does not reveal which ids exist.
            let hashes = self.inner.hashes.clone();
            if let Err(GateError::Overloaded) = self
                .inner
                .gate
                .run(move || hashes.verify_dummy(secret.as_bytes()))
                .await
            {
                return Err(refuse(FailureReason::Unavailable, VerifyError::Overloaded));
            }
            return Err(refuse(FailureReason::NotFound, VerifyError::Invalid));
        };

        let hashes = self.inner.hashes.clone();
        let stored_hash = record.hash.clone();
        let check_secret = secret.clone();
        let verdict = self
            .inner
            .gate
            .run(move || hashes.verify(check_secret.as_bytes(), stored_hash.as_str()))
            .await;
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(GateError::Overloaded) => {
                return Err(refuse(FailureReason::Unavailable, VerifyError::Overloaded));
            }
            Err(GateError::Failed(e)) => Err(e),
        };
        let needs_rehash = match verdict {
            Ok(Verdict::Match { needs_rehash }) => needs_rehash,
            Ok(Verdict::Mismatch) => {
                return Err(refuse(FailureReason::WrongSecret, VerifyError::Invalid));
            }
            Err(e) => {
                tracing::error!(key_id = %id, error = %e, "stored hash could not be checked");
                return Err(refuse(FailureReason::Unavailable, VerifyError::Internal(e)));
            }
        };
        if needs_rehash {
            self.rehash(record.clone(), secret).await;
        }
        let granted = self.inner.roles.resolve(&record.scopes, &record.roles);
        let key = Arc::new(Authenticated { record, granted });
        if let (Some(cache), Some(digest)) = (&self.inner.cache, digest) {
            cache.insert(generation, digest, key.clone(), now);
        }
        Ok(key)
    }

    /// Refuses a client whose failed-attempt budget is spent (a peek: charges nothing).
    fn throttle_check(
        &self,
        ctx: &VerifyContext<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), VerifyError> {
        let Some(throttle) = &self.inner.throttle else {
            return Ok(());
        };
        match throttle.check(ctx.client_ip) {
            Ok(()) => Ok(()),
            Err(denial) => Err(self.refuse(
                None,
                FailureReason::Throttled,
                ctx,
                now,
                VerifyError::Throttled(denial),
            )),
        }
    }

    /// Charges one failed attempt to the client's address.
    fn throttle_charge(&self, ctx: &VerifyContext<'_>) {
        if let Some(throttle) = &self.inner.throttle {
            throttle.charge(ctx.client_ip);
        }
    }

    fn refuse(
        &self,
        id: Option<&KeyId>,
        reason: FailureReason,
        ctx: &VerifyContext<'_>,
        now: DateTime<Utc>,
        error: VerifyError,
    ) -> VerifyError {
        // Garbage is logged at debug so that a flood of it cannot flood the logs.
        if matches!(
            reason,
            FailureReason::Malformed | FailureReason::UnknownPrefix
        ) {
            tracing::debug!(reason = error.code(), "api key refused");
        } else {
            tracing::info!(
                key_id = id.map(KeyId::as_str),
                reason = error.code(),
                "api key refused"
            );
        }
        self.audit(|| AuditEvent::VerificationFailed {
            id: id.cloned(),
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
            let fresh = match keyring
                .inner
                .gate
                .run(move || hashes.hash(secret.as_bytes()))
                .await
            {
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
    async fn note_use(&self, id: &KeyId, now: DateTime<Utc>) {
        if !self.inner.last_used.touch(id, now) || !self.inner.last_used.try_start_flush() {
            return;
        }
        let keyring = self.clone();
        spawn_or_run(async move {
            // Cleared even if the store panics, so later uses still get written.
            let _flushing = super::last_used::FlushGuard(&keyring.inner.last_used);
            // Drain what arrives while writing too, rather than leave it for the next use.
            while keyring.inner.last_used.has_pending() {
                if !keyring.flush_batch().await {
                    break;
                }
            }
        })
        .await;
    }

    /// Writes queued last-used times now. Call it on shutdown, or periodically when not
    /// running on tokio (without a runtime, writes happen inline on the verifying task).
    ///
    /// # Errors
    /// The store's error; the batch stays queued for the next flush.
    pub async fn flush_last_used(&self) -> Result<(), crate::error::StoreError> {
        let batch = self.inner.last_used.take_pending();
        if batch.is_empty() {
            return Ok(());
        }
        let result = self.inner.store.record_last_used(&batch).await;
        if result.is_err() {
            self.inner.last_used.requeue(batch);
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
