//! The keyring's side: counts in memory, flushed in batches to the [`UsageStore`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use dashmap::DashMap;

use super::{UsageDelta, UsageStore};
use crate::format::KeyId;
use crate::store::StoreError;

/// Most distinct (key, day, outcome) counts held between flushes; beyond, new ones are
/// dropped (and counted) until a flush makes room.
const MAX_PENDING: usize = 1 << 18;

/// Rows per store call, so one flush never holds a database's write lock for long.
const CHUNK: usize = 1000;

type BoxFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// [`UsageStore::add`] behind a trait object, so the keyring needs no third type
/// parameter.
trait DynUsageStore: Send + Sync {
    fn add_batch<'a>(&'a self, batch: &'a [UsageDelta]) -> BoxFuture<'a>;
}

impl<T: UsageStore> DynUsageStore for T {
    fn add_batch<'a>(&'a self, batch: &'a [UsageDelta]) -> BoxFuture<'a> {
        Box::pin(self.add(batch))
    }
}

pub(crate) struct UsageRecorder {
    store: Box<dyn DynUsageStore>,
    interval_secs: i64,
    pending: DashMap<(KeyId, NaiveDate, &'static str), (String, u64)>,
    last_flush: AtomicI64,
    flushing: AtomicBool,
    /// Held by the flush that is writing, so an explicit flush (shutdown) waits for one the
    /// background started instead of returning while its rows are still on the way.
    #[cfg(feature = "tokio")]
    writing: tokio::sync::Mutex<()>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageRecorder")
            .field("interval_secs", &self.interval_secs)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl UsageRecorder {
    pub(crate) fn new(store: impl UsageStore, interval_secs: i64, now: DateTime<Utc>) -> Self {
        Self {
            store: Box::new(store),
            interval_secs: interval_secs.max(0),
            pending: DashMap::new(),
            last_flush: AtomicI64::new(now.timestamp()),
            flushing: AtomicBool::new(false),
            #[cfg(feature = "tokio")]
            writing: tokio::sync::Mutex::new(()),
            dropped: AtomicU64::new(0),
        }
    }

    /// Counts one request; answers whether a flush is due (the caller starts one). Exactly
    /// one caller per interval is told so, and none while a flush runs.
    pub(crate) fn count(
        &self,
        key_id: &KeyId,
        owner: &str,
        outcome: &'static str,
        now: DateTime<Utc>,
    ) -> bool {
        let slot = (key_id.clone(), now.date_naive(), outcome);
        if let Some(mut entry) = self.pending.get_mut(&slot) {
            entry.1 = entry.1.saturating_add(1);
        } else if self.pending.len() < MAX_PENDING {
            self.pending
                .entry(slot)
                .or_insert_with(|| (owner.to_owned(), 0))
                .1 += 1;
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        let last = self.last_flush.load(Ordering::Relaxed);
        now.timestamp() - last >= self.interval_secs
            && !self.flushing.load(Ordering::Acquire)
            && self
                .last_flush
                .compare_exchange(last, now.timestamp(), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// Takes the counts and writes them, [`CHUNK`] rows per store call. Rows not written
    /// (a failed call, or a caller that stopped waiting) are put back for the next flush, so
    /// delivery is at least once: a call that failed after the store committed counts its
    /// rows twice.
    ///
    /// Only one flush writes at a time. With `wait`, a call made while another flush writes
    /// waits for it and then writes what is left (on shutdown nothing may be on the way
    /// when it returns); without, it returns at once. Without feature `tokio` there is
    /// nothing to wait with, and every concurrent call returns at once (background
    /// flushes then run inline on the verifying task, so none is left running).
    pub(crate) async fn flush(&self, now: DateTime<Utc>, wait: bool) -> Result<(), StoreError> {
        #[cfg(feature = "tokio")]
        let _one_writer = if wait {
            self.writing.lock().await
        } else {
            match self.writing.try_lock() {
                Ok(writer) => writer,
                Err(_) => return Ok(()),
            }
        };
        #[cfg(not(feature = "tokio"))]
        let _ = wait;
        if self.flushing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _done = Flushing(&self.flushing);
        self.last_flush.store(now.timestamp(), Ordering::Relaxed);
        let keys: Vec<_> = self.pending.iter().map(|e| e.key().clone()).collect();
        let mut batch = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(((key_id, day, outcome), (owner, count))) = self.pending.remove(&key) {
                batch.push(UsageDelta {
                    key_id,
                    owner,
                    day,
                    outcome,
                    count,
                });
            }
        }
        // Whatever is not written by the time this guard drops goes back: also when the
        // caller is cancelled mid-write.
        let mut unwritten = PutBack {
            recorder: self,
            rows: batch,
        };
        while !unwritten.rows.is_empty() {
            let take = unwritten.rows.len().min(CHUNK);
            let chunk_start = unwritten.rows.len() - take;
            self.store.add_batch(&unwritten.rows[chunk_start..]).await?;
            unwritten.rows.truncate(chunk_start);
        }
        Ok(())
    }

    fn put_back(&self, rows: Vec<UsageDelta>) {
        for delta in rows {
            let slot = (delta.key_id, delta.day, delta.outcome);
            if self.pending.len() < MAX_PENDING || self.pending.contains_key(&slot) {
                // Added to whatever was counted for the slot meanwhile.
                let mut entry = self.pending.entry(slot).or_insert_with(|| (delta.owner, 0));
                entry.1 = entry.1.saturating_add(delta.count);
            } else {
                self.dropped.fetch_add(delta.count, Ordering::Relaxed);
            }
        }
    }

    /// Requests not counted because the pending counts were full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Rows of a flush not yet written, put back when dropped.
struct PutBack<'a> {
    recorder: &'a UsageRecorder,
    rows: Vec<UsageDelta>,
}

impl Drop for PutBack<'_> {
    fn drop(&mut self) {
        self.recorder.put_back(std::mem::take(&mut self.rows));
    }
}

struct Flushing<'a>(&'a AtomicBool);

impl Drop for Flushing<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
