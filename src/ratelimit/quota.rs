//! Limits: a GCRA rate ([`Quota`]) and a calendar-window count ([`CalendarQuota`]).

use std::num::NonZeroU32;
use std::time::Duration;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A rate limit: up to `burst` requests at once, refilled at one request per
/// [`replenish_interval`](Quota::replenish_interval), enforced with GCRA (the generic cell
/// rate algorithm: no fixed windows, so no double burst at a window edge).
///
/// A quota of `n` per period lets `n` requests through at once and then one every
/// `period / n`; [`with_burst`](Quota::with_burst) changes how many may come at once
/// without changing the sustained rate. Invalid quotas cannot be built: counts are
/// [`NonZeroU32`] and the interval is at least one nanosecond.
///
/// ```
/// use std::num::NonZeroU32;
/// use std::time::Duration;
/// use keymint::ratelimit::Quota;
///
/// let ten = NonZeroU32::new(10).unwrap();
/// let q = Quota::per_second(ten).with_burst(NonZeroU32::new(20).unwrap());
/// assert_eq!(q.burst().get(), 20);
/// assert_eq!(q.replenish_interval(), Duration::from_millis(100));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    interval_ns: u64,
    /// `u64::MAX / interval_ns`: turns the division on the hot path into a multiply.
    reciprocal: u64,
    burst: NonZeroU32,
}

impl Quota {
    const fn per_period_ns(period_ns: u64, n: NonZeroU32) -> Self {
        let interval = period_ns / n.get() as u64;
        let interval = if interval == 0 { 1 } else { interval };
        Self {
            interval_ns: interval,
            reciprocal: u64::MAX / interval,
            burst: n,
        }
    }

    /// `n` requests per second, all of which may come at once.
    pub const fn per_second(n: NonZeroU32) -> Self {
        Self::per_period_ns(NANOS_PER_SEC, n)
    }

    /// `n` requests per minute, all of which may come at once.
    pub const fn per_minute(n: NonZeroU32) -> Self {
        Self::per_period_ns(60 * NANOS_PER_SEC, n)
    }

    /// `n` requests per hour, all of which may come at once.
    pub const fn per_hour(n: NonZeroU32) -> Self {
        Self::per_period_ns(3_600 * NANOS_PER_SEC, n)
    }

    /// `n` requests per rolling 24 hours (GCRA, not a calendar day: see
    /// [`CalendarQuota::per_utc_day`] for a count that resets at UTC midnight).
    pub const fn per_day(n: NonZeroU32) -> Self {
        Self::per_period_ns(86_400 * NANOS_PER_SEC, n)
    }

    /// `n` requests per `period`, all of which may come at once. `None` when `period` is
    /// zero, shorter than `n` nanoseconds, or longer than about 584 years.
    pub const fn new(n: NonZeroU32, period: Duration) -> Option<Self> {
        let secs = period.as_secs();
        if secs > u64::MAX / NANOS_PER_SEC - 1 {
            return None;
        }
        let ns = secs * NANOS_PER_SEC + period.subsec_nanos() as u64;
        if ns < n.get() as u64 {
            return None;
        }
        Some(Self::per_period_ns(ns, n))
    }

    /// One request per `interval`, no burst (governor's `with_period`). `None` when
    /// `interval` is zero or longer than about 584 years.
    pub const fn with_period(interval: Duration) -> Option<Self> {
        Self::new(NonZeroU32::MIN, interval)
    }

    /// The same sustained rate with up to `burst` requests at once.
    #[must_use]
    pub const fn with_burst(self, burst: NonZeroU32) -> Self {
        Self {
            interval_ns: self.interval_ns,
            reciprocal: self.reciprocal,
            burst,
        }
    }

    /// Most requests admitted at once (and the `limit` of every [`Decision`](super::Decision)).
    pub const fn burst(&self) -> NonZeroU32 {
        self.burst
    }

    /// Time to earn back one request.
    pub const fn replenish_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// Time for an exhausted quota to refill completely: `burst * replenish_interval`
    /// (saturating). This is the window `w` advertised in `RateLimit-Policy`.
    pub const fn window(&self) -> Duration {
        Duration::from_nanos(self.tau_ns())
    }

    pub(crate) const fn interval_ns(&self) -> u64 {
        self.interval_ns
    }

    /// `x / interval_ns` without a hardware division: the reciprocal estimate is at most
    /// two below the true quotient, and the loop corrects it exactly.
    #[inline]
    #[allow(clippy::cast_possible_truncation)] // the quotient is at most `x`, a u64
    pub(crate) const fn div_interval(&self, x: u64) -> u64 {
        let mut q = (x as u128 * self.reciprocal as u128) >> 64;
        while (q + 1) * self.interval_ns as u128 <= x as u128 {
            q += 1;
        }
        q as u64
    }

    pub(crate) const fn tau_ns(&self) -> u64 {
        self.interval_ns.saturating_mul(self.burst.get() as u64)
    }
}

/// The calendar unit of a [`CalendarQuota`]. Windows are in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CalendarWindow {
    /// From 00:00:00 UTC to the next midnight.
    UtcDay,
    /// From 00:00:00 UTC on the first of the month to the first of the next month.
    UtcMonth,
}

/// A count of requests per calendar window (UTC day or month) that resets to zero when the
/// window ends, as billing quotas do ("10 000 calls per month").
///
/// ```
/// use std::num::NonZeroU32;
/// use keymint::ratelimit::{CalendarQuota, CalendarWindow};
///
/// let q = CalendarQuota::per_utc_month(NonZeroU32::new(10_000).unwrap());
/// assert_eq!(q.window(), CalendarWindow::UtcMonth);
/// assert_eq!(q.limit().get(), 10_000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CalendarQuota {
    limit: NonZeroU32,
    window: CalendarWindow,
}

impl CalendarQuota {
    /// `limit` requests per UTC day.
    pub const fn per_utc_day(limit: NonZeroU32) -> Self {
        Self {
            limit,
            window: CalendarWindow::UtcDay,
        }
    }

    /// `limit` requests per UTC calendar month.
    pub const fn per_utc_month(limit: NonZeroU32) -> Self {
        Self {
            limit,
            window: CalendarWindow::UtcMonth,
        }
    }

    /// Most requests admitted per window.
    pub const fn limit(&self) -> NonZeroU32 {
        self.limit
    }

    /// The calendar unit.
    pub const fn window(&self) -> CalendarWindow {
        self.window
    }
}

/// One limit of a [`Policy`](super::Policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// A GCRA rate limit.
    Rate(Quota),
    /// A count per calendar window.
    Calendar(CalendarQuota),
}

impl Limit {
    /// Most requests admitted at once: the `limit` reported in a [`Decision`](super::Decision).
    pub const fn max(&self) -> u32 {
        match self {
            Self::Rate(q) => q.burst.get(),
            Self::Calendar(c) => c.limit.get(),
        }
    }
}

impl From<Quota> for Limit {
    fn from(q: Quota) -> Self {
        Self::Rate(q)
    }
}

impl From<CalendarQuota> for Limit {
    fn from(q: CalendarQuota) -> Self {
        Self::Calendar(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn quota(interval_ns: u64) -> Quota {
        Quota::with_period(Duration::from_nanos(interval_ns))
            .unwrap_or(Quota::per_second(NonZeroU32::MIN))
    }

    #[test]
    fn reciprocal_division_edges() {
        for t in [
            1,
            2,
            3,
            7,
            1 << 20,
            1_000_000_000,
            86_400_000_000_000,
            u64::MAX / 2,
        ] {
            let q = quota(t);
            for x in [
                0,
                1,
                t - 1,
                t,
                t + 1,
                2 * t.min(u64::MAX / 2),
                u64::MAX - 1,
                u64::MAX,
            ] {
                assert_eq!(q.div_interval(x), x / t, "{x} / {t}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn reciprocal_division_is_exact(t in 1u64..=u64::MAX / 2, x: u64) {
            prop_assert_eq!(quota(t).div_interval(x), x / t);
        }
    }
}
