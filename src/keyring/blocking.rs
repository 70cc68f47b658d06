//! Running CPU-heavy hashing off the async executor.

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
