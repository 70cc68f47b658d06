//! Rate limits, quotas and credits.
//!
//! * [`Quota`]: a GCRA rate (`n` per second/minute/hour/rolling day, with a burst);
//!   [`CalendarQuota`]: a count per UTC day or calendar month. Both are a [`Limit`].
//! * [`Policy`]: a name and up to four limits checked together; a denied request is
//!   charged to none of them.
//! * [`RateLimiter`]: the async backend trait, answering with a [`Decision`].
//! * [`MemoryLimiter`]: lock-free in-process GCRA on one `AtomicU64` per (key, limit).
//! * `RedisLimiter` (feature `redis`): one Lua script per decision, on the server's clock,
//!   for a fleet of processes sharing limits, on one server or a Redis Cluster (each key's
//!   Redis keys share a hash tag derived from the key, so load spreads over the nodes).
//! * [`Credits`]: remaining uses with an optional refill, as pure arithmetic.
//! * [`RateLimitHeaders`]: `RateLimit-Policy`, `RateLimit` and `Retry-After` values.
//!
//! ```
//! use std::num::NonZeroU32;
//! use chrono::TimeDelta;
//! use keymint::ManualClock;
//! use keymint::ratelimit::{CalendarQuota, MemoryLimiter, Policy, Quota, RateLimitHeaders};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let n = |v| NonZeroU32::new(v).unwrap();
//! let policy = Policy::new(
//!     "default",
//!     [Quota::per_second(n(10)).into(), CalendarQuota::per_utc_day(n(10_000)).into()],
//! )?;
//! let clock = ManualClock::default();
//! let limiter = MemoryLimiter::with_clock(clock.clone());
//!
//! let admitted = (0..20).filter(|_| limiter.check_now("key", &policy, 1).unwrap().allowed).count();
//! assert_eq!(admitted, 10); // the burst; the 10 denials were charged nowhere
//!
//! let denied = limiter.check_now("key", &policy, 1)?;
//! assert_eq!(RateLimitHeaders::new(&policy, &denied).retry_after.as_deref(), Some("1"));
//!
//! clock.advance(TimeDelta::milliseconds(100)); // one request earned back
//! assert!(limiter.check_now("key", &policy, 1)?.allowed);
//! # Ok(())
//! # }
//! ```

mod algo;
mod credits;
mod decision;
mod denial;
mod error;
pub mod headers;
mod key_limit;
mod limiter;
mod memory;
mod policy;
mod quota;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
mod redis;

pub use credits::{Credits, Refill};
pub use decision::Decision;
#[cfg(feature = "tower")]
pub(crate) use decision::ceil_secs;
pub use denial::RateLimitDenial;
pub use error::{PolicyError, RateLimitError};
pub use headers::RateLimitHeaders;
pub use key_limit::KeyLimit;
pub use limiter::RateLimiter;
pub use memory::MemoryLimiter;
pub use policy::Policy;
pub use quota::{CalendarQuota, CalendarWindow, Limit, Quota};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use redis::{DEFAULT_NAMESPACE, FailurePolicy, RedisLimiter, RedisLimiterBuilder};
