//! The key table of the in-memory limiter: sharded open addressing where each entry holds
//! its 64-bit fingerprint and its atomic state together (16 bytes, 16-byte aligned, four
//! to a cache line), so a lookup touches one cache line (two with a probe across a line
//! boundary) instead of hashbrown's separate control byte and bucket.
//!
//! Concurrency: each shard is a `RwLock` over a boxed slice of entries. Lookups and state
//! updates (compare-and-swap on the entry's `AtomicU64`) run under the read lock; inserting,
//! growing and sweeping take the write lock of one shard at a time. No lock is held while
//! another is taken. No `unsafe`.

use std::sync::atomic::AtomicU64;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Smallest shard capacity (a power of two).
const MIN_CAPACITY: usize = 16;

/// A fingerprint: 61 bits of a seeded hash (high bits), bit 2 always set (so 0 means an
/// empty slot) and the limit kind in bits 0-1 (so sweeps can judge idleness).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Fp(pub(super) u64);

impl Fp {
    /// The fingerprint of a 64-bit seeded `hash` for a limit of kind `kind` (0..=3).
    #[inline]
    pub(super) fn new(hash: u64, kind: u64) -> Self {
        Self((hash & !7) | 4 | (kind & 3))
    }

    /// The kind bits given to [`Fp::new`].
    pub(super) fn kind(self) -> u64 {
        self.0 & 3
    }
}

/// One slot: fingerprint and state side by side; 16-byte alignment keeps an entry inside
/// one cache line.
#[derive(Debug, Default)]
#[repr(align(16))]
struct Entry {
    fp: u64,
    state: AtomicU64,
}

impl Entry {
    #[inline]
    fn is_empty(&self) -> bool {
        self.fp == 0
    }
}

#[derive(Debug)]
struct Shard {
    entries: Box<[Entry]>,
    len: usize,
}

impl Shard {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: (0..capacity).map(|_| Entry::default()).collect(),
            len: 0,
        }
    }

    /// Index of `fp`'s entry or of the empty slot ending its probe sequence. Terminates
    /// because the load factor stays at or below 3/4 (there is always an empty slot).
    #[inline]
    fn probe(&self, fp: Fp) -> usize {
        let mask = self.entries.len() - 1;
        // The bits above the kind and marker pick the slot; the high bits picked the shard.
        let mut i = usize::try_from(fp.0 >> 3).unwrap_or(usize::MAX) & mask;
        loop {
            let e = &self.entries[i];
            if e.fp == fp.0 || e.is_empty() {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// Places an entry known to be absent (used when rebuilding).
    fn place(&mut self, fp: u64, state: u64) {
        let i = self.probe(Fp(fp));
        self.entries[i] = Entry {
            fp,
            state: AtomicU64::new(state),
        };
        self.len += 1;
    }

    /// Rebuilds into `capacity` slots keeping the entries for which `keep` holds.
    fn rebuild(&mut self, capacity: usize, mut keep: impl FnMut(Fp, u64) -> bool) {
        let old = std::mem::replace(self, Self::with_capacity(capacity));
        for e in old.entries.into_vec() {
            let empty = e.is_empty();
            let state = e.state.into_inner();
            if !empty && keep(Fp(e.fp), state) {
                self.place(e.fp, state);
            }
        }
    }
}

/// Capacity holding `len` entries at a load factor of at most 3/4.
fn capacity_for(len: usize) -> usize {
    // The smallest power of two c with len <= 3c/4, i.e. c >= ceil(4 len / 3).
    (len.saturating_mul(4).saturating_add(2) / 3)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX / 2 + 1)
        .max(MIN_CAPACITY)
}

/// A shard padded to two cache lines so that neighbouring shards' locks do not share one.
#[derive(Debug)]
#[repr(align(128))]
struct Padded(RwLock<Shard>);

/// Result of [`Table::get_or_insert`].
pub(super) enum Inserted<R> {
    /// The entry existed (another caller inserted it meanwhile).
    Found(R),
    /// A new entry was created with state 0.
    Created(R),
}

/// The sharded fingerprint-to-state table.
#[derive(Debug)]
pub(super) struct Table {
    shards: Box<[Padded]>,
    shift: u32,
}

impl Table {
    /// A table of `shards` shards (a power of two, at least 2).
    pub(super) fn new(shards: usize) -> Self {
        debug_assert!(shards.is_power_of_two() && shards >= 2);
        Self {
            shards: (0..shards)
                .map(|_| Padded(RwLock::new(Shard::with_capacity(MIN_CAPACITY))))
                .collect(),
            shift: 64 - shards.trailing_zeros(),
        }
    }

    #[inline]
    fn shard(&self, fp: Fp) -> &RwLock<Shard> {
        // The high bits pick the shard, independent of the slot bits.
        let i = usize::try_from(fp.0 >> self.shift).unwrap_or(0);
        &self.shards[i].0
    }

    /// Runs `f` on the state of `fp` under the shard's read lock; `None` if absent.
    #[inline]
    pub(super) fn get<R>(&self, fp: Fp, f: impl FnOnce(&AtomicU64) -> R) -> Option<R> {
        let shard = read(self.shard(fp));
        let e = &shard.entries[shard.probe(fp)];
        (!e.is_empty()).then(|| f(&e.state))
    }

    /// True when `fp` has an entry.
    pub(super) fn contains(&self, fp: Fp) -> bool {
        self.get(fp, |_| ()).is_some()
    }

    /// Runs `f` on the state of `fp`, creating the entry (state 0) if absent, under the
    /// shard's write lock. Grows the shard (doubling, rehashing it) at 3/4 load.
    pub(super) fn get_or_insert<R>(&self, fp: Fp, f: impl FnOnce(&AtomicU64) -> R) -> Inserted<R> {
        let mut shard = write(self.shard(fp));
        let i = shard.probe(fp);
        if !shard.entries[i].is_empty() {
            return Inserted::Found(f(&shard.entries[i].state));
        }
        let i = if (shard.len + 1) * 4 > shard.entries.len() * 3 {
            let capacity = shard.entries.len() * 2;
            shard.rebuild(capacity, |_, _| true);
            shard.probe(fp)
        } else {
            i
        };
        shard.entries[i] = Entry {
            fp: fp.0,
            state: AtomicU64::new(0),
        };
        shard.len += 1;
        Inserted::Created(f(&shard.entries[i].state))
    }

    /// Removes every entry for which `evict(fingerprint, state)` holds, one shard at a time,
    /// shrinking shards that became sparse. Returns how many were removed.
    pub(super) fn retain_not(&self, mut evict: impl FnMut(Fp, u64) -> bool) -> usize {
        let mut removed = 0;
        for padded in &self.shards {
            let mut shard = write(&padded.0);
            let before = shard.len;
            // First pass decides (states are read once, under the write lock, so the
            // rebuild sees the same values); the rebuild then sizes for the survivors.
            let live = shard
                .entries
                .iter()
                .filter(|e| {
                    !e.is_empty()
                        && !evict(Fp(e.fp), e.state.load(std::sync::atomic::Ordering::Acquire))
                })
                .count();
            if live == before {
                continue;
            }
            if live == 0 {
                *shard = Shard::with_capacity(MIN_CAPACITY);
                removed += before;
                continue;
            }
            let capacity = capacity_for(live);
            let mut kept = 0;
            shard.rebuild(capacity, |fp, state| {
                let keep = !evict(fp, state);
                kept += usize::from(keep);
                keep
            });
            debug_assert_eq!(kept, live);
            removed += before - shard.len;
        }
        removed
    }

    /// Number of entries (sums the shards under their read locks).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| read(&s.0).len).sum()
    }
}

#[inline]
fn read(lock: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    // A panic while holding a lock cannot leave a shard inconsistent: rebuilds replace the
    // entries wholesale and states are plain atomics.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(lock: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    fn fp(i: u64) -> Fp {
        // Spread over shards like a seeded hash would, with deliberate clashes of the slot
        // bits (bits 3-6 cleared) to exercise probing; the kind bits vary too.
        let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & !0x78;
        Fp::new(h, i)
    }

    #[test]
    fn insert_get_grow_and_sweep() {
        let t = Table::new(4);
        for i in 0..5000 {
            match t.get_or_insert(fp(i), |s| s.store(i + 1, Ordering::Relaxed)) {
                Inserted::Created(()) => {}
                Inserted::Found(()) => panic!("{i} existed"),
            }
        }
        assert_eq!(t.len(), 5000);
        for i in 0..5000 {
            assert_eq!(t.get(fp(i), |s| s.load(Ordering::Relaxed)), Some(i + 1));
            assert!(matches!(
                t.get_or_insert(fp(i), |_| ()),
                Inserted::Found(())
            ));
        }
        assert_eq!(t.get(fp(5000), |_| ()), None);
        // Same hash, different kind: a different key.
        let other = Fp::new(fp(7).0, fp(7).kind() + 1);
        assert_eq!(other.kind(), (7 + 1) & 3);
        assert!(!t.contains(other));
        assert_ne!(Fp::new(0, 0).0, 0, "no fingerprint looks empty");
        // Evict the odd states (even i), keep the rest, then every lookup still agrees.
        let removed = t.retain_not(|_, state| state % 2 == 1);
        assert_eq!(removed, 2500);
        assert_eq!(t.len(), 2500);
        for i in 0..5000 {
            let expect = (i % 2 == 1).then_some(i + 1);
            assert_eq!(t.get(fp(i), |s| s.load(Ordering::Relaxed)), expect);
        }
        assert_eq!(t.retain_not(|_, _| true), 2500);
        assert_eq!(t.len(), 0);
        let shard = read(&t.shards[0].0);
        assert_eq!(
            shard.entries.len(),
            MIN_CAPACITY,
            "sweeps shrink empty shards"
        );
    }

    #[test]
    fn load_factor_bounds() {
        assert_eq!(capacity_for(0), MIN_CAPACITY);
        assert_eq!(capacity_for(12), 16);
        assert_eq!(capacity_for(13), 32);
        for len in [1, 100, 12_288, 12_289, 1_000_000] {
            let c = capacity_for(len);
            assert!(c.is_power_of_two() && len * 4 <= c * 3, "{len} -> {c}");
        }
    }

    #[test]
    fn concurrent_inserts_and_updates_lose_nothing() {
        let t = Table::new(2);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..2000 {
                        let add = |s: &AtomicU64| s.fetch_add(1, Ordering::Relaxed);
                        if t.get(fp(i), add).is_none() {
                            let _ = t.get_or_insert(fp(i), add);
                        }
                    }
                });
            }
        });
        assert_eq!(t.len(), 2000);
        for i in 0..2000 {
            assert_eq!(t.get(fp(i), |s| s.load(Ordering::Relaxed)), Some(4));
        }
    }
}
