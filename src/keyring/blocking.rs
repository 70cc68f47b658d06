//! Running CPU-heavy hashing off the async executor.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::HashError;

/// Runs `work` on tokio's blocking pool when called inside a tokio runtime (feature
/// `tokio`), so a burst of Argon2 verifications does not stall other tasks; otherwise runs
/// it in place.
pub(crate) async fn run_blocking<T, F>(work: F) -> Result<T, HashError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    #[cfg(feature = "tokio")]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return handle
            .spawn_blocking(work)
            .await
            .map_err(|_| HashError::Backend("blocking hash task failed"));
    }
    Ok(work())
}

/// Spawns `task` in the background when a tokio runtime is available; otherwise awaits it
/// in place. For best-effort writes (rehash, last-used) that must not fail a request.
pub(crate) async fn spawn_or_run<F>(task: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    #[cfg(feature = "tokio")]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(task);
        return;
    }
    task.await;
}

/// Bounds the hashing that unauthenticated requests can cause.
///
/// Forged keys pass the checksum (CRC-32 is public), and each costs one Argon2 run; without
/// a bound, a flood of them would occupy every blocking thread and `19 MiB × threads` of
/// memory. At most `concurrency` hashes run at once and at most `max_waiting` requests
/// wait; beyond that, verification is refused at once (HTTP 503) instead of queueing.
#[derive(Debug)]
pub(crate) struct HashGate {
    #[cfg(feature = "tokio")]
    permits: tokio::sync::Semaphore,
    inside: AtomicUsize,
    capacity: usize,
}

/// Why gated work did not produce a result.
#[derive(Debug)]
pub(crate) enum GateError {
    /// Too many requests are already running or waiting.
    Overloaded,
    /// The work could not run.
    Failed(HashError),
}

/// Leaves the gate when dropped, also when the waiting future is cancelled.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HashGate {
    pub(crate) fn new(concurrency: usize, max_waiting: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            #[cfg(feature = "tokio")]
            permits: tokio::sync::Semaphore::new(concurrency),
            inside: AtomicUsize::new(0),
            capacity: concurrency.saturating_add(max_waiting),
        }
    }

    /// Runs `work` off the executor once a slot is free, or refuses when the queue is full.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, GateError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.inside.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.inside.fetch_sub(1, Ordering::AcqRel);
            return Err(GateError::Overloaded);
        }
        let _leave = Leave(&self.inside);
        #[cfg(feature = "tokio")]
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| GateError::Failed(HashError::Backend("hash gate closed")))?;
        run_blocking(work).await.map_err(GateError::Failed)
    }
}
