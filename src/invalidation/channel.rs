//! What the pub/sub backends share: the message format, the publish queue, the listener's
//! state and its back-off.

use crate::format::KeyId;

use super::InvalidationTarget;

/// Longest message a listener accepts, in bytes (`km1 `, 16 hex digits, a space and an id
/// of at most [`MAX_ID_LEN`](crate::format::MAX_ID_LEN) characters fit well within it).
pub const MAX_MESSAGE_LEN: usize = 128;

/// Default capacity of a publisher's queue, in ids.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;

const TAG: &str = "km1";

/// Why an invalidation channel could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidationError {
    /// The channel name is empty, too long or has a character outside `A-Z a-z 0-9 _ : . -`.
    #[error("invalid channel name: use 1 to {max} ascii letters, digits or `_:.-`")]
    ChannelName {
        /// Longest name the backend accepts.
        max: usize,
    },
    /// The queue capacity is zero.
    #[error("the publish queue capacity must be at least 1")]
    QueueCapacity,
    /// The connection URL could not be parsed.
    #[error("invalid connection url")]
    Url(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
    /// Built outside a tokio runtime (the channel runs background tasks).
    #[error("an invalidation channel must be built inside a tokio runtime")]
    NoRuntime,
}

pub(crate) fn validate_channel(name: &str, max: usize) -> Result<(), InvalidationError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidationError::ChannelName { max })
    }
}

pub(crate) fn new_origin() -> u64 {
    let mut bytes = [0u8; 8];
    // Uniqueness, not secrecy: fall back to the process id and time if the OS has no
    // randomness (a collision only makes a listener skip another publisher's messages).
    if getrandom::fill(&mut bytes).is_err() {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return (u64::from(std::process::id()) << 32)
            ^ since.as_secs().rotate_left(20)
            ^ u64::from(since.subsec_nanos());
    }
    u64::from_le_bytes(bytes)
}

pub(crate) fn encode(origin: u64, id: &KeyId) -> String {
    format!("{TAG} {origin:016x} {id}")
}

/// A message that passed validation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) origin: u64,
    pub(crate) id: KeyId,
}

pub(crate) fn decode(payload: &[u8]) -> Option<Message> {
    if payload.len() > MAX_MESSAGE_LEN {
        return None;
    }
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.split(' ');
    let (tag, origin, id) = (parts.next()?, parts.next()?, parts.next()?);
    if tag != TAG || parts.next().is_some() || origin.len() != 16 {
        return None;
    }
    if !origin.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let origin = u64::from_str_radix(origin, 16).ok()?;
    let id = KeyId::new(id).ok()?;
    Some(Message { origin, id })
}

// ---------------------------------------------------------------------------------------
// The publishing side: a bounded queue in front of a background sender.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Most ids one background send carries.
pub(crate) const MAX_BATCH: usize = 256;

/// Counters of a publisher, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublisherStats {
    /// Ids sent to the server.
    pub sent: u64,
    /// Ids dropped because the queue was full (the other processes fall back to the TTL).
    pub dropped_full: u64,
    /// Ids dropped because the server could not be reached after the retries.
    pub dropped_failed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct PublisherCounters {
    sent: AtomicU64,
    dropped_full: AtomicU64,
    dropped_failed: AtomicU64,
}

impl PublisherCounters {
    pub(crate) fn snapshot(&self) -> PublisherStats {
        PublisherStats {
            sent: self.sent.load(Ordering::Relaxed),
            dropped_full: self.dropped_full.load(Ordering::Relaxed),
            dropped_failed: self.dropped_failed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn failed(&self, n: usize) {
        let before = self.dropped_failed.fetch_add(n as u64, Ordering::Relaxed);
        tracing::warn!(
            ids = n,
            total = before + n as u64,
            "cache invalidations could not be published; other processes fall back to the cache ttl"
        );
    }
}

/// The handle `publish` pushes into.
#[derive(Debug)]
pub(crate) struct Queue {
    tx: tokio::sync::mpsc::Sender<KeyId>,
    counters: Arc<PublisherCounters>,
}

impl Queue {
    pub(crate) fn new(
        capacity: usize,
    ) -> (
        Self,
        tokio::sync::mpsc::Receiver<KeyId>,
        Arc<PublisherCounters>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity);
        let counters = Arc::new(PublisherCounters::default());
        (
            Self {
                tx,
                counters: counters.clone(),
            },
            rx,
            counters,
        )
    }

    pub(crate) fn push(&self, id: &KeyId) {
        if self.tx.try_send(id.clone()).is_err() {
            let before = self.counters.dropped_full.fetch_add(1, Ordering::Relaxed);
            // Warn on the first drop and then at every power of two, not on every one.
            if before.is_power_of_two() || before == 0 {
                tracing::warn!(
                    key_id = %id,
                    total = before + 1,
                    "cache invalidation queue full, dropping; other processes fall back to the cache ttl"
                );
            }
        }
    }

    pub(crate) fn stats(&self) -> PublisherStats {
        self.counters.snapshot()
    }
}

// ---------------------------------------------------------------------------------------
// The listening side: shared state, the handling of one payload, the task handle.

/// A snapshot of a listener's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerStatus {
    /// Subscribed now (messages are being delivered).
    pub connected: bool,
    /// Times the listener has subscribed, the first time included; each one flushed the
    /// whole cache.
    pub subscriptions: u64,
    /// Valid messages that invalidated an id.
    pub invalidated: u64,
    /// Valid messages skipped because the keyring served had published them itself.
    pub own: u64,
    /// Messages ignored as malformed or oversized.
    pub ignored: u64,
}

#[derive(Debug, Default)]
pub(crate) struct ListenerState {
    connected: AtomicBool,
    subscriptions: AtomicU64,
    invalidated: AtomicU64,
    own: AtomicU64,
    ignored: AtomicU64,
}

impl ListenerState {
    fn snapshot(&self) -> ListenerStatus {
        ListenerStatus {
            connected: self.connected.load(Ordering::SeqCst),
            subscriptions: self.subscriptions.load(Ordering::SeqCst),
            invalidated: self.invalidated.load(Ordering::Relaxed),
            own: self.own.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
        }
    }

    /// The subscription is (re)established: flush, since messages may have been missed.
    pub(crate) fn subscribed(&self, target: &dyn InvalidationTarget) {
        target.invalidate_all();
        self.connected.store(true, Ordering::SeqCst);
        let n = self.subscriptions.fetch_add(1, Ordering::SeqCst);
        if n > 0 {
            tracing::info!("cache invalidation listener resubscribed; verified-key cache flushed");
        }
    }

    pub(crate) fn disconnected(&self, error: &dyn std::error::Error) {
        if self.connected.swap(false, Ordering::SeqCst) {
            tracing::warn!(
                error = %error,
                "cache invalidation listener disconnected; the cache ttl bounds staleness until it reconnects"
            );
        }
    }

    /// Handles one payload: validates it, skips the keyring's own, invalidates the id.
    pub(crate) fn handle(
        &self,
        payload: &[u8],
        target: &dyn InvalidationTarget,
        skip: Option<u64>,
    ) {
        match decode(payload) {
            None => {
                self.ignored.fetch_add(1, Ordering::Relaxed);
            }
            Some(m) if Some(m.origin) == skip => {
                self.own.fetch_add(1, Ordering::Relaxed);
            }
            Some(m) => {
                target.invalidate(&m.id);
                self.invalidated.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The running listener task. Dropping the handle leaves the task running (it lives as
/// long as the runtime); [`stop`](Self::stop) ends it.
#[derive(Debug)]
#[must_use = "keep the handle to watch or stop the listener"]
pub struct ListenerHandle {
    task: tokio::task::JoinHandle<()>,
    state: Arc<ListenerState>,
}

impl ListenerHandle {
    pub(crate) fn spawn<F>(state: Arc<ListenerState>, run: F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        Self {
            task: tokio::spawn(run),
            state,
        }
    }

    /// The listener's state now.
    pub fn status(&self) -> ListenerStatus {
        self.state.snapshot()
    }

    /// Stops the listener: its keyring falls back to the cache TTL bound.
    pub fn stop(&self) {
        self.task.abort();
    }
}

/// The origin a listener skips for `target`: only the publisher it was built with, and
/// only if that publisher is the one `target` publishes through.
pub(crate) fn skip_for(target: &dyn InvalidationTarget, origin: u64) -> Option<u64> {
    (target.publishing_origin() == Some(origin)).then_some(origin)
}

/// Reconnection back-off: from 50 ms doubling up to `max`.
pub(crate) struct Backoff {
    next: std::time::Duration,
    max: std::time::Duration,
}

impl Backoff {
    pub(crate) fn new(max: std::time::Duration) -> Self {
        Self {
            next: std::time::Duration::from_millis(50),
            max,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.next = std::time::Duration::from_millis(50).min(self.max);
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let id = KeyId::new("AbC123xyZ789").expect("id");
        let text = encode(0xdead_beef_0000_0001, &id);
        assert_eq!(text, "km1 deadbeef00000001 AbC123xyZ789");
        assert_eq!(
            decode(text.as_bytes()),
            Some(Message {
                origin: 0xdead_beef_0000_0001,
                id
            })
        );
    }

    #[test]
    fn garbage_is_refused() {
        let long = format!("km1 0000000000000000 {}", "a".repeat(MAX_MESSAGE_LEN));
        for bad in [
            "",
            "km1",
            "km1 0000000000000000",
            "km2 0000000000000000 AbC123xyZ789",
            "km1 000000000000000 AbC123xyZ789",
            "km1 +000000000000000 AbC123xyZ789",
            "km1 000000000000000g AbC123xyZ789",
            "km1 0000000000000000 AbC123xyZ78_",
            "km1 0000000000000000 short",
            "km1 0000000000000000 AbC123xyZ789 extra",
            "km1  0000000000000000 AbC123xyZ789",
            long.as_str(),
        ] {
            assert_eq!(decode(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(decode(&[0xff, 0xfe]), None);
    }

    #[test]
    fn channel_names_are_checked() {
        assert!(validate_channel("keymint_invalidate", 63).is_ok());
        assert!(validate_channel("keymint:inv.v1-a", 63).is_ok());
        for bad in ["", "a b", "a\"b", "ключ", &"a".repeat(64)] {
            assert!(validate_channel(bad, 63).is_err(), "{bad:?}");
        }
    }
}
