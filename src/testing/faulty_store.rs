//! [`FaultyStore`]: a store wrapper for fault tests.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use crate::format::KeyId;
use crate::record::KeyRecord;
use crate::store::StoreError;
use crate::store::{Decrement, KeyStore, Page, PageRequest};

/// One method of [`KeyStore`], for counting calls and planning faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreOp {
    /// [`KeyStore::insert`].
    Insert,
    /// [`KeyStore::get`].
    Get,
    /// [`KeyStore::update`].
    Update,
    /// [`KeyStore::decrement_remaining`].
    DecrementRemaining,
    /// [`KeyStore::record_last_used`].
    RecordLastUsed,
    /// [`KeyStore::list_by_owner`].
    ListByOwner,
    /// [`KeyStore::list_expiring`].
    ListExpiring,
    /// [`KeyStore::list_unused_since`].
    ListUnusedSince,
}

impl StoreOp {
    const ALL: [StoreOp; 8] = [
        StoreOp::Insert,
        StoreOp::Get,
        StoreOp::Update,
        StoreOp::DecrementRemaining,
        StoreOp::RecordLastUsed,
        StoreOp::ListByOwner,
        StoreOp::ListExpiring,
        StoreOp::ListUnusedSince,
    ];

    fn index(self) -> usize {
        Self::ALL.iter().position(|op| *op == self).unwrap_or(0)
    }
}

/// What happens to the next call of an operation (see [`FaultyStore::inject`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// The call goes through untouched: plan it to put a fault on a later call.
    Pass,
    /// Fails with [`StoreError::Unavailable`] without reaching the inner store: nothing is
    /// read or written.
    Fail,
    /// Runs the call on the inner store, then reports [`StoreError::Unavailable`]: the
    /// write landed but its reply was lost (a connection dropped after the commit).
    FailAfter,
    /// Runs the call on the inner store, then waits until [`FaultyStore::release`]: the
    /// window in which a concurrent change can land.
    Pause,
}

#[derive(Debug, thiserror::Error)]
#[error("fault injected by keymint::testing::FaultyStore")]
struct Injected;

struct Shared {
    calls: [AtomicUsize; StoreOp::ALL.len()],
    down: AtomicBool,
    planned: Mutex<[VecDeque<Fault>; StoreOp::ALL.len()]>,
    paused: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            calls: Default::default(),
            down: AtomicBool::new(false),
            planned: Mutex::default(),
            paused: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
        }
    }
}

/// Wraps a [`KeyStore`] to count its calls, fail them on demand, or hold one until the
/// test lets it go. Clones share their counters and plans.
///
/// ```
/// use keymint::testing::{Fault, FaultyStore, StoreOp, sample_record};
/// use keymint::{KeyStore, MemoryStore, StoreError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = FaultyStore::new(MemoryStore::new());
/// let record = sample_record("owner");
///
/// store.inject(StoreOp::Insert, Fault::FailAfter);
/// assert!(matches!(store.insert(&record).await, Err(StoreError::Unavailable(_))));
/// // The write landed although the caller was told it failed.
/// assert!(store.inner().get(&record.id).await.unwrap().is_some());
/// assert_eq!(store.calls(StoreOp::Insert), 1);
///
/// store.set_down(true);
/// assert!(store.get(&record.id).await.is_err());
/// # }
/// ```
pub struct FaultyStore<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Clone> Clone for FaultyStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S> fmt::Debug for FaultyStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("down", &self.shared.down.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl<S: KeyStore> FaultyStore<S> {
    /// Wraps `inner`; no faults planned.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            shared: Arc::default(),
        }
    }

    /// The wrapped store (calls on it are neither counted nor faulted).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How many times `op` was called (faulted calls included).
    pub fn calls(&self, op: StoreOp) -> usize {
        self.shared.calls[op.index()].load(Ordering::SeqCst)
    }

    /// While `down`, every call fails with [`StoreError::Unavailable`] before reaching the
    /// inner store.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Plans `fault` for the next call of `op` that is not already covered by an earlier
    /// plan (plans for one operation are used in the order given).
    pub fn inject(&self, op: StoreOp, fault: Fault) {
        self.planned()[op.index()].push_back(fault);
    }

    /// Waits until a call planned with [`Fault::Pause`] is holding.
    pub async fn wait_paused(&self) {
        self.shared.paused.notified().await;
    }

    /// Lets one paused call (now or in future) continue.
    pub fn release(&self) {
        self.shared.release.add_permits(1);
    }

    fn planned(&self) -> std::sync::MutexGuard<'_, [VecDeque<Fault>; StoreOp::ALL.len()]> {
        self.shared
            .planned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts the call and applies a fault planned for before it.
    fn enter(&self, op: StoreOp) -> Result<Option<Fault>, StoreError> {
        self.shared.calls[op.index()].fetch_add(1, Ordering::SeqCst);
        if self.shared.down.load(Ordering::SeqCst) {
            return Err(StoreError::unavailable(Injected));
        }
        match self.planned()[op.index()].pop_front() {
            Some(Fault::Fail) => Err(StoreError::unavailable(Injected)),
            other => Ok(other),
        }
    }

    /// Applies a fault planned for after the call.
    async fn leave(&self, fault: Option<Fault>) -> Result<(), StoreError> {
        match fault {
            Some(Fault::FailAfter) => Err(StoreError::unavailable(Injected)),
            Some(Fault::Pause) => {
                self.shared.paused.notify_one();
                // The semaphore is never closed, so acquire only fails if it were.
                if let Ok(permit) = self.shared.release.acquire().await {
                    permit.forget();
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl<S: KeyStore> KeyStore for FaultyStore<S> {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let fault = self.enter(StoreOp::Insert)?;
        let result = self.inner.insert(record).await;
        self.leave(fault).await?;
        result
    }

    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let fault = self.enter(StoreOp::Get)?;
        let result = self.inner.get(id).await;
        self.leave(fault).await?;
        result
    }

    async fn update(&self, record: &KeyRecord) -> Result<u64, StoreError> {
        let fault = self.enter(StoreOp::Update)?;
        let result = self.inner.update(record).await;
        self.leave(fault).await?;
        result
    }

    async fn decrement_remaining(&self, id: &KeyId, uses: u64) -> Result<Decrement, StoreError> {
        let fault = self.enter(StoreOp::DecrementRemaining)?;
        let result = self.inner.decrement_remaining(id, uses).await;
        self.leave(fault).await?;
        result
    }

    async fn record_last_used(&self, batch: &[(KeyId, DateTime<Utc>)]) -> Result<(), StoreError> {
        let fault = self.enter(StoreOp::RecordLastUsed)?;
        let result = self.inner.record_last_used(batch).await;
        self.leave(fault).await?;
        result
    }

    async fn list_by_owner(&self, owner: &str, page: &PageRequest) -> Result<Page, StoreError> {
        let fault = self.enter(StoreOp::ListByOwner)?;
        let result = self.inner.list_by_owner(owner, page).await;
        self.leave(fault).await?;
        result
    }

    async fn list_expiring(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        let fault = self.enter(StoreOp::ListExpiring)?;
        let result = self.inner.list_expiring(from, to, page).await;
        self.leave(fault).await?;
        result
    }

    async fn list_unused_since(
        &self,
        before: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        let fault = self.enter(StoreOp::ListUnusedSince)?;
        let result = self.inner.list_unused_since(before, page).await;
        self.leave(fault).await?;
        result
    }
}
