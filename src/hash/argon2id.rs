//! Argon2id, the default hasher.

use argon2::{Algorithm, Argon2, Params, Version};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::phc::{Phc, encode_b64};
use super::{PhcHash, SecretHasher};
use crate::hash::HashError;

/// Argon2id with OWASP's recommended parameters by default (m = 19 456 KiB, t = 2, p = 1).
///
/// Verification uses the parameters stored in each hash, so raising the defaults keeps old
/// hashes verifiable; [`needs_rehash`](SecretHasher::needs_rehash) tells which ones to
/// upgrade. Stored parameters above the `MAX_*` caps are refused rather than computed, so a
/// tampered record cannot make verification allocate gigabytes.
///
/// ```
/// use keymint::{Argon2idHasher, SecretHasher};
///
/// let hasher = Argon2idHasher::builder().m_cost(1024).t_cost(1).build()?; // fast, for the doctest
/// let stored = hasher.hash(b"the secret part of a key")?;
/// assert!(stored.as_str().starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
/// assert!(hasher.verify(b"the secret part of a key", &stored.phc()?)?);
/// assert!(!hasher.verify(b"another secret", &stored.phc()?)?);
/// # Ok::<(), keymint::HashError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Argon2idHasher {
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
    /// Working memory kept between runs (shared by clones).
    memory: std::sync::Arc<memory::Pool>,
}

impl PartialEq for Argon2idHasher {
    fn eq(&self, other: &Self) -> bool {
        (self.m_cost, self.t_cost, self.p_cost) == (other.m_cost, other.t_cost, other.p_cost)
    }
}

impl Eq for Argon2idHasher {}

impl Argon2idHasher {
    /// PHC algorithm identifier.
    pub const ALGORITHM: &'static str = "argon2id";
    /// Default memory cost in KiB (OWASP).
    pub const DEFAULT_M_COST: u32 = 19_456;
    /// Default number of passes (OWASP).
    pub const DEFAULT_T_COST: u32 = 2;
    /// Default parallelism (OWASP).
    pub const DEFAULT_P_COST: u32 = 1;
    /// Largest memory cost computed on verify: 256 MiB (13 times the default).
    pub const MAX_M_COST: u32 = 1 << 18;
    /// Largest number of passes computed on verify.
    pub const MAX_T_COST: u32 = 16;
    /// Largest parallelism computed on verify.
    pub const MAX_P_COST: u32 = 8;
    const OUTPUT_LEN: usize = 32;

    /// The hasher with default parameters.
    pub fn new() -> Self {
        Self {
            m_cost: Self::DEFAULT_M_COST,
            t_cost: Self::DEFAULT_T_COST,
            p_cost: Self::DEFAULT_P_COST,
            memory: std::sync::Arc::new(memory::Pool::new()),
        }
    }

    /// A builder starting from the defaults.
    pub fn builder() -> Argon2idBuilder {
        Argon2idBuilder { inner: Self::new() }
    }

    fn compute(
        &self,
        secret: &[u8],
        salt: &[u8],
        (m, t, p): (u32, u32, u32),
        out: &mut [u8],
    ) -> Result<(), HashError> {
        let params = Params::new(m, t, p, Some(out.len()))
            .map_err(|_| HashError::UnsupportedParams("argon2 rejected the parameters"))?;
        let speed_check = speed::first_large_run(m, t);
        let started = speed_check.then(std::time::Instant::now);
        // Buffers larger than twice this hasher's own need (after verifying an old record
        // with a larger memory cost) are not kept.
        let own = usize::try_from(self.m_cost).unwrap_or(usize::MAX);
        let mut blocks = self
            .memory
            .take(params.block_count(), own.saturating_mul(2));
        let result = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into_with_memory(secret, salt, out, blocks.as_mut_slice())
            .map_err(|_| HashError::Backend("argon2 failed"));
        drop(blocks); // wiped, and kept for the next run
        if let Some(started) = started {
            speed::report(m, t, started.elapsed());
        }
        result
    }

    fn stored_params(stored: &Phc<'_>) -> Result<(u32, u32, u32), HashError> {
        if stored.version() != Some(0x13) {
            return Err(HashError::UnsupportedParams("argon2 version must be v=19"));
        }
        let m = stored.decimal_param("m")?;
        let t = stored.decimal_param("t")?;
        let p = stored.decimal_param("p")?;
        if m > Self::MAX_M_COST || t > Self::MAX_T_COST || p > Self::MAX_P_COST {
            return Err(HashError::UnsupportedParams(
                "argon2 cost above the verify cap",
            ));
        }
        Ok((m, t, p))
    }
}

impl Default for Argon2idHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretHasher for Argon2idHasher {
    fn algorithm(&self) -> &'static str {
        Self::ALGORITHM
    }

    fn hash(&self, secret: &[u8]) -> Result<PhcHash, HashError> {
        let salt = super::fresh_salt()?;
        let mut out = Zeroizing::new([0u8; Self::OUTPUT_LEN]);
        self.compute(
            secret,
            &salt,
            (self.m_cost, self.t_cost, self.p_cost),
            &mut out[..],
        )?;
        Ok(PhcHash::from_trusted(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            self.m_cost,
            self.t_cost,
            self.p_cost,
            encode_b64(&salt),
            encode_b64(&out[..])
        )))
    }

    fn verify(&self, secret: &[u8], stored: &Phc<'_>) -> Result<bool, HashError> {
        if stored.algorithm() != Self::ALGORITHM {
            return Err(HashError::UnsupportedAlgorithm(
                stored.algorithm().to_owned(),
            ));
        }
        let params = Self::stored_params(stored)?;
        let salt = stored.salt()?;
        let expected = stored.hash()?;
        if !(8..=64).contains(&salt.len()) || !(16..=64).contains(&expected.len()) {
            return Err(HashError::UnsupportedParams("argon2 salt or output length"));
        }
        let mut out = Zeroizing::new(vec![0u8; expected.len()]);
        self.compute(secret, &salt, params, &mut out)?;
        Ok(bool::from(out.ct_eq(&expected)))
    }

    fn needs_rehash(&self, stored: &Phc<'_>) -> bool {
        stored.algorithm() != Self::ALGORITHM
            || Self::stored_params(stored).ok() != Some((self.m_cost, self.t_cost, self.p_cost))
            || stored.hash().map(|h| h.len()).ok() != Some(Self::OUTPUT_LEN)
    }
}

/// Argon2's working memory (19 MiB at the defaults), kept between runs instead of
/// allocated, faulted in and freed by every one: a fresh allocation costs page faults (and
/// a first run on a new thread a new malloc arena), which made the first hashes on fresh
/// blocking threads about half again as slow as later ones.
///
/// A run takes a buffer at least as large as it needs (or allocates one), and gives it back
/// wiped: the blocks hold secret-derived data. At most one idle buffer per CPU is kept (the
/// keyring's hash gate runs at most that many hashes at once by default), none larger than
/// twice the hasher's own memory cost (a verification of an old record with a larger cost
/// allocates and frees its buffer as before), so the memory held idle is bounded by what
/// the gate already lets run.
mod memory {
    use std::sync::Mutex;

    use argon2::Block;
    use zeroize::Zeroize;

    pub(super) struct Pool {
        idle: Mutex<Vec<Vec<Block>>>,
        max_idle: usize,
    }

    // Not derived: the idle buffers are megabytes of blocks (wiped, but a keyring's Debug
    // would print them all, holding the lock the hashing threads need).
    impl std::fmt::Debug for Pool {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Pool")
                .field("max_idle", &self.max_idle)
                .finish_non_exhaustive()
        }
    }

    impl Pool {
        pub(super) fn new() -> Self {
            Self {
                idle: Mutex::new(Vec::new()),
                max_idle: std::thread::available_parallelism().map_or(1, usize::from),
            }
        }

        /// A buffer of at least `blocks` blocks, wiped or fresh; given back to the pool only
        /// if it holds at most `keep_up_to` blocks.
        pub(super) fn take(&self, blocks: usize, keep_up_to: usize) -> Lease<'_> {
            let reused = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let fit = idle
                    .iter()
                    .position(|b| b.len() >= blocks && b.len() <= 2 * blocks);
                fit.map(|i| idle.swap_remove(i))
            };
            Lease {
                pool: self,
                blocks: Some(reused.unwrap_or_else(|| vec![Block::new(); blocks])),
                keep_up_to,
            }
        }

        fn give_back(&self, mut blocks: Vec<Block>, keep_up_to: usize) {
            // Each block in place: `Vec::zeroize` would also empty the vector.
            for block in &mut blocks {
                block.zeroize();
            }
            if blocks.len() > keep_up_to {
                return;
            }
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.max_idle {
                idle.push(blocks);
            }
        }
    }

    /// A buffer in use; wiped and returned to its pool when dropped (also on a panic).
    pub(super) struct Lease<'p> {
        pool: &'p Pool,
        blocks: Option<Vec<Block>>,
        keep_up_to: usize,
    }

    impl Lease<'_> {
        pub(super) fn as_mut_slice(&mut self) -> &mut [Block] {
            self.blocks.as_deref_mut().unwrap_or_default()
        }
    }

    impl Drop for Lease<'_> {
        fn drop(&mut self) {
            if let Some(blocks) = self.blocks.take() {
                self.pool.give_back(blocks, self.keep_up_to);
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn buffers_are_reused_wiped_and_kept_bounded() {
            let pool = Pool::new();
            let first = {
                let mut lease = pool.take(16, 32);
                lease.as_mut_slice()[3] = {
                    let mut b = Block::new();
                    b.as_mut()[0] = 0xdead_beef;
                    b
                };
                lease.blocks.as_ref().unwrap().as_ptr()
            };
            let mut again = pool.take(16, 32);
            assert_eq!(again.blocks.as_ref().unwrap().as_ptr(), first, "reused");
            assert!(
                again
                    .as_mut_slice()
                    .iter()
                    .all(|b| b.as_ref().iter().all(|w| *w == 0)),
                "wiped before reuse"
            );
            // A smaller run may use a buffer up to twice its size; a much larger one is new.
            drop(again);
            assert_eq!(pool.take(9, 32).blocks.as_ref().unwrap().len(), 16);
            assert_eq!(pool.take(4, 32).blocks.as_ref().unwrap().len(), 4);
            let leases: Vec<_> = (0..pool.max_idle + 3).map(|_| pool.take(16, 32)).collect();
            drop(leases);
            assert!(pool.idle.lock().unwrap().len() <= pool.max_idle);
            // A buffer larger than the hasher keeps (an old record's larger cost) is dropped.
            pool.idle.lock().unwrap().clear();
            drop(pool.take(1000, 32));
            assert!(pool.idle.lock().unwrap().is_empty());
        }

        #[test]
        fn debug_output_leaves_the_idle_buffers_out() {
            let pool = Pool::new();
            drop(pool.take(1024, 2048));
            assert_eq!(pool.idle.lock().unwrap().len(), 1);
            let shown = format!("{pool:?}");
            assert!(shown.len() < 100, "{} bytes of Debug output", shown.len());
        }
    }
}

/// Notices an unoptimised Argon2: in a dependent's debug build the `argon2` crate is
/// compiled without optimisation (this repository's profile overrides do not apply to its
/// users) and runs about 13 times slower, which also lets forged keys hold the hashing
/// slots 13 times longer. `cfg!(debug_assertions)` here cannot see how `argon2` itself was
/// compiled, so the first sizeable hash of the process is timed instead.
mod speed {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// Hashes smaller than this (KiB times passes) are too quick to judge.
    const MIN_WORK_KIB: u64 = 8 * 1024;
    /// Memory an optimised build fills per millisecond with room to spare on a loaded
    /// machine: measured about 1 800 KiB/ms optimised and 100 KiB/ms unoptimised at the
    /// defaults (22 ms against 380 ms).
    const MIN_KIB_PER_MS: u64 = 400;

    static CHECKED: AtomicBool = AtomicBool::new(false);

    /// Whether this run should be timed: the first one of the process that is large enough.
    pub(super) fn first_large_run(m_kib: u32, t: u32) -> bool {
        first_large_run_of(&CHECKED, m_kib, t)
    }

    fn first_large_run_of(checked: &AtomicBool, m_kib: u32, t: u32) -> bool {
        u64::from(m_kib) * u64::from(t) >= MIN_WORK_KIB && !checked.swap(true, Ordering::Relaxed)
    }

    /// The warning for a run of `m_kib` KiB and `t` passes that took `elapsed`, if it was
    /// slower than an optimised build would be.
    pub(super) fn warning(m_kib: u32, t: u32, elapsed: Duration) -> Option<String> {
        let work = u64::from(m_kib) * u64::from(t);
        let expected_ms = work / MIN_KIB_PER_MS;
        let took_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        (work >= MIN_WORK_KIB && took_ms > expected_ms).then(|| {
            format!(
                "keymint: one Argon2id hash (m={m_kib} KiB, t={t}) took {took_ms} ms, where an \
                 optimised build needs under {expected_ms} ms: the argon2 crate looks compiled \
                 without optimisation, which makes every uncached verification that much slower \
                 and lets forged keys hold the hashing slots longer. In a debug build, add to \
                 your Cargo.toml:\n  [profile.dev.package.argon2]\n  opt-level = 3\n  \
                 [profile.dev.package.blake2]\n  opt-level = 3"
            )
        })
    }

    /// Warns once, on stderr (never stdout, which may carry a program's output) and as a
    /// `tracing` warning: a subscriber's filter could drop the latter, and this is worth
    /// seeing once.
    pub(super) fn report(m_kib: u32, t: u32, elapsed: Duration) {
        let Some(message) = warning(m_kib, t, elapsed) else {
            return;
        };
        eprintln!("{message}");
        tracing::warn!("{message}");
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_slow_default_hash_is_reported_with_the_fix() {
            let slow = warning(19_456, 2, Duration::from_millis(380)).unwrap();
            assert!(slow.contains("[profile.dev.package.argon2]"), "{slow}");
            assert!(slow.contains("opt-level = 3"), "{slow}");
            assert!(slow.contains("took 380 ms"), "{slow}");
        }

        #[test]
        fn only_the_first_large_hash_of_a_process_is_timed() {
            let checked = AtomicBool::new(false);
            assert!(!first_large_run_of(&checked, 64, 1), "too small to judge");
            assert!(first_large_run_of(&checked, 19_456, 2));
            assert!(
                !first_large_run_of(&checked, 19_456, 2),
                "warn once, not per hash"
            );
            assert!(!first_large_run_of(&checked, 65_536, 3));
        }

        #[test]
        fn optimised_or_small_hashes_are_not_reported() {
            // Optimised, even on a slow or loaded machine.
            assert_eq!(warning(19_456, 2, Duration::from_millis(22)), None);
            assert_eq!(warning(19_456, 2, Duration::from_millis(60)), None);
            // Too small to judge, however slow.
            assert_eq!(warning(64, 1, Duration::from_millis(50)), None);
        }
    }
}

/// Builds an [`Argon2idHasher`]; [`build`](Self::build) checks the ranges.
#[derive(Clone, Debug)]
#[must_use]
pub struct Argon2idBuilder {
    inner: Argon2idHasher,
}

impl Argon2idBuilder {
    /// Memory cost in KiB, 8..=[`Argon2idHasher::MAX_M_COST`] (and at least 8 × p).
    pub fn m_cost(mut self, kib: u32) -> Self {
        self.inner.m_cost = kib;
        self
    }

    /// Passes, 1..=[`Argon2idHasher::MAX_T_COST`].
    pub fn t_cost(mut self, passes: u32) -> Self {
        self.inner.t_cost = passes;
        self
    }

    /// Lanes, 1..=[`Argon2idHasher::MAX_P_COST`].
    pub fn p_cost(mut self, lanes: u32) -> Self {
        self.inner.p_cost = lanes;
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`HashError::InvalidConfig`] for a parameter out of range.
    pub fn build(self) -> Result<Argon2idHasher, HashError> {
        let Argon2idHasher {
            m_cost,
            t_cost,
            p_cost,
            ..
        } = self.inner;
        if !(1..=Argon2idHasher::MAX_P_COST).contains(&p_cost) {
            return Err(HashError::InvalidConfig("argon2 p_cost must be 1..=8"));
        }
        if !(1..=Argon2idHasher::MAX_T_COST).contains(&t_cost) {
            return Err(HashError::InvalidConfig("argon2 t_cost must be 1..=16"));
        }
        if m_cost < 8 * p_cost || m_cost > Argon2idHasher::MAX_M_COST {
            return Err(HashError::InvalidConfig(
                "argon2 m_cost must be 8*p..=262144 KiB",
            ));
        }
        Ok(self.inner)
    }
}
