//! Storage of key records, implemented by the host for its own database.
//!
//! The crate ships [`MemoryStore`] as the embedded default. A host implements
//! [`KeyStore`] for its database and runs the conformance kit
//! (`keymint::testing::store_conformance!`, feature `testing`) against it. Usage counts
//! have their own trait, [`UsageStore`](crate::usage::UsageStore), which the SQL stores
//! implement too.

mod error;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
mod postgres;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod sql;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
mod sqlite;
pub(crate) mod usage;

use std::future::Future;

use chrono::{DateTime, Utc};

pub use error::StoreError;
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
pub use sql::{InvalidTableName, Migration};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::format::KeyId;
use crate::record::KeyRecord;

/// Most records one page may hold.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Which page of a listing to return: up to `limit` records ordered by id, starting after
/// the id `after` (the previous page's [`Page::next_after`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Records per page, clamped to `1..=MAX_PAGE_SIZE` by [`PageRequest::new`].
    pub limit: usize,
    /// Exclusive lower bound on the id.
    pub after: Option<KeyId>,
}

impl PageRequest {
    /// The first page of `limit` records (clamped to `1..=MAX_PAGE_SIZE`).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.clamp(1, MAX_PAGE_SIZE),
            after: None,
        }
    }

    /// The page after `id`.
    #[must_use]
    pub fn after(mut self, id: KeyId) -> Self {
        self.after = Some(id);
        self
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::new(100)
    }
}

/// One page of records.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// Records in ascending id order.
    pub items: Vec<KeyRecord>,
    /// Pass to [`PageRequest::after`] for the next page; `None` on the last page.
    pub next_after: Option<KeyId>,
}

/// Result of [`KeyStore::decrement_remaining`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decrement {
    /// The uses were taken; this many are left.
    Taken {
        /// Uses left after this call.
        remaining: u64,
    },
    /// Not enough uses were left; nothing was taken.
    Exhausted {
        /// Uses left (fewer than asked for).
        remaining: u64,
    },
    /// The record has no use limit.
    Unlimited,
}

/// Storage for key records.
///
/// # Contract
///
/// Implementations must be safe to call concurrently from many tasks and processes, and
/// guarantee:
///
/// - **ids are unique**: [`insert`](Self::insert) of an existing id fails with
///   [`StoreError::Conflict`] and changes nothing (the keyring then retries with a new id);
/// - **every write bumps the version**: the stored [`KeyRecord::version`] grows by one on each
///   successful [`update`](Self::update), [`decrement_remaining`](Self::decrement_remaining)
///   and [`record_last_used`](Self::record_last_used);
/// - **updates are compare-and-set**: [`update`](Self::update) writes only if the stored
///   version equals the given record's version, atomically; otherwise
///   [`StoreError::Conflict`] (the keyring re-reads and retries);
/// - **decrements are atomic**: never below zero and no lost decrements under concurrency;
/// - **errors are honest**: anything that is not a definite answer is
///   [`StoreError::Unavailable`], never an empty result. `get` of a missing id is `Ok(None)`.
///
/// Methods are written as `fn .. -> impl Future + Send`, so implementations may use
/// `async fn`.
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new record (as given, including its version).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the id exists.
    fn insert(&self, record: &KeyRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The record with `id`, if any.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend fails.
    fn get(&self, id: &KeyId)
    -> impl Future<Output = Result<Option<KeyRecord>, StoreError>> + Send;

    /// Replaces the stored record if its version equals `record.version`; the stored copy
    /// gets `record.version + 1`, which is returned.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id, [`StoreError::Conflict`] when the
    /// stored version differs.
    fn update(&self, record: &KeyRecord) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Takes `uses` from the record's remaining uses, atomically, if enough are left.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] for an unknown id.
    fn decrement_remaining(
        &self,
        id: &KeyId,
        uses: u64,
    ) -> impl Future<Output = Result<Decrement, StoreError>> + Send;

    /// Writes last-used times in one batch. A time earlier than the stored one is ignored
    /// (times only move forward); unknown ids are skipped.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend fails.
    fn record_last_used(
        &self,
        batch: &[(KeyId, DateTime<Utc>)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records owned by `owner`, a page at a time, in ascending id order.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend fails.
    fn list_by_owner(
        &self,
        owner: &str,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Records whose `expires_at` lies in `[from, to)`, a page at a time, in ascending id
    /// order: for warning owners before a key stops working.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend fails.
    fn list_expiring(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Records not used since `before`: last used earlier than it, or never used and
    /// created earlier than it; a page at a time, in ascending id order, whatever their
    /// status. For dormant-key reports across all owners
    /// ([`Keyring::dormant_keys`](crate::Keyring::dormant_keys)).
    ///
    /// Provided: the default answers [`StoreError::Unsupported`], so a store written before
    /// this method existed keeps compiling (and its dormant reports work per owner only).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the backend fails.
    fn list_unused_since(
        &self,
        before: DateTime<Utc>,
        page: &PageRequest,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send {
        let _ = (before, page);
        async { Err(StoreError::Unsupported("list_unused_since")) }
    }
}
