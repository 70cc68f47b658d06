//! Refilling a key's uses on its schedule, before they are spent.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Keyring;
use super::verify::Authenticated;
use crate::format::KeyId;
use crate::ratelimit::{Credits, RateLimiter};
use crate::record::KeyRecord;
use crate::store::KeyStore;
use crate::store::StoreError;

/// Attempts at the compare-and-set that stores a refill.
const REFILL_ATTEMPTS: usize = 8;

/// `remaining` uses on `record`'s refill schedule, last refilled when the record says
/// (at its creation if never).
pub(super) fn credits_of(record: &KeyRecord, remaining: u64) -> Credits {
    Credits {
        remaining,
        refill: record.attributes.credit_refill,
        last_refill: record.last_refill_at.unwrap_or(record.created_at),
    }
}

/// Whether `record`'s schedule has a refill due at `now` (judged on a possibly cached copy:
/// a stale one only costs one extra store read).
pub(super) fn refill_due(record: &KeyRecord, now: DateTime<Utc>) -> bool {
    record.attributes.credit_refill.is_some_and(|refill| {
        let since = record.last_refill_at.unwrap_or(record.created_at);
        now - since >= refill.period()
    })
}

impl<S: KeyStore, L: RateLimiter> Keyring<S, L> {
    /// Applies the refills due at `now` to the stored record, under compare-and-set so
    /// that processes racing to refill add each period once. Updates this process's cached
    /// copy so the next verification does not see the refill as due again.
    ///
    /// `cached` is the verified key when `id` is its own record (not a successor whose
    /// uses it draws on).
    pub(super) async fn refill_credits(
        &self,
        id: &KeyId,
        cached: Option<&Authenticated>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for _ in 0..REFILL_ATTEMPTS {
            let generation = self.inner.cache.as_ref().map_or(0, |c| c.generation());
            let Some(mut fresh) = self.inner.store.get(id).await? else {
                return Err(StoreError::NotFound);
            };
            let (Some(remaining), Some(_)) = (fresh.remaining_uses, fresh.attributes.credit_refill)
            else {
                return Ok(());
            };
            let credits = credits_of(&fresh, remaining);
            let topped = credits.refilled(now);
            if topped.last_refill != credits.last_refill {
                fresh.remaining_uses = Some(topped.remaining);
                fresh.last_refill_at = Some(topped.last_refill);
                match self.inner.store.update(&fresh).await {
                    Ok(version) => fresh.version = version,
                    Err(StoreError::Conflict) => continue,
                    Err(e) => return Err(e),
                }
            }
            if let (Some(cache), Some(key)) = (&self.inner.cache, cached) {
                let refreshed = Authenticated::new(
                    fresh,
                    key.granted.clone(),
                    key.key_type.clone(),
                    key.own_policy.clone(),
                );
                cache.refresh(generation, Arc::new(refreshed));
            }
            return Ok(());
        }
        Err(StoreError::Conflict)
    }
}
