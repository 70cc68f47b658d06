//! The in-memory keyed GCRA limiter.

mod table;

use std::fmt;
use std::hash::BuildHasher;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use table::{Fp, Inserted, Table};

use super::algo::{self, Kind};
use super::decision::Decision;
use super::error::RateLimitError;
use super::limiter::RateLimiter;
use super::policy::Policy;
use super::quota::Limit;
use crate::clock::{Clock, SystemClock};

/// New keys between automatic sweeps: at least this many, or half the tracked keys.
const SWEEP_MIN_INSERTS: usize = 4096;
/// Shards of the key table (a power of two): more shards, less lock contention and shorter
/// sweep pauses per shard.
const SHARDS: usize = 64;

/// A keyed rate limiter in process memory: one `AtomicU64` per (key, limit), updated with
/// a lock-free compare-and-swap loop, in a sharded open-addressing table whose entries keep
/// the fingerprint and the state side by side in one cache line.
///
/// # Table keys and hash flooding
///
/// The table is keyed not by the key string but by a fingerprint of (policy name, limit,
/// index, key): 61 bits of a [foldhash](https://docs.rs/foldhash) hash with a random seed
/// drawn per limiter (per process) that never leaves it, plus the limit kind. Entries are
/// therefore 16 bytes (fingerprint and state, four to a cache line) with no heap
/// allocation per key, comparisons never touch the key string, and an attacker who cannot
/// read the seed cannot aim keys at one slot or build probe clusters (foldhash's seeded
/// mode is built to resist hash flooding, though it is not a cryptographic PRF), nor aim a
/// key at another key's state (about 2^61 guesses per victim). Two live keys that share a
/// fingerprint by chance share one budget: they can be denied early, never admitted beyond
/// one limit in total, until the entry is idle and swept; the chance is about n^2 / 2^62
/// for n live (key, limit) entries (2 in 10 million at a million entries). The work per
/// check is linear in the key's length.
///
/// The table is 64 shards of linear-probing open addressing at a load factor of at most 3/4,
/// each behind a read-write lock: a check takes its shard's read lock and updates the entry
/// with a compare-and-swap; only new keys, growth and sweeps take a shard's write lock.
///
/// # Memory
///
/// Idle entries (a GCRA limit back to full burst, a calendar count from a past window)
/// carry no information and are evicted by [`sweep`](MemoryLimiter::sweep), which also runs
/// automatically once the number of new keys since the last sweep reaches half the tracked
/// keys (at least 4096): amortised O(1) per new key, at the price of one caller paying the
/// sweep (about 1 to 3 ms per 100 000 keys here, one shard locked at a time; call `sweep`
/// from a background task and disable the automatic one with
/// [`auto_sweep(false)`](MemoryLimiter::auto_sweep) to avoid that).
/// [`max_keys`](MemoryLimiter::max_keys) adds a hard cap. About 35 bytes per tracked key
/// were measured at 1 000 000 keys (the README's Performance section).
///
/// # Multi-limit policies
///
/// All limits are first checked with plain loads; if any denies, nothing is written. Then
/// each limit is committed with its own compare-and-swap loop, which re-checks that limit
/// against its latest state; if a concurrent request took the room meanwhile, the limits
/// already committed are refunded and the request is denied. Each limit is thus updated
/// atomically and is never pushed beyond its bound; between a commit and its refund other
/// requests see slightly less room, so under races the limiter can be conservative, never
/// generous.
///
/// ```
/// use std::num::NonZeroU32;
/// use keymint::ManualClock;
/// use keymint::ratelimit::{MemoryLimiter, Policy, Quota};
///
/// let limiter = MemoryLimiter::with_clock(ManualClock::default());
/// let policy = Policy::single("api", Quota::per_second(NonZeroU32::new(2).unwrap()))?;
/// assert!(limiter.check_now("key-1", &policy, 1)?.allowed);
/// assert!(limiter.check_now("key-1", &policy, 1)?.allowed);
/// let third = limiter.check_now("key-1", &policy, 1)?;
/// assert!(!third.allowed);
/// assert_eq!(third.retry_after_secs(), Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MemoryLimiter<C: Clock = SystemClock> {
    table: Table,
    hasher: foldhash::fast::RandomState,
    clock: C,
    tracked: AtomicUsize,
    pressure: AtomicUsize,
    max_keys: Option<usize>,
    auto_sweep: bool,
}

impl MemoryLimiter<SystemClock> {
    /// A limiter on the system clock, with automatic sweeps and no key cap.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }
}

impl Default for MemoryLimiter<SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clock> MemoryLimiter<C> {
    /// A limiter reading time from `clock` (use [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(clock: C) -> Self {
        Self {
            table: Table::new(SHARDS),
            hasher: foldhash::fast::RandomState::default(),
            clock,
            tracked: AtomicUsize::new(0),
            pressure: AtomicUsize::new(0),
            max_keys: None,
            auto_sweep: true,
        }
    }

    /// Caps the number of tracked (key, limit) entries. At the cap, a new key gets
    /// [`RateLimitError::TableFull`], and every `max / 2` such arrivals trigger a sweep that
    /// makes room if idle entries exist (so a full table recovers within `max / 2` new
    /// keys of its entries going idle, and a flood of new keys costs amortised O(1) each).
    #[must_use]
    pub fn max_keys(mut self, max: NonZeroUsize) -> Self {
        self.max_keys = Some(max.get());
        self
    }

    /// Turns the automatic sweep on new keys on (default) or off.
    #[must_use]
    pub fn auto_sweep(mut self, on: bool) -> Self {
        self.auto_sweep = on;
        self
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Number of tracked (key, limit) entries.
    pub fn len(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }

    /// True when no entry is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Evicts every idle entry (one whose limit has fully recovered, or whose calendar
    /// window has passed) and returns how many were removed. Shards are locked one at a
    /// time, so checks on other shards continue meanwhile.
    pub fn sweep(&self) -> usize {
        let now = now_ns(&self.clock);
        let removed = self
            .table
            .retain_not(|fp, state| algo::is_idle(Kind::from_bits(fp.kind()), state, now));
        self.tracked.fetch_sub(removed, Ordering::Relaxed);
        self.pressure.store(0, Ordering::Relaxed);
        removed
    }

    /// Synchronous [`RateLimiter::check`]: the same decision without a future.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::CostTooHigh`] for a cost above a limit's burst or window limit;
    /// [`RateLimitError::TableFull`] when a [`max_keys`](MemoryLimiter::max_keys) cap is
    /// reached by active keys.
    pub fn check_now(
        &self,
        key: &str,
        policy: &Policy,
        cost: u32,
    ) -> Result<Decision, RateLimitError> {
        let limits = policy.limits();
        let tags = policy.tags();
        for (i, limit) in limits.iter().enumerate() {
            algo::check_cost(limit, i, cost)?;
        }
        let now = now_ns(&self.clock);
        if let ([limit], [tag]) = (limits, tags) {
            let slot = self.slot(*tag, limit, key);
            let state = self.apply(slot, limit, now, cost)?;
            return Ok(algo::step(limit, state, now, cost).decision);
        }

        let mut slots = [Fp(0); Policy::MAX_LIMITS];
        let mut merged: Option<Decision> = None;
        let mut denied = false;
        for (i, (limit, tag)) in limits.iter().zip(tags).enumerate() {
            slots[i] = self.slot(*tag, limit, key);
            let state = self.load(slots[i]);
            let d = algo::step(limit, state, now, cost)
                .decision
                .with_limit_index(i);
            denied |= !d.allowed;
            merged = Some(merged.map_or(d, |m| m.most_restrictive(d)));
        }
        if cost == 0 || denied {
            return Ok(settle(merged));
        }
        let mut merged: Option<Decision> = None;
        for (i, limit) in limits.iter().enumerate() {
            let d = match self.apply(slots[i], limit, now, cost) {
                Ok(state) => algo::step(limit, state, now, cost)
                    .decision
                    .with_limit_index(i),
                Err(e) => {
                    self.refund(&slots[..i], &limits[..i], now, cost);
                    return Err(e);
                }
            };
            if !d.allowed {
                self.refund(&slots[..i], &limits[..i], now, cost);
                return Ok(d);
            }
            merged = Some(merged.map_or(d, |m| m.most_restrictive(d)));
        }
        Ok(settle(merged))
    }

    /// Gives back `cost` that an admitted [`check_now`](Self::check_now) of `key` took
    /// under `policy` (a reservation that turned out not to be needed).
    pub(crate) fn refund_now(&self, key: &str, policy: &Policy, cost: u32) {
        let now = now_ns(&self.clock);
        for (limit, tag) in policy.limits().iter().zip(policy.tags()) {
            let slot = self.slot(*tag, limit, key);
            self.refund(&[slot], std::slice::from_ref(limit), now, cost);
        }
    }

    /// The fingerprint of (policy tag, key): a seeded hash, with the limit [`Kind`] in its
    /// low bits so that sweeps can judge idleness without the policy.
    #[inline]
    fn slot(&self, tag: u64, limit: &Limit, key: &str) -> Fp {
        Fp::new(self.hasher.hash_one((tag, key)), Kind::of(limit) as u64)
    }

    fn load(&self, slot: Fp) -> u64 {
        self.table
            .get(slot, |cell| cell.load(Ordering::Acquire))
            .unwrap_or(0)
    }

    /// Checks and commits one limit; returns the state the decision is made on (the one
    /// replaced, or the one that denied), so the caller builds the [`Decision`] with
    /// [`algo::step`] outside any lock. Never holds a table lock while taking another.
    #[inline]
    fn apply(&self, slot: Fp, limit: &Limit, now: u64, cost: u32) -> Result<u64, RateLimitError> {
        if cost == 0 {
            return Ok(self.load(slot));
        }
        let update = |cell: &AtomicU64| cas(cell, limit, now, cost);
        if let Some(state) = self.table.get(slot, update) {
            return Ok(state);
        }
        self.insert(slot, update)
    }

    /// Creates the entry of a new key (or finds the one a racing caller created) and runs
    /// `update` on it, after the automatic sweep and the `max_keys` check.
    fn insert(
        &self,
        slot: Fp,
        update: impl FnOnce(&AtomicU64) -> u64,
    ) -> Result<u64, RateLimitError> {
        if self.auto_sweep || self.max_keys.is_some() {
            let pressure = self.pressure.fetch_add(1, Ordering::Relaxed) + 1;
            let tracked = self.tracked.load(Ordering::Relaxed);
            // Sweeping costs O(tracked); waiting for tracked/2 new keys between sweeps keeps
            // it amortised O(1) per new key. At the cap, half the cap is the wait.
            let due = match self.max_keys {
                Some(max) if tracked >= max => pressure >= (max / 2).max(1),
                _ => self.auto_sweep && pressure >= SWEEP_MIN_INSERTS.max(tracked / 2),
            };
            if due {
                self.sweep();
            }
            if let Some(max) = self.max_keys
                && self.tracked.load(Ordering::Relaxed) >= max
                && !self.table.contains(slot)
            {
                return Err(RateLimitError::TableFull { max_keys: max });
            }
        }
        Ok(match self.table.get_or_insert(slot, update) {
            Inserted::Found(state) => state,
            Inserted::Created(state) => {
                self.tracked.fetch_add(1, Ordering::Relaxed);
                state
            }
        })
    }

    fn refund(&self, slots: &[Fp], limits: &[Limit], now: u64, cost: u32) {
        for (slot, limit) in slots.iter().zip(limits) {
            self.table.get(*slot, |cell| {
                let _ = cell.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                    Some(algo::refund(limit, s, now, cost))
                });
            });
        }
    }
}

/// A policy has at least one limit, so `merged` is always `Some`.
fn settle(merged: Option<Decision>) -> Decision {
    merged.unwrap_or(Decision::allow(0, 0, std::time::Duration::ZERO))
}

/// The lock-free hot path: retry until our compare-and-swap wins or the limit denies.
/// Returns the state decided on (replaced or denying): the decision is a pure function of
/// it, built by the caller after the swap, outside the contended window and the lock.
#[inline]
fn cas(cell: &AtomicU64, limit: &Limit, now: u64, cost: u32) -> u64 {
    let mut current = cell.load(Ordering::Acquire);
    loop {
        let Some(next) = algo::next_state(limit, current, now, cost) else {
            return current;
        };
        match cell.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return current,
            Err(actual) => current = actual,
        }
    }
}

impl<C: Clock> RateLimiter for MemoryLimiter<C> {
    fn check(
        &self,
        key: &str,
        policy: &Policy,
        cost: u32,
    ) -> impl Future<Output = Result<Decision, RateLimitError>> + Send {
        std::future::ready(self.check_now(key, policy, cost))
    }
}

impl<C: Clock> fmt::Debug for MemoryLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLimiter")
            .field("tracked", &self.len())
            .field("max_keys", &self.max_keys)
            .field("auto_sweep", &self.auto_sweep)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Nanoseconds since the Unix epoch (0 before it), through [`Clock::now_unix_nanos`]: for
/// [`SystemClock`] a calibrated TSC reading anchored to the wall clock, for `ManualClock`
/// its exact stored value.
#[inline]
pub(crate) fn now_ns<C: Clock>(clock: &C) -> u64 {
    u64::try_from(clock.now_unix_nanos()).unwrap_or(0)
}
