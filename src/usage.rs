//! Per-key usage analytics: how often each key was verified, refused (by reason) and rate
//! limited, per UTC day, written in batches rather than once per request.
//!
//! The keyring counts in memory and hands the counts to a [`UsageStore`] every
//! [`flush interval`](crate::KeyringBuilder::usage) (and on
//! [`Keyring::flush_usage`](crate::Keyring::flush_usage)), so a verification costs a map
//! update, never a write. Counted are the requests whose key authenticated: verified, or
//! refused afterwards (revoked, expired, out of scope, over its limit, ...). Requests that
//! did not authenticate (unknown ids, wrong secrets) are not counted here: anyone could
//! write rows for them; metrics and the audit trail see those. Delivery to the store is at
//! least once (a write that failed after committing is retried).
//!
//! [`MemoryUsage`] keeps counts in memory; `SqliteStore` and `PgStore` keep them in a
//! `<table>_usage` table (schema version 3).
//!
//! ```
//! use keymint::usage::{MemoryUsage, UsageStore};
//! use keymint::{IssueRequest, KeyFormat, Keyring, MemoryStore, VerifyContext};
//! use chrono::{Days, Utc};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let usage = MemoryUsage::new();
//! let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new())
//!     .usage(usage.clone(), chrono::TimeDelta::seconds(10))
//!     .build()?;
//! let issued = keyring.issue(IssueRequest::new("acct_42", "CI")).await?;
//! keyring.verify(issued.key.expose_secret(), &VerifyContext::new()).await?;
//! keyring.flush_usage().await?;
//! let today = Utc::now().date_naive();
//! let days = usage.key_usage(&issued.record.id, today, today).await?;
//! assert_eq!(days[0].verified, 1);
//! # Ok(()) }
//! ```

mod memory;
mod recorder;

use std::collections::BTreeMap;
use std::future::Future;

use chrono::NaiveDate;

pub use memory::MemoryUsage;
pub(crate) use recorder::UsageRecorder;

use crate::format::KeyId;
use crate::store::StoreError;

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

/// Where usage counts live. Implement it for your database, or use [`MemoryUsage`],
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
