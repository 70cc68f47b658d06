//! The embedded default store: records in process memory.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::{Decrement, KeyStore, Page, PageRequest};
use crate::format::KeyId;
use crate::record::KeyRecord;
use crate::store::StoreError;

/// Key records in a concurrent hash map, with an owner index for listings.
///
/// For tests, examples and single-process services whose keys may vanish on restart.
/// Clones share the same records. `list_expiring` and `list_unused_since` scan every
/// record.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    records: DashMap<KeyId, KeyRecord>,
    // Lock order: a `records` entry may be held while touching `owners`, never the reverse.
    owners: DashMap<String, BTreeSet<KeyId>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.inner.records.len()
    }

    /// Whether the store holds no records.
    pub fn is_empty(&self) -> bool {
        self.inner.records.is_empty()
    }

    fn page_of(&self, ids: impl Iterator<Item = KeyId>, page: &PageRequest) -> Page {
        let limit = page.limit.clamp(1, super::MAX_PAGE_SIZE);
        let mut items = Vec::with_capacity(limit.min(64));
        let mut more = false;
        for id in ids {
            if items.len() == limit {
                more = true;
                break;
            }
            if let Some(record) = self.inner.records.get(&id) {
                items.push(record.clone());
            }
        }
        let next_after = if more {
            items.last().map(|r: &KeyRecord| r.id.clone())
        } else {
            None
        };
        Page { items, next_after }
    }
}

impl KeyStore for MemoryStore {
    async fn insert(&self, record: &KeyRecord) -> Result<(), StoreError> {
        match self.inner.records.entry(record.id.clone()) {
            Entry::Occupied(_) => Err(StoreError::Conflict),
            Entry::Vacant(slot) => {
                self.inner
                    .owners
                    .entry(record.owner.clone())
                    .or_default()
                    .insert(record.id.clone());
                slot.insert(record.clone());
                Ok(())
            }
        }
    }

    async fn get(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.inner.records.get(id).map(|r| r.clone()))
    }

    async fn update(&self, record: &KeyRecord) -> Result<u64, StoreError> {
        let mut stored = self
            .inner
            .records
            .get_mut(&record.id)
            .ok_or(StoreError::NotFound)?;
        if stored.version != record.version {
            return Err(StoreError::Conflict);
        }
        let owner_changed = stored.owner != record.owner;
        let old_owner = stored.owner.clone();
        *stored = record.clone();
        stored.version = record.version + 1;
        if owner_changed {
            if let Some(mut ids) = self.inner.owners.get_mut(&old_owner) {
                ids.remove(&record.id);
            }
            self.inner
                .owners
                .entry(record.owner.clone())
                .or_default()
                .insert(record.id.clone());
        }
        Ok(stored.version)
    }

    async fn decrement_remaining(&self, id: &KeyId, uses: u64) -> Result<Decrement, StoreError> {
        let mut stored = self.inner.records.get_mut(id).ok_or(StoreError::NotFound)?;
        let Some(remaining) = stored.remaining_uses else {
            return Ok(Decrement::Unlimited);
        };
        if remaining < uses {
            return Ok(Decrement::Exhausted { remaining });
        }
        stored.remaining_uses = Some(remaining - uses);
        stored.version += 1;
        Ok(Decrement::Taken {
            remaining: remaining - uses,
        })
    }

    async fn record_last_used(&self, batch: &[(KeyId, DateTime<Utc>)]) -> Result<(), StoreError> {
        for (id, at) in batch {
            if let Some(mut stored) = self.inner.records.get_mut(id)
                && stored.last_used_at.is_none_or(|prev| prev < *at)
            {
                stored.last_used_at = Some(*at);
                stored.version += 1;
            }
        }
        Ok(())
    }

    async fn list_by_owner(&self, owner: &str, page: &PageRequest) -> Result<Page, StoreError> {
        // Copy one page of ids (plus one to detect a next page) before touching `records`.
        let ids: Vec<KeyId> = match self.inner.owners.get(owner) {
            None => Vec::new(),
            Some(ids) => {
                let range = match &page.after {
                    Some(after) => ids.range::<KeyId, _>((
                        std::ops::Bound::Excluded(after),
                        std::ops::Bound::Unbounded,
                    )),
                    None => ids.range::<KeyId, _>(..),
                };
                range
                    .take(page.limit.clamp(1, super::MAX_PAGE_SIZE) + 1)
                    .cloned()
                    .collect()
            }
        };
        Ok(self.page_of(ids.into_iter(), page))
    }

    async fn list_expiring(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        let mut ids: Vec<KeyId> = self
            .inner
            .records
            .iter()
            .filter(|r| {
                r.attributes
                    .expires_at
                    .is_some_and(|at| from <= at && at < to)
            })
            .filter(|r| page.after.as_ref().is_none_or(|after| r.id > *after))
            .map(|r| r.id.clone())
            .collect();
        ids.sort_unstable();
        Ok(self.page_of(ids.into_iter(), page))
    }

    async fn list_unused_since(
        &self,
        before: DateTime<Utc>,
        page: &PageRequest,
    ) -> Result<Page, StoreError> {
        let mut ids: Vec<KeyId> = self
            .inner
            .records
            .iter()
            .filter(|r| r.last_used_at.unwrap_or(r.created_at) < before)
            .filter(|r| page.after.as_ref().is_none_or(|after| r.id > *after))
            .map(|r| r.id.clone())
            .collect();
        ids.sort_unstable();
        Ok(self.page_of(ids.into_iter(), page))
    }
}
