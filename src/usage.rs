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

pub use crate::store::usage::{
    DailyUsage, KeyUsage, RATE_LIMITED, UsageDelta, UsageStore, VERIFIED,
};
pub use memory::MemoryUsage;
pub(crate) use recorder::UsageRecorder;
