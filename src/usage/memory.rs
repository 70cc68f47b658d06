//! [`MemoryUsage`]: usage counts in process memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

use super::{DailyUsage, KeyUsage, UsageDelta, UsageStore};
use crate::format::KeyId;
use crate::store::StoreError;

type Counts = BTreeMap<(KeyId, NaiveDate), (String, BTreeMap<&'static str, u64>)>;

/// Usage counts in memory (for tests and single-process services; gone on restart).
/// Clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct MemoryUsage {
    counts: Arc<Mutex<Counts>>,
}

impl MemoryUsage {
    /// No counts yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl UsageStore for MemoryUsage {
    async fn add(&self, batch: &[UsageDelta]) -> Result<(), StoreError> {
        let mut counts = self.lock();
        for delta in batch {
            let (_, outcomes) = counts
                .entry((delta.key_id.clone(), delta.day))
                .or_insert_with(|| (delta.owner.clone(), BTreeMap::new()));
            let n = outcomes.entry(delta.outcome).or_default();
            *n = n.saturating_add(delta.count);
        }
        Ok(())
    }

    async fn key_usage(
        &self,
        key_id: &KeyId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<DailyUsage>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let counts = self.lock();
        Ok(counts
            .range((key_id.clone(), from)..=(key_id.clone(), to))
            .map(|((_, day), (_, outcomes))| {
                let mut daily = DailyUsage {
                    day: *day,
                    ..DailyUsage::default()
                };
                for (outcome, n) in outcomes {
                    daily.add(outcome, *n);
                }
                daily
            })
            .collect())
    }

    async fn owner_usage(
        &self,
        owner: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<KeyUsage>, StoreError> {
        let counts = self.lock();
        let mut keys: BTreeMap<KeyId, KeyUsage> = BTreeMap::new();
        for ((key_id, day), (key_owner, outcomes)) in counts.iter() {
            if key_owner != owner || *day < from || *day > to {
                continue;
            }
            let usage = keys
                .entry(key_id.clone())
                .or_insert_with(|| KeyUsage::new(key_id.clone()));
            for (outcome, n) in outcomes {
                usage.add(outcome, *n);
            }
        }
        Ok(keys.into_values().collect())
    }
}
