//! Debounced last-used tracking: at most one store write per key per interval, batched,
//! and never awaited by the request that triggered it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use dashmap::DashMap;

use crate::format::KeyId;

/// Most keys remembered between flushes; past this the memory is reset (costing at most
/// one extra write per key) so it stays bounded.
const MAX_TRACKED: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct LastUsed {
    debounce: TimeDelta,
    /// When each recently written key may be written again (its last queued use plus the
    /// debounce): a debounced use costs one lookup and one comparison. Only verified keys'
    /// ids are inserted, so a fast seeded hash does.
    next_write: DashMap<KeyId, DateTime<Utc>, foldhash::fast::RandomState>,
    pending: Mutex<Vec<(KeyId, DateTime<Utc>)>>,
    pub(crate) flushing: AtomicBool,
    /// Held while a batch is written, so an explicit flush waits for a background one.
    #[cfg(feature = "tokio")]
    pub(crate) writing: tokio::sync::Mutex<()>,
}

impl LastUsed {
    pub(crate) fn new(debounce: TimeDelta) -> Self {
        Self {
            debounce,
            next_write: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            pending: Mutex::new(Vec::new()),
            flushing: AtomicBool::new(false),
            #[cfg(feature = "tokio")]
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Notes a use; returns whether a write was queued (the caller then schedules a flush),
    /// and when the key's next write can be due.
    pub(crate) fn touch(&self, id: &KeyId, now: DateTime<Utc>) -> (bool, DateTime<Utc>) {
        if let Some(next) = self.next_write.get(id)
            && now < *next
        {
            return (false, *next);
        }
        if self.next_write.len() >= MAX_TRACKED {
            self.next_write.clear();
        }
        let next = now
            .checked_add_signed(self.debounce)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.next_write.insert(id.clone(), next);
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() < MAX_TRACKED {
            pending.push((id.clone(), now));
        }
        (true, next)
    }

    pub(crate) fn take_pending(&self) -> Vec<(KeyId, DateTime<Utc>)> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts a batch back after a failed write, so it is retried with the next flush.
    pub(crate) fn requeue(&self, batch: Vec<(KeyId, DateTime<Utc>)>) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_TRACKED.saturating_sub(pending.len());
        pending.extend(batch.into_iter().take(room));
    }

    pub(crate) fn try_start_flush(&self) -> bool {
        !self.flushing.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }
}

/// A batch on its way to the store: put back for the next flush when dropped unwritten (a
/// failed write, a caller that stopped waiting).
pub(crate) struct Unwritten<'a> {
    tracker: &'a LastUsed,
    batch: Vec<(KeyId, DateTime<Utc>)>,
}

impl<'a> Unwritten<'a> {
    pub(crate) fn new(tracker: &'a LastUsed, batch: Vec<(KeyId, DateTime<Utc>)>) -> Self {
        Self { tracker, batch }
    }

    pub(crate) fn batch(&self) -> &[(KeyId, DateTime<Utc>)] {
        &self.batch
    }

    pub(crate) fn written(mut self) {
        self.batch.clear();
    }
}

impl Drop for Unwritten<'_> {
    fn drop(&mut self) {
        if !self.batch.is_empty() {
            self.tracker.requeue(std::mem::take(&mut self.batch));
        }
    }
}

/// Ends a flush when dropped, including by a panic in the store.
pub(crate) struct FlushGuard<'a>(pub(crate) &'a LastUsed);

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        self.0.flushing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_used_flush_flag_is_released_by_a_panicking_flush() {
        let tracker = LastUsed::new(TimeDelta::minutes(1));
        assert!(tracker.try_start_flush());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = FlushGuard(&tracker);
            panic!("store exploded");
        }));
        assert!(result.is_err());
        assert!(
            tracker.try_start_flush(),
            "a panicking flush must not block later flushes"
        );
    }
}
