//! [`RedisInvalidation`]: fleet-wide cache invalidation over Redis pub/sub (feature
//! `redis`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{
    Backoff, CacheInvalidation, DEFAULT_QUEUE_CAPACITY, InvalidationError, InvalidationTarget,
    ListenerHandle, ListenerState, MAX_BATCH, PublisherCounters, PublisherStats, Queue,
};
use crate::format::KeyId;

/// Longest channel name accepted.
const MAX_CHANNEL: usize = 128;

/// Attempts per batch before the publisher drops it.
const PUBLISH_ATTEMPTS: u32 = 3;

/// Configuration of a [`RedisInvalidation`] pair; see [`RedisInvalidation::builder`].
/// `Debug` leaves out the URL, which may carry a password.
#[must_use]
pub struct RedisInvalidationBuilder {
    url: String,
    channel: String,
    queue_capacity: usize,
    timeout: Duration,
    health_interval: Duration,
    max_backoff: Duration,
}

impl fmt::Debug for RedisInvalidationBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInvalidationBuilder")
            .field("url", &"[REDACTED]")
            .field("channel", &self.channel)
            .field("queue_capacity", &self.queue_capacity)
            .field("timeout", &self.timeout)
            .field("health_interval", &self.health_interval)
            .finish_non_exhaustive()
    }
}

impl RedisInvalidationBuilder {
    /// The pub/sub channel (default [`RedisInvalidation::DEFAULT_CHANNEL`]): every process
    /// of one fleet must use the same, and fleets sharing a server different ones. 1 to
    /// 128 ASCII letters, digits or `_:.-`.
    pub fn channel(mut self, channel: &str) -> Self {
        self.channel = channel.to_owned();
        self
    }

    /// How many ids may wait to be published (default [`DEFAULT_QUEUE_CAPACITY`]); more
    /// are dropped and counted (the other processes then fall back to the cache TTL).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Bound on each publish, each (re)connection and each health check (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long the listener waits in silence before sending a `PING` to check that its
    /// connection still answers (default 30 s).
    pub fn health_interval(mut self, interval: Duration) -> Self {
        self.health_interval = interval;
        self
    }

    /// Builds the publisher (give it to
    /// [`KeyringBuilder::invalidation`](crate::KeyringBuilder::invalidation)) and its
    /// listener (give it the built keyring with [`RedisInvalidationListener::spawn`]).
    /// Makes no connection: both connect lazily and reconnect by themselves, so this
    /// succeeds while the server is down. Call it inside a tokio runtime.
    ///
    /// # Errors
    /// [`InvalidationError::Url`], [`InvalidationError::ChannelName`],
    /// [`InvalidationError::QueueCapacity`], or [`InvalidationError::NoRuntime`].
    pub fn build(
        self,
    ) -> Result<(RedisInvalidation, RedisInvalidationListener), InvalidationError> {
        super::validate_channel(&self.channel, MAX_CHANNEL)?;
        if self.queue_capacity == 0 {
            return Err(InvalidationError::QueueCapacity);
        }
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| InvalidationError::NoRuntime)?;
        let client = redis::Client::open(self.url.as_str())
            .map_err(|e| InvalidationError::Url(Arc::new(e)))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(self.timeout);
        let conn = {
            let _entered = runtime.enter();
            ConnectionManager::new_lazy_with_config(client.clone(), config)
                .map_err(|e| InvalidationError::Url(Arc::new(e)))?
        };
        let origin = super::new_origin();
        let channel: Arc<str> = self.channel.into();
        let (queue, rx, counters) = Queue::new(self.queue_capacity);
        runtime.spawn(publish_loop(
            rx,
            conn,
            channel.clone(),
            origin,
            self.timeout,
            counters,
        ));
        Ok((
            RedisInvalidation {
                queue,
                channel: channel.clone(),
                origin,
            },
            RedisInvalidationListener {
                client,
                channel,
                origin,
                timeout: self.timeout,
                health_interval: self.health_interval,
                max_backoff: self.max_backoff,
            },
        ))
    }
}

/// The publishing half of cache invalidation over Redis pub/sub (feature `redis`), for
/// [`KeyringBuilder::invalidation`](crate::KeyringBuilder::invalidation).
///
/// Built together with its [`RedisInvalidationListener`]; the pair serves one keyring
/// (the publisher is not `Clone` and the listener is consumed by
/// [`spawn`](RedisInvalidationListener::spawn)), so the listener can skip exactly the
/// messages its own keyring published.
///
/// [`publish`](CacheInvalidation::publish) never blocks and never fails: it puts the id on
/// a bounded queue that a background task drains, sending up to 256 ids per pipelined
/// round trip of `PUBLISH`es, each batch bounded by the timeout and tried 3 times. A full
/// queue or a batch that still fails is dropped, counted in [`stats`](Self::stats) and
/// logged: the other processes then see the change within the cache TTL instead (and
/// every listener that lost its connection flushes its cache when it reconnects).
/// Dropping the publisher ends its task once the queue is drained.
///
/// Redis pub/sub is fire-and-forget: a subscriber that is away misses what is published
/// meanwhile, which is why the listener flushes its whole cache on every (re)subscription.
/// On Redis Cluster, `PUBLISH` reaches the subscribers of every node.
///
/// ```no_run
/// use keymint::invalidation::redis::RedisInvalidation;
/// use keymint::{KeyFormat, Keyring, MemoryStore};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (publisher, listener) = RedisInvalidation::builder("redis://127.0.0.1/").build()?;
/// let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new())
///     .invalidation(publisher)
///     .build()?;
/// let handle = listener.spawn(keyring.clone());
/// # let _ = handle.status();
/// # Ok(()) }
/// ```
pub struct RedisInvalidation {
    queue: Queue,
    channel: Arc<str>,
    origin: u64,
}

impl RedisInvalidation {
    /// The channel used unless [`RedisInvalidationBuilder::channel`] sets another.
    pub const DEFAULT_CHANNEL: &'static str = "keymint:invalidate";

    /// Default bound on each publish, connection and health check.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Default silence before the listener pings its connection.
    pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);

    /// Configuration for a pair on the server at `url` (`redis://host:port/db`).
    pub fn builder(url: &str) -> RedisInvalidationBuilder {
        RedisInvalidationBuilder {
            url: url.to_owned(),
            channel: Self::DEFAULT_CHANNEL.to_owned(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            timeout: Self::DEFAULT_TIMEOUT,
            health_interval: Self::DEFAULT_HEALTH_INTERVAL,
            max_backoff: Duration::from_secs(5),
        }
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// What has been sent and dropped so far.
    pub fn stats(&self) -> PublisherStats {
        self.queue.stats()
    }
}

impl fmt::Debug for RedisInvalidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInvalidation")
            .field("channel", &self.channel)
            .field("origin", &format_args!("{:016x}", self.origin))
            .finish_non_exhaustive()
    }
}

impl CacheInvalidation for RedisInvalidation {
    fn publish(&self, id: &KeyId) {
        self.queue.push(id);
    }

    fn origin(&self) -> Option<u64> {
        Some(self.origin)
    }
}

async fn publish_loop(
    mut rx: tokio::sync::mpsc::Receiver<KeyId>,
    mut conn: ConnectionManager,
    channel: Arc<str>,
    origin: u64,
    timeout: Duration,
    counters: Arc<PublisherCounters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for id in &batch {
            pipe.cmd("PUBLISH")
                .arg(&*channel)
                .arg(super::encode(origin, id))
                .ignore();
        }
        let mut sent = false;
        for attempt in 0..PUBLISH_ATTEMPTS {
            match tokio::time::timeout(timeout, pipe.query_async::<()>(&mut conn)).await {
                Ok(Ok(())) => {
                    sent = true;
                    break;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, attempt, "redis publish failed"),
                Err(_) => tracing::debug!(attempt, "redis publish timed out"),
            }
            tokio::time::sleep(Duration::from_millis(100) * (attempt + 1)).await;
        }
        if sent {
            counters.sent(batch.len());
        } else {
            counters.failed(batch.len());
        }
        batch.clear();
    }
}

/// The listening half of a [`RedisInvalidation`] pair: start it with
/// [`spawn`](Self::spawn) once the keyring is built.
pub struct RedisInvalidationListener {
    client: redis::Client,
    channel: Arc<str>,
    origin: u64,
    timeout: Duration,
    health_interval: Duration,
    max_backoff: Duration,
}

impl fmt::Debug for RedisInvalidationListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInvalidationListener")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// Why the listener dropped its connection.
#[derive(Debug, thiserror::Error)]
enum Lost {
    #[error("redis pubsub connection failed")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within the timeout")]
    Timeout,
    #[error("redis pubsub connection closed")]
    Closed,
}

impl RedisInvalidationListener {
    /// Runs the listener on the current tokio runtime for `target` (your keyring, usually
    /// a clone of it): on a pub/sub connection of its own it `SUBSCRIBE`s to the channel,
    /// flushes the whole verified-key cache (at start too: anything cached before it
    /// subscribed may be stale), then drops each id received from the cache.
    ///
    /// When the connection is lost (the message stream ends, or a `PING` after a quiet
    /// health interval goes unanswered) it reconnects with a back-off (50 ms doubling to
    /// 5 s), subscribes again and flushes the cache again; in between, the keyring's cache
    /// TTL bounds staleness. Messages the keyring published itself are skipped when
    /// `target` publishes through this listener's own [`RedisInvalidation`]; otherwise
    /// none are.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn(self, target: impl InvalidationTarget) -> ListenerHandle {
        let state = Arc::new(ListenerState::default());
        ListenerHandle::spawn(state.clone(), self.run(target, state))
    }

    async fn subscribe(&self) -> Result<(redis::aio::PubSubSink, redis::aio::PubSubStream), Lost> {
        let connect = async {
            let (mut sink, stream) = self.client.get_async_pubsub().await?.split();
            sink.subscribe(&*self.channel).await?;
            Ok::<_, Lost>((sink, stream))
        };
        tokio::time::timeout(self.timeout, connect)
            .await
            .unwrap_or(Err(Lost::Timeout))
    }

    async fn run(self, target: impl InvalidationTarget, state: Arc<ListenerState>) {
        let skip = super::skip_for(&target, self.origin);
        let mut backoff = Backoff::new(self.max_backoff);
        loop {
            let (mut sink, mut stream) = match self.subscribe().await {
                Ok(pair) => pair,
                Err(e) => {
                    state.disconnected(&e);
                    backoff.wait().await;
                    continue;
                }
            };
            backoff.reset();
            state.subscribed(&target);
            let lost = loop {
                match tokio::time::timeout(self.health_interval, stream.next()).await {
                    Ok(Some(msg)) => state.handle(msg.get_payload_bytes(), &target, skip),
                    Ok(None) => break Lost::Closed,
                    Err(_quiet) => {
                        match tokio::time::timeout(self.timeout, sink.ping::<redis::Value>()).await
                        {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => break Lost::Redis(e),
                            Err(_) => break Lost::Timeout,
                        }
                    }
                }
            };
            state.disconnected(&lost);
            drop((sink, stream));
            backoff.wait().await;
        }
    }
}
