//! The verified-key cache: repeat verifications skip the store and the slow hash.
//!
//! Entries are keyed by the key's public id and hold an HMAC-SHA-256 digest of the presented
//! key (prefix, id and secret; its checksum, already checked and a function of the rest, is
//! left out) under a random per-process key, never the plaintext. A hit requires the
//! presented key's digest to equal the entry's (compared in constant time), so a cached id
//! with another secret, or another prefix, misses and takes the full path.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use dashmap::DashMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::verify::Authenticated;
use crate::format::KeyId;
use crate::random::RngError;

pub(crate) type Digest = [u8; 32];

pub(crate) struct VerifiedCache {
    keyed: Hmac<Sha256>,
    ttl: TimeDelta,
    capacity: usize,
    // Ids are the keys' own random ids, only ever inserted after authentication: nobody
    // can aim them at one shard, so a fast seeded hash does.
    entries: DashMap<KeyId, Entry, foldhash::fast::RandomState>,
    last_sweep_secs: AtomicI64,
    /// Bumped by every invalidation. A verification that read the store before an
    /// invalidation must not cache what it read: that would resurrect a revoked key.
    generation: AtomicU64,
}

struct Entry {
    digest: Digest,
    key: Arc<Authenticated>,
    /// Insertion time less [`CLOCK_SKEW`], and insertion time plus the TTL, both computed
    /// once: a hit costs two comparisons, no date arithmetic.
    fresh_from: DateTime<Utc>,
    fresh_until: DateTime<Utc>,
}

/// How far before its insertion an entry still counts as fresh. The system clock's fast
/// path reads each core's time-stamp counter, and on virtual machines the counters of two
/// cores can disagree by microseconds: a hit on one core just after an insert on another
/// must not read as a clock stepped back, or every such hit would miss and hash again. Ten
/// milliseconds covers that with room, and lets a clock stepped back extend no entry by
/// more.
const CLOCK_SKEW: TimeDelta = TimeDelta::milliseconds(10);

impl Entry {
    /// Fresh from (just before) its insertion until its TTL has passed. A clock stepped back
    /// further than the skew makes the entry stale rather than fresh for longer.
    fn fresh_at(&self, now: DateTime<Utc>) -> bool {
        now < self.fresh_until && now >= self.fresh_from
    }
}

/// Equality of two digests in constant time: folded into one word by XOR and OR (no
/// branch, no early exit), which `subtle` then compares.
fn same_digest(a: &Digest, b: &Digest) -> bool {
    let mut diff = 0u64;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let x = u64::from_ne_bytes(x.try_into().unwrap_or_default());
        let y = u64::from_ne_bytes(y.try_into().unwrap_or_default());
        diff |= x ^ y;
    }
    bool::from(diff.ct_eq(&0))
}

impl VerifiedCache {
    pub(crate) fn new(ttl: TimeDelta, capacity: usize) -> Result<Self, RngError> {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut key[..])?;
        #[allow(clippy::expect_used)] // HMAC accepts keys of any length
        let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(&key[..]).expect("any key length");
        Ok(Self {
            keyed,
            ttl,
            capacity,
            entries: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            last_sweep_secs: AtomicI64::new(i64::MIN),
            generation: AtomicU64::new(0),
        })
    }

    pub(crate) fn digest(&self, presented: &str) -> Digest {
        let mut mac = self.keyed.clone();
        mac.update(presented.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The cached record for `id` when `digest` matches and the entry is fresh at `now`.
    pub(crate) fn get(
        &self,
        id: &str,
        digest: &Digest,
        now: DateTime<Utc>,
    ) -> Option<Arc<Authenticated>> {
        let entry = self.entries.get(id)?;
        let fresh = entry.fresh_at(now);
        if fresh && same_digest(&entry.digest, digest) {
            return Some(entry.key.clone());
        }
        let stale = !fresh;
        drop(entry);
        if stale {
            self.entries.remove(id);
        }
        None
    }

    /// The invalidation generation; take it before reading the store.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Caches `key`, read from the store when the generation was `read_at`. If any
    /// invalidation happened since, the entry is dropped again: either the invalidation's
    /// bump is seen here, or its removal comes after this insert.
    pub(crate) fn insert(
        &self,
        read_at: u64,
        digest: Digest,
        key: Arc<Authenticated>,
        now: DateTime<Utc>,
    ) {
        let id = key.record.id.clone();
        self.insert_unchecked(digest, key, now);
        if self.generation() != read_at {
            self.entries.remove(&id);
        }
    }

    fn insert_unchecked(&self, digest: Digest, key: Arc<Authenticated>, now: DateTime<Utc>) {
        let id = key.record.id.clone();
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&id) {
            self.sweep(now);
            if self.entries.len() >= self.capacity {
                return; // full of fresh entries: serve this key uncached rather than grow
            }
        }
        self.entries.insert(
            id,
            Entry {
                digest,
                key,
                fresh_from: now
                    .checked_sub_signed(CLOCK_SKEW)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC),
                fresh_until: now
                    .checked_add_signed(self.ttl)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            },
        );
    }

    /// Replaces the record of a cached entry (keeping its digest and age) after this
    /// process changed it, for example by refilling its uses. Like [`insert`](Self::insert),
    /// it undoes itself if an invalidation happened since the record was read.
    pub(crate) fn refresh(&self, read_at: u64, key: Arc<Authenticated>) {
        let id = key.record.id.clone();
        if let Some(mut entry) = self.entries.get_mut(&id) {
            entry.key = key;
        }
        if self.generation() != read_at {
            self.entries.remove(&id);
        }
    }

    pub(crate) fn invalidate(&self, id: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.remove(id);
    }

    /// Drops every entry. The generation is bumped first, so a verification that read the
    /// store before the flush and inserts after it removes its entry again (see
    /// [`insert`](Self::insert)); one that inserts before the flush is cleared by it.
    pub(crate) fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
    }

    /// Drops expired entries, at most once a second so a full cache does not rescan on
    /// every miss.
    fn sweep(&self, now: DateTime<Utc>) {
        let secs = now.timestamp();
        let last = self.last_sweep_secs.load(Ordering::Relaxed);
        if last == secs
            || self
                .last_sweep_secs
                .compare_exchange(last, secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.entries.retain(|_, e| e.fresh_at(now));
    }
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::KeyRecord;

    fn entry(cached_at: DateTime<Utc>, ttl: TimeDelta) -> Entry {
        let format = crate::format::KeyFormat::new("sk_live").unwrap_or_else(|_| unreachable!());
        let key = format.generate().unwrap_or_else(|_| unreachable!());
        let hash = crate::hash::PhcHash::new("$hmac-sha256$kid=a$c2FsdA$aGFzaA")
            .unwrap_or_else(|_| unreachable!());
        let record = KeyRecord::new(
            key.id().clone(),
            hash,
            format.prefix().clone(),
            key.hint(),
            "owner".to_owned(),
            crate::record::KeyAttributes::default(),
            cached_at,
        );
        let key_type = super::super::KeyType::secret("sk_live", crate::record::Environment::live())
            .unwrap_or_else(|_| unreachable!());
        Entry {
            digest: [0; 32],
            key: Arc::new(Authenticated::new(
                record,
                crate::scope::ScopeSet::default(),
                Arc::new(key_type),
                None,
            )),
            fresh_from: cached_at - CLOCK_SKEW,
            fresh_until: cached_at + ttl,
        }
    }

    #[test]
    fn an_entry_read_on_a_core_whose_clock_lags_is_still_fresh() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let e = entry(at, TimeDelta::seconds(30));
        // Another core's counter a few microseconds behind the inserting one's.
        assert!(e.fresh_at(at - TimeDelta::microseconds(40)));
        assert!(e.fresh_at(at + TimeDelta::seconds(29)));
        assert!(!e.fresh_at(at + TimeDelta::seconds(30)), "the TTL ends it");
        assert!(
            !e.fresh_at(at - TimeDelta::minutes(5)),
            "a clock stepped back is stale"
        );
    }
}
