//! [`PgInvalidation`]: fleet-wide cache invalidation over PostgreSQL `LISTEN`/`NOTIFY`
//! (feature `postgres`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use super::{
    Backoff, CacheInvalidation, DEFAULT_QUEUE_CAPACITY, InvalidationError, InvalidationTarget,
    ListenerHandle, ListenerState, MAX_BATCH, PublisherCounters, PublisherStats, Queue,
};
use crate::format::KeyId;

/// Longest channel name: PostgreSQL truncates identifiers beyond 63 bytes.
const MAX_CHANNEL: usize = 63;

/// Attempts per batch before the publisher drops it.
const PUBLISH_ATTEMPTS: u32 = 3;

/// Configuration of a [`PgInvalidation`] pair; see [`PgInvalidation::builder`].
/// `Debug` leaves out the connection options, which may hold a password.
#[must_use]
pub struct PgInvalidationBuilder {
    options: Result<PgConnectOptions, InvalidationError>,
    pool: Option<PgPool>,
    channel: String,
    queue_capacity: usize,
    timeout: Duration,
    health_interval: Duration,
    max_backoff: Duration,
}

impl fmt::Debug for PgInvalidationBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgInvalidationBuilder")
            .field("channel", &self.channel)
            .field("queue_capacity", &self.queue_capacity)
            .field("timeout", &self.timeout)
            .field("health_interval", &self.health_interval)
            .finish_non_exhaustive()
    }
}

impl PgInvalidationBuilder {
    /// The `NOTIFY` channel (default [`PgInvalidation::DEFAULT_CHANNEL`]): every process of
    /// one fleet must use the same, and fleets sharing a database different ones. 1 to 63
    /// ASCII letters, digits or `_:.-`.
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

    /// Bound on each publish, each (re)connection and each health check (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long the listener waits in silence before checking that its connection still
    /// answers (default 30 s): a connection that died without a reset is found within
    /// this plus the timeout.
    pub fn health_interval(mut self, interval: Duration) -> Self {
        self.health_interval = interval;
        self
    }

    /// Publish through `pool` (for example the store's, `PgStore::pool`) instead of a pool
    /// of the publisher's own. The listener still holds one connection of its own, made
    /// from the pool's connect options: a `LISTEN`ing connection must not go back to a
    /// shared pool.
    pub fn pool(mut self, pool: PgPool) -> Self {
        self.options = Ok((*pool.connect_options()).clone());
        self.pool = Some(pool);
        self
    }

    /// Builds the publisher (give it to
    /// [`KeyringBuilder::invalidation`](crate::KeyringBuilder::invalidation)) and its
    /// listener (give it the built keyring with [`PgInvalidationListener::spawn`]). Makes
    /// no connection: both connect lazily and reconnect by themselves, so this succeeds
    /// while the server is down. Call it inside a tokio runtime.
    ///
    /// # Errors
    /// [`InvalidationError::Url`], [`InvalidationError::ChannelName`],
    /// [`InvalidationError::QueueCapacity`], or [`InvalidationError::NoRuntime`].
    pub fn build(self) -> Result<(PgInvalidation, PgInvalidationListener), InvalidationError> {
        super::validate_channel(&self.channel, MAX_CHANNEL)?;
        if self.queue_capacity == 0 {
            return Err(InvalidationError::QueueCapacity);
        }
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| InvalidationError::NoRuntime)?;
        let options = self.options?;
        let publish_pool = match self.pool {
            Some(pool) => pool,
            None => PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(self.timeout)
                .connect_lazy_with(options.clone()),
        };
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.timeout)
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(options);
        let origin = super::new_origin();
        let channel: Arc<str> = self.channel.into();
        let (queue, rx, counters) = Queue::new(self.queue_capacity);
        runtime.spawn(publish_loop(
            rx,
            publish_pool,
            channel.clone(),
            origin,
            self.timeout,
            counters,
        ));
        Ok((
            PgInvalidation {
                queue,
                channel: channel.clone(),
                origin,
            },
            PgInvalidationListener {
                pool: listen_pool,
                channel,
                origin,
                timeout: self.timeout,
                health_interval: self.health_interval,
                max_backoff: self.max_backoff,
            },
        ))
    }
}

/// The publishing half of cache invalidation over PostgreSQL `NOTIFY` (feature
/// `postgres`), for [`KeyringBuilder::invalidation`](crate::KeyringBuilder::invalidation).
///
/// Built together with its [`PgInvalidationListener`]; the pair serves one keyring (the
/// publisher is not `Clone` and the listener is consumed by
/// [`spawn`](PgInvalidationListener::spawn)), so the listener can skip exactly the
/// messages its own keyring published.
///
/// [`publish`](CacheInvalidation::publish) never blocks and never fails: it puts the id on
/// a bounded queue that a background task drains, sending up to 256 ids per statement
/// (`SELECT pg_notify($channel, p) FROM unnest($payloads) AS p`), each batch bounded by the
/// timeout and tried 3 times. A full queue or a batch that still fails is dropped, counted
/// in [`stats`](Self::stats) and logged: the other processes then see the change within
/// the cache TTL instead (and every listener that lost its connection flushes its cache
/// when it reconnects). Dropping the publisher ends its task once the queue is drained.
///
/// `NOTIFY` is transactional on the server and delivered only to sessions listening at
/// the time: PostgreSQL keeps no backlog for a listener that is away, which is why the
/// listener flushes its whole cache on every (re)subscription.
///
/// ```no_run
/// use keymint::invalidation::postgres::PgInvalidation;
/// use keymint::store::PgStore;
/// use keymint::{KeyFormat, Keyring};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let url = "postgres://app@127.0.0.1/app";
/// let store = PgStore::connect(url).await?;
/// let (publisher, listener) = PgInvalidation::builder(url).channel("api_keys").build()?;
/// let keyring = Keyring::builder(KeyFormat::new("sk_live")?, store)
///     .invalidation(publisher)
///     .build()?;
/// // In every process: revocations made elsewhere drop this process's cached entries.
/// let handle = listener.spawn(keyring.clone());
/// # let _ = handle.status();
/// # Ok(()) }
/// ```
pub struct PgInvalidation {
    queue: Queue,
    channel: Arc<str>,
    origin: u64,
}

impl PgInvalidation {
    /// The channel used unless [`PgInvalidationBuilder::channel`] sets another.
    pub const DEFAULT_CHANNEL: &'static str = "keymint_invalidate";

    /// Default bound on each publish, connection and health check.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// Default silence before the listener checks its connection.
    pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(30);

    /// Configuration for a pair on the server at `url`
    /// (`postgres://user:password@host:port/database`).
    pub fn builder(url: &str) -> PgInvalidationBuilder {
        PgInvalidationBuilder {
            options: PgConnectOptions::from_str(url)
                .map_err(|e| InvalidationError::Url(Arc::new(e))),
            pool: None,
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

impl fmt::Debug for PgInvalidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgInvalidation")
            .field("channel", &self.channel)
            .field("origin", &format_args!("{:016x}", self.origin))
            .finish_non_exhaustive()
    }
}

impl CacheInvalidation for PgInvalidation {
    fn publish(&self, id: &KeyId) {
        self.queue.push(id);
    }

    fn origin(&self) -> Option<u64> {
        Some(self.origin)
    }
}

async fn publish_loop(
    mut rx: tokio::sync::mpsc::Receiver<KeyId>,
    pool: PgPool,
    channel: Arc<str>,
    origin: u64,
    timeout: Duration,
    counters: Arc<PublisherCounters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let payloads: Vec<String> = batch.iter().map(|id| super::encode(origin, id)).collect();
        let mut sent = false;
        for attempt in 0..PUBLISH_ATTEMPTS {
            let call = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                .bind(&*channel)
                .bind(&payloads)
                .execute(&pool);
            match tokio::time::timeout(timeout, call).await {
                Ok(Ok(_)) => {
                    sent = true;
                    break;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, attempt, "pg_notify failed"),
                Err(_) => tracing::debug!(attempt, "pg_notify timed out"),
            }
            tokio::time::sleep(Duration::from_millis(100) * (attempt + 1)).await;
        }
        if sent {
            counters.sent(payloads.len());
        } else {
            counters.failed(payloads.len());
        }
        batch.clear();
    }
}

/// The listening half of a [`PgInvalidation`] pair: start it with [`spawn`](Self::spawn)
/// once the keyring is built.
pub struct PgInvalidationListener {
    pool: PgPool,
    channel: Arc<str>,
    origin: u64,
    timeout: Duration,
    health_interval: Duration,
    max_backoff: Duration,
}

impl fmt::Debug for PgInvalidationListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgInvalidationListener")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl PgInvalidationListener {
    /// Runs the listener on the current tokio runtime for `target` (your keyring, usually
    /// a clone of it): on one connection of its own it `LISTEN`s on the channel, flushes
    /// the whole verified-key cache (at start too: anything cached before it listened may
    /// be stale), then drops each id received from the cache.
    ///
    /// When the connection is lost it reconnects with a back-off (50 ms doubling to 5 s),
    /// `LISTEN`s again and flushes the cache again; in between, the keyring's cache TTL
    /// bounds staleness. Messages the keyring published itself are skipped when `target`
    /// publishes through this listener's own [`PgInvalidation`]; otherwise none are.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn(self, target: impl InvalidationTarget) -> ListenerHandle {
        let state = Arc::new(ListenerState::default());
        ListenerHandle::spawn(state.clone(), self.run(target, state))
    }

    async fn subscribe(&self) -> Result<PgListener, sqlx::Error> {
        let connect = async {
            let mut listener = PgListener::connect_with(&self.pool).await?;
            listener.listen(&self.channel).await?;
            Ok(listener)
        };
        tokio::time::timeout(self.timeout, connect)
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    async fn run(self, target: impl InvalidationTarget, state: Arc<ListenerState>) {
        let skip = super::skip_for(&target, self.origin);
        let mut backoff = Backoff::new(self.max_backoff);
        loop {
            let mut listener = match self.subscribe().await {
                Ok(listener) => listener,
                Err(e) => {
                    state.disconnected(&e);
                    backoff.wait().await;
                    continue;
                }
            };
            backoff.reset();
            state.subscribed(&target);
            loop {
                match tokio::time::timeout(self.health_interval, listener.try_recv()).await {
                    Ok(Ok(Some(n))) => state.handle(n.payload().as_bytes(), &target, skip),
                    // The connection was lost and sqlx re-established it (and `LISTEN`)
                    // before returning: whatever was sent in between is lost.
                    Ok(Ok(None)) => state.subscribed(&target),
                    Ok(Err(e)) => {
                        state.disconnected(&e);
                        break;
                    }
                    Err(_quiet) => {
                        let ping = sqlx::query("SELECT 1").execute(&mut listener);
                        match tokio::time::timeout(self.timeout, ping).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => {
                                state.disconnected(&e);
                                break;
                            }
                            Err(_) => {
                                state.disconnected(&sqlx::Error::PoolTimedOut);
                                break;
                            }
                        }
                    }
                }
            }
            // Dropping the listener returns its connection (after `UNLISTEN *`) to the
            // private pool, or closes it if it is broken; back off before reconnecting.
            drop(listener);
            backoff.wait().await;
        }
    }
}
