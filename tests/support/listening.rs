//! Listening to the logs of one test while the others run on parallel threads.
//!
//! `tracing` caches, per callsite, whether any subscriber is interested. While a single
//! dispatcher exists, tracing-core computes that answer on whichever thread reaches the
//! callsite first, with *that thread's* default subscriber: a test running beside this one
//! with no subscriber registers the callsite as "never", and this test's subscriber then
//! misses the event (it failed one run in seven). With a second dispatcher alive, every
//! registration asks all of them under a lock, so the cached answer includes this one's.

use tracing::Dispatch;
use tracing::subscriber::{DefaultGuard, NoSubscriber};

/// Makes `subscriber` this thread's default until the guard drops.
pub(crate) fn listen(subscriber: impl tracing::Subscriber + Send + Sync + 'static) -> Listening {
    let bystander = Dispatch::new(NoSubscriber::default());
    let guard = tracing::dispatcher::set_default(&Dispatch::new(subscriber));
    // Callsites registered before the bystander existed were answered the lock-free way.
    tracing_core::callsite::rebuild_interest_cache();
    Listening {
        _guard: guard,
        _bystander: bystander,
    }
}

/// Keeps a test's subscriber in place (and the bystander dispatcher alive).
pub(crate) struct Listening {
    _guard: DefaultGuard,
    _bystander: Dispatch,
}
