//! Running CPU-heavy hashing off the async executor, and bounding the uncached path.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::hash::HashError;

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

/// Runs `work` as a task of its own when a tokio runtime is available, and waits for it:
/// if the caller stops waiting, the task still runs to its end (holding whatever it owns,
/// such as a [`Slot`]). Without a runtime it runs in place.
pub(crate) async fn run_detached<T, F>(work: F) -> Result<T, HashError>
where
    T: Send + 'static,
    F: std::future::Future<Output = T> + Send + 'static,
{
    #[cfg(feature = "tokio")]
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        return handle
            .spawn(work)
            .await
            .map_err(|_| HashError::Backend("verification task failed"));
    }
    Ok(work.await)
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

/// Bounds the work that unauthenticated requests can cause: the store lookup and the
/// secret hash of every verification the cache cannot answer.
///
/// Forged keys pass the checksum (CRC-32 is public), and each costs one store read and one
/// Argon2 run; without a bound, a flood of them would take every database connection,
/// every blocking thread and `19 MiB × threads` of memory. At most `concurrency`
/// verifications are on the uncached path at once and at most `max_waiting` wait for a
/// place; beyond that, verification is refused at once (HTTP 503) instead of queueing.
///
/// A place is a [`Slot`]. It is taken before the lookup and given back only when the hash
/// it admitted has finished: the slot moves into the blocking task, so a caller that stops
/// waiting (an HTTP timeout, a client disconnect) frees nothing while Argon2 still runs.
#[derive(Debug)]
pub(crate) struct HashGate {
    inner: Arc<GateInner>,
}

#[derive(Debug)]
struct GateInner {
    #[cfg(feature = "tokio")]
    permits: Arc<tokio::sync::Semaphore>,
    /// Verifications waiting for or holding a slot.
    inside: AtomicUsize,
    capacity: usize,
    /// Priority entries waiting for or holding a slot: they skip the waiting-room bound,
    /// so they have one of their own.
    priority_inside: AtomicUsize,
}

/// At most this many priority entries (leak-report confirmations) wait or run at once: a
/// flood of reports must not grow the queue past the bound that forged keys cannot.
pub(crate) const MAX_PRIORITY_INSIDE: usize = 4;

/// Why gated work did not produce a result.
#[derive(Debug)]
pub(crate) enum GateError {
    /// Too many requests are already running or waiting.
    Overloaded,
    /// The work could not run.
    Failed(HashError),
}

/// Counts one verification inside the gate until dropped, wherever it is dropped: in the
/// caller while it waits, or in the blocking task once the work is done.
#[derive(Debug)]
struct Inside(Arc<GateInner>);

impl Drop for Inside {
    fn drop(&mut self) {
        self.0.inside.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts one priority entry until dropped, as [`Inside`] counts every entry.
#[derive(Debug)]
struct PriorityInside(Arc<GateInner>);

impl Drop for PriorityInside {
    fn drop(&mut self) {
        self.0.priority_inside.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Reports one verification waiting for a place until dropped (it got one, or its caller
/// gave up).
#[cfg(feature = "tokio")]
struct Waiting;

#[cfg(feature = "tokio")]
impl Waiting {
    fn new() -> Self {
        crate::metrics::uncached_wait();
        Self
    }
}

#[cfg(feature = "tokio")]
impl Drop for Waiting {
    fn drop(&mut self) {
        crate::metrics::uncached_waited();
    }
}

/// Reports one verification holding a place until dropped.
#[derive(Debug)]
struct Holding;

impl Drop for Holding {
    fn drop(&mut self) {
        crate::metrics::uncached_leave();
    }
}

/// One place on the uncached path, held from before the store lookup until the hash
/// finishes.
#[derive(Debug)]
pub(crate) struct Slot {
    // Field order is drop order: the permit frees the hashing place first, then the count.
    #[cfg(feature = "tokio")]
    _permit: tokio::sync::OwnedSemaphorePermit,
    _holding: Holding,
    _inside: Inside,
    _priority: Option<PriorityInside>,
}

impl HashGate {
    pub(crate) fn new(concurrency: usize, max_waiting: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            inner: Arc::new(GateInner {
                #[cfg(feature = "tokio")]
                permits: Arc::new(tokio::sync::Semaphore::new(concurrency)),
                inside: AtomicUsize::new(0),
                capacity: concurrency.saturating_add(max_waiting),
                priority_inside: AtomicUsize::new(0),
            }),
        }
    }

    /// Waits for a slot, or refuses at once when `concurrency + max_waiting` verifications
    /// are already inside.
    pub(crate) async fn enter(&self) -> Result<Slot, GateError> {
        self.enter_with(false).await
    }

    /// Waits for a slot even when the waiting room is full, for work that must not be
    /// turned away by a flood of forged keys (confirming a leak report): it still runs only
    /// when a hashing slot is free, so the bound on concurrent work holds. At most
    /// [`MAX_PRIORITY_INSIDE`] priority entries are inside at once; beyond that it refuses
    /// like [`enter`](Self::enter). The caller bounds how long it waits.
    pub(crate) async fn enter_priority(&self) -> Result<Slot, GateError> {
        let before = self.inner.priority_inside.fetch_add(1, Ordering::AcqRel);
        let priority = PriorityInside(self.inner.clone());
        if before >= MAX_PRIORITY_INSIDE {
            return Err(GateError::Overloaded);
        }
        let mut slot = self.enter_with(true).await?;
        slot._priority = Some(priority);
        Ok(slot)
    }

    async fn enter_with(&self, priority: bool) -> Result<Slot, GateError> {
        let before = self.inner.inside.fetch_add(1, Ordering::AcqRel);
        if before >= self.inner.capacity && !priority {
            self.inner.inside.fetch_sub(1, Ordering::AcqRel);
            return Err(GateError::Overloaded);
        }
        let inside = Inside(self.inner.clone());
        #[cfg(feature = "tokio")]
        let permit = {
            let _waiting = Waiting::new();
            self.inner
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| GateError::Failed(HashError::Backend("hash gate closed")))?
        };
        crate::metrics::uncached_enter();
        Ok(Slot {
            #[cfg(feature = "tokio")]
            _permit: permit,
            _holding: Holding,
            _inside: inside,
            _priority: None,
        })
    }
}

impl Slot {
    /// Runs `work` off the executor, keeping this slot taken until `work` returns, even if
    /// the caller stops waiting for the result.
    pub(crate) async fn run<T, F>(self, work: F) -> Result<T, GateError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        run_blocking(move || {
            let _slot = self;
            work()
        })
        .await
        .map_err(GateError::Failed)
    }
}

#[cfg(all(test, feature = "tokio"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn priority_entries_skip_the_waiting_room_but_have_a_bound_of_their_own() {
        let gate = HashGate::new(1, 0);
        let held = gate.enter().await.unwrap();
        assert!(
            matches!(gate.enter().await, Err(GateError::Overloaded)),
            "the waiting room holds no one"
        );
        let waiting: Vec<_> = (0..MAX_PRIORITY_INSIDE)
            .map(|_| {
                let gate = HashGate {
                    inner: gate.inner.clone(),
                };
                tokio::spawn(async move { gate.enter_priority().await.map(drop).is_ok() })
            })
            .collect();
        while gate.inner.priority_inside.load(Ordering::Acquire) < MAX_PRIORITY_INSIDE {
            tokio::task::yield_now().await;
        }
        assert!(
            matches!(gate.enter_priority().await, Err(GateError::Overloaded)),
            "one more priority entry than the bound is refused at once"
        );
        drop(held);
        for entry in waiting {
            assert!(entry.await.unwrap(), "the bounded ones get their turn");
        }
        assert_eq!(gate.inner.priority_inside.load(Ordering::Acquire), 0);
        assert_eq!(gate.inner.inside.load(Ordering::Acquire), 0);
        gate.enter_priority()
            .await
            .expect("the bound is given back");
    }
}
