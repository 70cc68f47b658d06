//! Fleet-wide rate limits through Redis, on one server or a Redis Cluster.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

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

/// Where a limiter's state lives.
#[derive(Clone)]
enum Target {
    Node(String),
    Cluster(Vec<String>),
}

/// Configuration for a [`RedisLimiter`]. `Debug` leaves out the URLs, which may carry a
/// password.
#[derive(Clone)]
pub struct RedisLimiterBuilder {
    target: Target,
    namespace: String,
    failure: FailurePolicy,
    connect_timeout: Duration,
    response_timeout: Duration,
    retries: usize,
}

impl std::fmt::Debug for RedisLimiterBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (mode, urls) = match &self.target {
            Target::Node(_) => ("node", 1),
            Target::Cluster(nodes) => ("cluster", nodes.len()),
        };
        f.debug_struct("RedisLimiterBuilder")
            .field("mode", &mode)
            .field("urls", &format_args!("[REDACTED; {urls}]"))
            .field("namespace", &self.namespace)
            .field("failure", &self.failure)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

impl RedisLimiterBuilder {
    /// Prefix of every key written (default `keymint:rl:`). It must not contain `{` or
    /// `}`: the hash tag that follows it must be the first braces in the key name.
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

    /// Reconnection attempts after a broken connection (default 2); on a cluster, retries
    /// of a request after a connection error or a `MOVED`/`ASK` redirection.
    #[must_use]
    pub fn reconnect_retries(mut self, retries: usize) -> Self {
        self.retries = retries;
        self
    }

    /// Builds the limiter. Connections are made lazily by the first check, so this
    /// succeeds while Redis is down. On a single node they are remade automatically after
    /// failures (redis `ConnectionManager`); on a cluster the first check that finds the
    /// cluster reachable connects to it (a failed attempt is retried by the next check),
    /// and from then on redis' cluster connection follows slot moves and reconnects by
    /// itself. Call it inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// [`RateLimitError::Unavailable`] for an invalid URL, an empty node list, a namespace
    /// with `{` or `}`, or outside a tokio runtime.
    pub fn build(self) -> Result<RedisLimiter, RateLimitError> {
        if self.namespace.contains(['{', '}']) {
            return Err(config_error("the namespace must not contain '{' or '}'"));
        }
        let conn = match &self.target {
            Target::Node(url) => {
                let client = redis::Client::open(url.as_str()).map_err(unavailable)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.response_timeout))
                    .set_number_of_retries(self.retries)
                    .set_max_delay(self.connect_timeout);
                Connection::Node(
                    ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?,
                )
            }
            Target::Cluster(nodes) => {
                if nodes.is_empty() {
                    return Err(config_error("a cluster needs at least one node URL"));
                }
                let client = ClusterClient::builder(nodes.iter().map(String::as_str))
                    .connection_timeout(self.connect_timeout)
                    .response_timeout(self.response_timeout)
                    .retries(u32::try_from(self.retries).unwrap_or(u32::MAX))
                    .build()
                    .map_err(unavailable)?;
                Connection::Cluster(Arc::new(LazyCluster {
                    client,
                    conn: OnceCell::new(),
                }))
            }
        };
        Ok(RedisLimiter {
            conn,
            script: Arc::new(redis::Script::new(SCRIPT)),
            namespace: self.namespace.into(),
            failure: self.failure,
        })
    }
}

/// The connection a limiter sends its script over.
#[derive(Clone)]
enum Connection {
    Node(ConnectionManager),
    Cluster(Arc<LazyCluster>),
}

/// A cluster client and the connection it makes on first use.
struct LazyCluster {
    client: ClusterClient,
    conn: OnceCell<ClusterConnection>,
}

impl LazyCluster {
    async fn connection(&self) -> redis::RedisResult<ClusterConnection> {
        self.conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

/// A [`RateLimiter`] whose state lives in Redis, shared by every process using the same
/// server and namespace.
///
/// * One Lua script decides the whole policy atomically, on the server's clock (`TIME`),
///   so app servers' clock skew does not matter. It is sent as `EVALSHA`; on `NOSCRIPT`
///   (after a restart or `SCRIPT FLUSH`) it is loaded and retried (redis `Script`).
/// * Each (policy limit, key) has its own Redis key, named
///   `namespace` + `{tag}` + 32 hex digits. The 32 digits are SHA-256 over the
///   length-prefixed policy name, the limit's parameters and a digest of the key: hostile
///   keys cannot collide or escape the namespace, and the key text is not stored. Keys
///   carry a `PX` expiry (the GCRA refill time; a calendar window's end plus 1 s), so idle
///   keys vanish by themselves.
/// * The `{tag}` is a Redis Cluster hash tag: 8 hex digits of SHA-256 over the
///   length-prefixed key alone (the keyring passes the key's lineage id, so a rotated key
///   keeps its tag with its budgets). Every Redis key of one decision therefore lives in
///   one hash slot, as a cluster requires of one script's keys, while different keys
///   spread over all slots and so over all nodes. The tag does not depend on the policy:
///   a tag per policy would put all of a policy's traffic on one node. A single server
///   uses the same names, so its state can move to a cluster as it is.
/// * Time resolution is one microsecond. On a cluster, a node's own clock decides the
///   keys in its slots.
///
/// ```no_run
/// # async fn demo() -> Result<(), keymint::ratelimit::RateLimitError> {
/// use keymint::ratelimit::RedisLimiter;
///
/// // One server:
/// let single = RedisLimiter::builder("redis://127.0.0.1:6379/").build()?;
/// // A Redis Cluster: any of its primaries (more than one, in case one is down).
/// let cluster = RedisLimiter::cluster_builder([
///     "redis://10.0.0.1:6379/",
///     "redis://10.0.0.2:6379/",
///     "redis://10.0.0.3:6379/",
/// ])
/// .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisLimiter {
    conn: Connection,
    script: Arc<redis::Script>,
    namespace: Arc<str>,
    failure: FailurePolicy,
}

impl RedisLimiter {
    /// Configuration for a limiter on the server at `url` (`redis://host:port/db`).
    pub fn builder(url: &str) -> RedisLimiterBuilder {
        Self::builder_for(Target::Node(url.to_owned()))
    }

    /// Configuration for a limiter on the Redis Cluster that `nodes` belong to
    /// (`redis://host:port/` each; one is enough to discover the others, more keep the
    /// first connection possible while one is down). Every node must be reachable at the
    /// address the cluster announces for it.
    pub fn cluster_builder<I, S>(nodes: I) -> RedisLimiterBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::builder_for(Target::Cluster(
            nodes.into_iter().map(|u| u.as_ref().to_owned()).collect(),
        ))
    }

    fn builder_for(target: Target) -> RedisLimiterBuilder {
        RedisLimiterBuilder {
            target,
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
        let digest = key_digest(key);
        Some(self.key_name(policy.name(), index, limit, &digest))
    }

    /// Whether this limiter talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.conn, Connection::Cluster(_))
    }

    /// `namespace` `{tag}` then 32 hex digits of SHA-256(descriptor, key digest).
    fn key_name(&self, policy: &str, index: usize, limit: &Limit, digest: &[u8; 32]) -> String {
        let mut out = String::with_capacity(self.namespace.len() + KEY_SUFFIX_LEN);
        self.write_key_name(&mut out, policy, index, limit, digest);
        out
    }

    fn write_key_name(
        &self,
        out: &mut String,
        policy: &str,
        index: usize,
        limit: &Limit,
        digest: &[u8; 32],
    ) {
        let mut h = Sha256::new();
        h.update(descriptor(policy, index, limit));
        h.update(digest);
        let name = h.finalize();
        out.clear();
        out.push_str(&self.namespace);
        out.push('{');
        push_hex(out, &digest[..TAG_BYTES]);
        out.push('}');
        push_hex(out, &name[..16]);
    }

    /// The `EVALSHA` call for one decision, written straight into one command buffer:
    /// `EVALSHA sha n key.. cost (kind a b)..`.
    fn command(&self, key: &str, policy: &Policy, cost: u32) -> redis::Cmd {
        let limits = policy.limits();
        let name_len = self.namespace.len() + KEY_SUFFIX_LEN;
        let mut cmd =
            redis::Cmd::with_capacity(4 + 4 * limits.len(), 64 + limits.len() * (name_len + 32));
        cmd.arg("EVALSHA")
            .arg(self.script.get_hash())
            .arg(limits.len());
        let digest = key_digest(key);
        let mut name = String::with_capacity(name_len);
        for (i, limit) in limits.iter().enumerate() {
            self.write_key_name(&mut name, policy.name(), i, limit, &digest);
            cmd.arg(name.as_str());
        }
        cmd.arg(cost);
        for limit in limits {
            match limit {
                Limit::Rate(q) => {
                    cmd.arg(0).arg(q.interval_ns()).arg(q.burst().get());
                }
                Limit::Calendar(c) => {
                    let kind = match c.window() {
                        super::quota::CalendarWindow::UtcDay => 1,
                        super::quota::CalendarWindow::UtcMonth => 2,
                    };
                    cmd.arg(kind).arg(c.limit().get()).arg(0);
                }
            }
        }
        cmd
    }

    /// Sends `cmd`; on `NOSCRIPT` (a restarted or flushed server) loads the script and
    /// sends it once more. On a cluster `EVALSHA` goes to the node owning the first key's
    /// slot and `SCRIPT LOAD` to every primary.
    async fn eval<C: redis::aio::ConnectionLike>(
        &self,
        conn: &mut C,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<Reply> {
        match cmd.query_async(conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.script.load_async(conn).await?;
                cmd.query_async(conn).await
            }
            other => other,
        }
    }

    async fn decide(
        &self,
        key: &str,
        policy: &Policy,
        cost: u32,
    ) -> Result<Decision, RateLimitError> {
        let cmd = self.command(key, policy, cost);
        let reply = match &self.conn {
            Connection::Node(conn) => self.eval(&mut conn.clone(), &cmd).await,
            Connection::Cluster(lazy) => match lazy.connection().await {
                Ok(mut conn) => self.eval(&mut conn, &cmd).await,
                Err(e) => Err(e),
            },
        }
        .map_err(unavailable)?;
        let (allowed, limit, remaining, reset_us, retry_us, index) = reply;
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
            .field("cluster", &self.is_cluster())
            .field("namespace", &self.namespace)
            .field("failure", &self.failure)
            .finish_non_exhaustive()
    }
}

/// The script's reply: allowed, limit, remaining, reset (µs), retry (µs, -1 = none), index.
type Reply = (i64, i64, i64, i64, i64, i64);

/// Bytes of the key digest written as the hash tag (8 hex digits: far more values than the
/// cluster's 16 384 slots, so keys spread evenly over them).
const TAG_BYTES: usize = 4;
/// What follows the namespace in a key name: `{` 8 hex `}` 32 hex.
const KEY_SUFFIX_LEN: usize = 2 + 2 * TAG_BYTES + 32;

/// SHA-256 over the length-prefixed key: the hash tag's source and the key's part of every
/// name, computed once per decision however long the key.
fn key_digest(key: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((key.len() as u64).to_be_bytes());
    h.update(key.as_bytes());
    h.finalize().into()
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

fn config_error(what: &'static str) -> RateLimitError {
    unavailable(redis::RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        what,
    )))
}

fn pos(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn unavailable(e: redis::RedisError) -> RateLimitError {
    RateLimitError::Unavailable(Arc::new(e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashSet;
    use std::num::NonZeroU32;

    use redis::cluster_routing::Slot;

    use super::*;
    use crate::ratelimit::{CalendarQuota, Quota};

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).unwrap()
    }

    fn limiter() -> RedisLimiter {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = rt.enter();
        RedisLimiter::builder("redis://127.0.0.1:1/")
            .build()
            .unwrap()
    }

    fn tag(name: &str) -> &str {
        let open = name.find('{').unwrap();
        let close = name.find('}').unwrap();
        &name[open + 1..close]
    }

    fn policies() -> [Policy; 2] {
        [
            Policy::new(
                "a",
                [
                    Quota::per_second(n(10)).into(),
                    CalendarQuota::per_utc_day(n(1000)).into(),
                    CalendarQuota::per_utc_month(n(9000)).into(),
                ],
            )
            .unwrap(),
            Policy::single("b", Quota::per_hour(n(5))).unwrap(),
        ]
    }

    #[test]
    fn one_keys_names_share_a_tag_and_slot_whatever_the_policy() {
        let l = limiter();
        for key in ["lineage_1", "", "{x}", "}{", &"k".repeat(5000)] {
            let mut names = Vec::new();
            for p in policies() {
                for i in 0..p.limits().len() {
                    names.push(l.redis_key(&p, i, key).unwrap());
                }
            }
            let first = tag(&names[0]).to_owned();
            assert_eq!(first.len(), 8);
            assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
            let slot = Slot::for_key(&names[0]);
            for name in &names {
                assert!(name.starts_with("keymint:rl:{"), "{name}");
                assert_eq!(name.len(), DEFAULT_NAMESPACE.len() + KEY_SUFFIX_LEN);
                assert_eq!(tag(name), first, "{names:?}");
                assert_eq!(Slot::for_key(name), slot);
            }
            let distinct: HashSet<_> = names.iter().collect();
            assert_eq!(distinct.len(), names.len(), "each limit has its own state");
        }
    }

    #[test]
    fn different_keys_spread_over_slots() {
        let l = limiter();
        let p = &policies()[1];
        let slots: HashSet<_> = (0..1000)
            .map(|i| Slot::for_key(l.redis_key(p, 0, &format!("lineage_{i}")).unwrap()))
            .collect();
        // 1000 keys thrown into 16 384 slots: about 970 distinct ones expected.
        assert!(slots.len() > 900, "{} distinct slots", slots.len());
    }

    #[test]
    fn namespaces_with_braces_and_empty_clusters_are_refused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = rt.enter();
        for ns in ["a{b}:", "{", "}"] {
            let err = RedisLimiter::builder("redis://127.0.0.1:1/")
                .namespace(ns)
                .build()
                .unwrap_err();
            assert!(matches!(err, RateLimitError::Unavailable(_)));
        }
        let none: [&str; 0] = [];
        assert!(RedisLimiter::cluster_builder(none).build().is_err());
        let cluster = RedisLimiter::cluster_builder(["redis://127.0.0.1:1/"])
            .build()
            .unwrap();
        assert!(cluster.is_cluster() && !limiter().is_cluster());
    }

    #[test]
    fn debug_never_shows_urls() {
        let secret = "redis://user:hunter2@127.0.0.1:1/";
        let b = RedisLimiter::cluster_builder([secret, secret]);
        let text = format!("{b:?}");
        assert!(
            !text.contains("hunter2") && text.contains("[REDACTED; 2]"),
            "{text}"
        );
        let text = format!("{:?}", RedisLimiter::builder(secret));
        assert!(!text.contains("hunter2"), "{text}");
    }
}
