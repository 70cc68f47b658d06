//! Cache invalidation across the processes of a fleet: the hook that the keyring calls and
//! that pub/sub backends implement, beside the keyring rather than inside it, so stores and
//! limiters can provide one without depending on the keyring.

use std::fmt;

use crate::format::KeyId;

/// Carries cache invalidations between the processes of a fleet.
///
/// The keyring calls [`publish`](Self::publish) after every change it makes to a key
/// (revoke, disable, enable, update, rotate). Back it with your pub/sub (Redis, NATS,
/// PostgreSQL `NOTIFY`) and, in every process, pass each id received to
/// [`Keyring::invalidate_cached`](crate::Keyring::invalidate_cached).
///
/// Staleness bound: without it, a change made in one process reaches the caches of the
/// others within the cache TTL (default 30 s); with it, within the pub/sub delivery delay
/// (and still within the TTL if a message is lost).
pub trait CacheInvalidation: Send + Sync + fmt::Debug + 'static {
    /// Announces that the record `id` changed.
    fn publish(&self, id: &KeyId);
}
