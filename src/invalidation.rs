//! Cache invalidation across the processes of a fleet: the hook that the keyring calls and
//! that pub/sub backends implement, beside the keyring rather than inside it, so stores and
//! limiters can provide one without depending on the keyring.
//!
//! Two backends ship with the crate, one file each: `PgInvalidation` over PostgreSQL
//! `LISTEN`/`NOTIFY` (feature `postgres`) and `RedisInvalidation` over Redis pub/sub
//! (feature `redis`). Both come as a pair, built together:
//!
//! * a publisher ([`CacheInvalidation`]) for the keyring's builder: `publish` only puts the
//!   id on a bounded in-process queue, which a background task sends on; a revoke never
//!   waits on the channel or fails because of it;
//! * a listener that, once given the keyring, passes every id received to
//!   [`Keyring::invalidate_cached`](crate::Keyring::invalidate_cached) and, whenever it
//!   (re)subscribes, flushes the whole verified-key cache with
//!   [`Keyring::invalidate_all_cached`](crate::Keyring::invalidate_all_cached): messages
//!   sent while it was disconnected are lost, and the flush is what makes up for them.
//!
//! # Staleness bound
//!
//! A change made through one keyring is refused by every other keyring on the channel
//! within the delivery delay (milliseconds on a LAN) while their listeners are connected.
//! While a listener is disconnected, its keyring falls back to the cache TTL bound; when it
//! reconnects it flushes everything. A message dropped on the publishing side (queue full,
//! server down for longer than the retries) also falls back to the TTL bound, and is
//! counted (`PublisherStats`) and logged.
//!
//! # Messages
//!
//! Each message is `km1 <origin> <key id>`: a format tag, 16 hex digits naming the
//! publisher (so a listener can skip what its own keyring published: that keyring already
//! dropped its entries) and the id. Nothing secret travels. A listener accepts at most
//! `MAX_MESSAGE_LEN` bytes and only well-formed messages with a valid [`KeyId`]; anything
//! else is counted and ignored.

#[cfg(any(feature = "postgres", feature = "redis"))]
mod channel;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;

#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) use channel::{
    Backoff, ListenerState, MAX_BATCH, PublisherCounters, Queue, encode, new_origin, skip_for,
    validate_channel,
};
#[cfg(any(feature = "postgres", feature = "redis"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "redis"))))]
pub use channel::{
    DEFAULT_QUEUE_CAPACITY, InvalidationError, ListenerHandle, ListenerStatus, MAX_MESSAGE_LEN,
    PublisherStats,
};

use std::fmt;

use crate::format::KeyId;

/// Carries cache invalidations between the processes of a fleet.
///
/// The keyring calls [`publish`](Self::publish) after every change it makes to a key
/// (revoke, disable, enable, update, rotate). Back it with your pub/sub (Redis, NATS,
/// PostgreSQL `NOTIFY`) and, in every process, pass each id received to
/// [`Keyring::invalidate_cached`](crate::Keyring::invalidate_cached), and call
/// [`Keyring::invalidate_all_cached`](crate::Keyring::invalidate_all_cached) whenever the
/// subscription is (re)established.
///
/// Staleness bound: without it, a change made in one process reaches the caches of the
/// others within the cache TTL (default 30 s); with it, within the pub/sub delivery delay
/// (and still within the TTL if a message is lost).
pub trait CacheInvalidation: Send + Sync + fmt::Debug + 'static {
    /// Announces that the record `id` changed. Must not block: the keyring calls it on the
    /// path of revoke and rotate.
    fn publish(&self, id: &KeyId);

    /// The tag this channel stamps on what it publishes, if any. A listener serving the
    /// keyring that publishes through this channel skips messages bearing it (the keyring
    /// already dropped its own entries). The default, `None`, makes listeners skip nothing.
    fn origin(&self) -> Option<u64> {
        None
    }
}

/// What an invalidation listener acts on: implemented by [`Keyring`](crate::Keyring).
pub trait InvalidationTarget: Send + Sync + 'static {
    /// Drops any cached verification of `id`.
    fn invalidate(&self, id: &KeyId);
    /// Drops every cached verification.
    fn invalidate_all(&self);
    /// The [`CacheInvalidation::origin`] of the channel this target publishes through.
    fn publishing_origin(&self) -> Option<u64>;
}
