//! The one source of time: every expiry, grace period, cache TTL and rate limit reads it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

/// Wall-clock time for the crate. Implement it to take time from elsewhere; use
/// [`ManualClock`] in tests so that time-dependent behaviour is exact.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told. Clones share the same time.
///
/// ```
/// use chrono::TimeDelta;
/// use keymint::{Clock, ManualClock};
///
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse()?);
/// let shared = clock.clone();
/// clock.advance(TimeDelta::seconds(90));
/// assert_eq!(shared.now().to_rfc3339(), "2026-01-01T00:01:30+00:00");
/// # Ok::<(), chrono::ParseError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    nanos: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `start` (nanosecond precision; dates from 1677 to 2262).
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            nanos: Arc::new(AtomicI64::new(to_nanos(start))),
        }
    }

    /// Moves the clock forward (or back, for a negative delta).
    pub fn advance(&self, by: TimeDelta) {
        let delta = by.num_nanoseconds().unwrap_or(i64::MAX);
        self.nanos.fetch_add(delta, Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        self.nanos.store(to_nanos(to), Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    /// A clock at 2026-01-01T00:00:00Z.
    fn default() -> Self {
        Self::new(DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.nanos.load(Ordering::SeqCst))
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }
}

fn to_nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_exact_and_shared() {
        let clock = ManualClock::default();
        let start = clock.now();
        let other = clock.clone();
        other.advance(TimeDelta::milliseconds(1500));
        assert_eq!(clock.now() - start, TimeDelta::milliseconds(1500));
        clock.set(start);
        assert_eq!(other.now(), start);
    }
}
