//! [`UsageStore`]: where per-key usage counts are kept (see [`crate::usage`] for how the
//! keyring gathers them). Beside [`KeyStore`](super::KeyStore) because the SQL stores keep
//! the counts in their own schema.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::NaiveDate;

use super::StoreError;
use crate::format::KeyId;

/// The outcome counted for a verified request.
pub const VERIFIED: &str = "verified";
/// The outcome counted for a rate-limited request (a [`VerifyError::code`](crate::VerifyError::code)).
pub const RATE_LIMITED: &str = "rate_limited";

/// Counts to add: `count` more requests of `key_id` (owned by `owner`) on `day` with
/// `outcome` ([`VERIFIED`] or a [`VerifyError::code`](crate::VerifyError::code)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageDelta {
    /// The key.
    pub key_id: KeyId,
    /// Its owner.
    pub owner: String,
    /// The UTC day.
    pub day: NaiveDate,
    /// `verified` or a refusal code.
    pub outcome: &'static str,
    /// How many.
    pub count: u64,
}

impl UsageDelta {
    /// `count` requests of `key_id` (owned by `owner`) on `day` with `outcome`: for testing
    /// a [`UsageStore`] of your own.
    pub fn new(
        key_id: KeyId,
        owner: impl Into<String>,
        day: NaiveDate,
        outcome: &'static str,
        count: u64,
    ) -> Self {
        Self {
            key_id,
            owner: owner.into(),
            day,
            outcome,
            count,
        }
    }
}

/// One key's counts on one day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DailyUsage {
    /// The UTC day.
    pub day: NaiveDate,
    /// Requests verified.
    pub verified: u64,
    /// Requests refused by a rate limit.
    pub rate_limited: u64,
    /// Other refusals, by [`VerifyError::code`](crate::VerifyError::code).
    pub denied: BTreeMap<String, u64>,
}

/// One key's totals over a range of days.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyUsage {
    /// The key.
    pub key_id: KeyId,
    /// Requests verified.
    pub verified: u64,
    /// Requests refused by a rate limit.
    pub rate_limited: u64,
    /// Other refusals.
    pub denied: u64,
}

impl DailyUsage {
    /// Adds `count` requests of `outcome`.
    pub(crate) fn add(&mut self, outcome: &str, count: u64) {
        match outcome {
            VERIFIED => self.verified = self.verified.saturating_add(count),
            RATE_LIMITED => self.rate_limited = self.rate_limited.saturating_add(count),
            other => {
                let n = self.denied.entry(other.to_owned()).or_default();
                *n = n.saturating_add(count);
            }
        }
    }
}

impl KeyUsage {
    pub(crate) fn new(key_id: KeyId) -> Self {
        Self {
            key_id,
            verified: 0,
            rate_limited: 0,
            denied: 0,
        }
    }

    pub(crate) fn add(&mut self, outcome: &str, count: u64) {
        match outcome {
            VERIFIED => self.verified = self.verified.saturating_add(count),
            RATE_LIMITED => self.rate_limited = self.rate_limited.saturating_add(count),
            _ => self.denied = self.denied.saturating_add(count),
        }
    }
}

/// Where usage counts live. Implement it for your database, or use [`MemoryUsage`](crate::usage::MemoryUsage),
/// `SqliteStore` or `PgStore`.
///
/// Contract: [`add`](Self::add) adds the counts atomically per row (concurrent batches from
/// several processes sum up, nothing is lost or counted twice within one call);
/// queries cover `from..=to` (UTC days) and answer [`StoreError::Unavailable`] rather than
/// partial results.
pub trait UsageStore: Send + Sync + 'static {
    /// Adds a batch of counts.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend fails (nothing of the batch may then be
    /// assumed written; the keyring puts it back and retries with the next flush). The
    /// keyring sends at most 1000 rows per call.
    fn add(&self, batch: &[UsageDelta]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One key's counts per day over `from..=to`, in day order (days without requests
    /// left out).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend fails.
    fn key_usage(
        &self,
        key_id: &KeyId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> impl Future<Output = Result<Vec<DailyUsage>, StoreError>> + Send;

    /// Every key of `owner` that had requests in `from..=to`, with its totals, in one call
    /// (ordered by key id).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend fails.
    fn owner_usage(
        &self,
        owner: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> impl Future<Output = Result<Vec<KeyUsage>, StoreError>> + Send;

    /// The `n` keys of `owner` verified most often in `from..=to`, busiest first.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend fails.
    fn busiest_keys(
        &self,
        owner: &str,
        from: NaiveDate,
        to: NaiveDate,
        n: usize,
    ) -> impl Future<Output = Result<Vec<KeyUsage>, StoreError>> + Send {
        async move {
            let mut keys = self.owner_usage(owner, from, to).await?;
            keys.sort_by(|a, b| b.verified.cmp(&a.verified).then(a.key_id.cmp(&b.key_id)));
            keys.truncate(n);
            Ok(keys)
        }
    }
}
