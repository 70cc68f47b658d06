//! Fleet-wide rate limits through Redis.

use std::fmt;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

use super::algo;
use super::decision::Decision;
use super::error::RateLimitError;
use super::limiter::RateLimiter;
use super::policy::{Policy, descriptor};
use super::quota::Limit;

/// The policy script: every limit read, decided and (only if all admit) written in one
/// atomic call, on the server's `TIME`.
const SCRIPT: &str = include_str!("redis.lua");

/// Default key prefix.
pub const DEFAULT_NAMESPACE: &str = "keymint:rl:";

/// What a [`RedisLimiter`] answers when Redis cannot be reached or fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// Admit the request (a `Decision` with `allowed`, the first limit's `limit` and
    /// `remaining` equal to it) and log a warning: availability over enforcement.
    Open,
    /// Return [`RateLimitError::Unavailable`] (the keyring answers 503): enforcement over
    /// availability. The default.
    #[default]
    Closed,
}

/// Configuration for a [`RedisLimiter`]. `Debug` leaves out the URL, which may carry a
/// password.
#[derive(Clone)]
pub struct RedisLimiterBuilder {
    url: String,
    namespace: String,
    failure: FailurePolicy,
    connect_timeout: Duration,
    response_timeout: Duration,
    retries: usize,
}

impl std::fmt::Debug for RedisLimiterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiterBuilder")
            .field("url", &"[REDACTED]")
            .field("namespace", &self.namespace)
            .field("failure", &self.failure)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

impl RedisLimiterBuilder {
    /// Prefix of every key written (default `keymint:rl:`).
    #[must_use]
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = namespace.to_owned();
        self
    }

    /// Behaviour when Redis fails (default [`FailurePolicy::Closed`]).
    #[must_use]
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure = policy;
        self
    }

    /// Time allowed to (re)connect (default 1 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed per decision (default 1 s): the longest a request waits on Redis.
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Reconnection attempts after a broken connection (default 2).
    #[must_use]
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// Builds the limiter. The connection is made lazily by the first check and remade
    /// automatically after failures (redis `ConnectionManager`), so this succeeds while
    /// Redis is down. Call it inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::Unavailable`] for an invalid URL or outside a tokio runtime.
    pub fn build(self) -> Result<RedisLimiter, RateLimitError> {
        let client = redis::Client::open(self.url.as_str()).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(self.response_timeout))
            .set_number_of_retries(self.retries)
            .set_max_delay(self.connect_timeout);
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(RedisLimiter {
            conn,
            script: Arc::new(redis::Script::new(SCRIPT)),
            namespace: self.namespace.into(),
            failure: self.failure,
        })
    }
}

/// A [`RateLimiter`] whose state lives in Redis, shared by every process using the same
/// server and namespace.
///
/// * One Lua script decides the whole policy atomically, on the server's clock (`TIME`),
///   so app servers' clock skew does not matter. It is sent as `EVALSHA`; on `NOSCRIPT`
///   (after a restart or `SCRIPT FLUSH`) it is loaded and retried (redis `Script`).
/// * Each (policy limit, key) has its own Redis key, named `namespace` + 32 hex digits of
///   SHA-256 over the length-prefixed policy name, limit parameters and key: hostile keys
///   cannot collide or escape the namespace, and the key text is not stored. Keys carry a
///   `PX` expiry (the GCRA refill time; a calendar window's end plus 1 s), so idle keys
///   vanish by themselves.
/// * Time resolution is one microsecond. Single Redis instance (the script's keys are not
///   hash-tagged for Redis Cluster).
#[derive(Clone)]
pub struct RedisLimiter {
    conn: ConnectionManager,
    script: Arc<redis::Script>,
    namespace: Arc<str>,
    failure: FailurePolicy,
}

impl RedisLimiter {
    /// Configuration for a limiter on the server at `url` (`redis://host:port/db`).
    pub fn builder(url: &str) -> RedisLimiterBuilder {
        RedisLimiterBuilder {
            url: url.to_owned(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            failure: FailurePolicy::default(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            retries: 2,
        }
    }

    /// SHA-1 of the policy script, as sent with `EVALSHA` (for `SCRIPT EXISTS` or
    /// `redis-benchmark`).
    pub fn script_hash(&self) -> &str {
        self.script.get_hash()
    }

    /// The configured failure policy.
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure
    }

    /// The Redis key holding limit `index` of `policy` for `key` (`None` if the policy has
    /// no such limit): for inspection and tests.
    pub fn redis_key(&self, policy: &Policy, index: usize, key: &str) -> Option<String> {
        let limit = policy.limits().get(index)?;
        Some(self.key_name(policy.name(), index, limit, key))
    }

    fn key_name(&self, policy: &str, index: usize, limit: &Limit, key: &str) -> String {
        let mut h = Sha256::new();
        h.update(descriptor(policy, index, limit));
        h.update((key.len() as u64).to_be_bytes());
        h.update(key.as_bytes());
        let digest = h.finalize();
        let mut out = String::with_capacity(self.namespace.len() + 32);
        out.push_str(&self.namespace);
        for b in &digest[..16] {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    async fn decide(
        &self,
        key: &str,
        policy: &Policy,
        cost: u32,
    ) -> Result<Decision, RateLimitError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(cost);
        for (i, limit) in policy.limits().iter().enumerate() {
            invocation.key(self.key_name(policy.name(), i, limit, key));
            match limit {
                Limit::Rate(q) => {
                    invocation.arg(0).arg(q.interval_ns()).arg(q.burst().get());
                }
                Limit::Calendar(c) => {
                    let kind = match c.window() {
                        super::quota::CalendarWindow::UtcDay => 1,
                        super::quota::CalendarWindow::UtcMonth => 2,
                    };
                    invocation.arg(kind).arg(c.limit().get()).arg(0);
                }
            }
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let [allowed, limit, remaining, reset_us, retry_us, index] = reply[..] else {
            return Err(unavailable(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "unexpected rate-limit script reply",
            ))));
        };
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        let decision = if allowed == 1 {
            Decision::allow(pos(limit), pos(remaining), us(reset_us))
        } else {
            Decision::deny(
                pos(limit),
                pos(remaining),
                us(reset_us),
                (retry_us >= 0).then(|| us(retry_us)),
            )
        };
        Ok(decision.with_limit_index(usize::try_from(index).unwrap_or(0)))
    }
}

impl RateLimiter for RedisLimiter {
    async fn check(
        &self,
        key: &str,
        policy: &Policy,
        cost: u32,
    ) -> Result<Decision, RateLimitError> {
        for (i, limit) in policy.limits().iter().enumerate() {
            algo::check_cost(limit, i, cost)?;
        }
        match self.decide(key, policy, cost).await {
            Ok(d) => Ok(d),
            Err(e @ RateLimitError::Unavailable(_)) => match self.failure {
                FailurePolicy::Closed => Err(e),
                FailurePolicy::Open => {
                    tracing::warn!(error = %e, policy = policy.name(), "rate-limit backend unavailable, failing open");
                    let limit = u64::from(policy.limits()[0].max());
                    Ok(Decision::allow(limit, limit, Duration::ZERO))
                }
            },
            Err(e) => Err(e),
        }
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("namespace", &self.namespace)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

fn pos(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn unavailable(e: redis::RedisError) -> RateLimitError {
    RateLimitError::Unavailable(Arc::new(e))
}
