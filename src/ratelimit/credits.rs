//! Usage credits: a balance of remaining uses, optionally refilled on a schedule.
//!
//! Pure arithmetic with no storage: the keyring keeps the balance in the key record and
//! calls [`Credits::charge`] with the record's values and the clock's time.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::decision::Decision;

/// A periodic top-up: every `period`, `amount` uses are added, up to `max`.
///
/// With `amount == max` this is "reset to `max` each period" (a monthly allowance); with a
/// small `amount` it is a slow trickle. Serialised as `{"amount", "period_ms", "max"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RefillRepr", into = "RefillRepr")]
pub struct Refill {
    amount: u64,
    period: TimeDelta,
    max: u64,
}

impl Refill {
    /// `amount` more uses every `period`, never refilling above `max`. `None` when the
    /// period is not positive or not a whole number of milliseconds (the resolution it is
    /// stored with), or when `amount` or `max` is zero.
    pub fn new(amount: u64, period: TimeDelta, max: u64) -> Option<Self> {
        let whole_ms = period.subsec_nanos() % 1_000_000 == 0;
        (period > TimeDelta::zero() && whole_ms && amount > 0 && max > 0).then_some(Self {
            amount,
            period,
            max,
        })
    }

    /// Uses added per period.
    pub fn amount(&self) -> u64 {
        self.amount
    }

    /// Time between refills.
    pub fn period(&self) -> TimeDelta {
        self.period
    }

    /// The balance a refill never exceeds.
    pub fn max(&self) -> u64 {
        self.max
    }
}

/// The stored form of a [`Refill`]; validated on the way in.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
struct RefillRepr {
    amount: u64,
    period_ms: i64,
    max: u64,
}

impl From<Refill> for RefillRepr {
    fn from(r: Refill) -> Self {
        Self {
            amount: r.amount,
            period_ms: r.period.num_milliseconds(),
            max: r.max,
        }
    }
}

impl TryFrom<RefillRepr> for Refill {
    type Error = &'static str;
    fn try_from(r: RefillRepr) -> Result<Self, Self::Error> {
        let period =
            TimeDelta::try_milliseconds(r.period_ms).ok_or("refill period out of range")?;
        Refill::new(r.amount, period, r.max).ok_or("refill needs a positive period, amount and max")
    }
}

/// A credit balance as stored in a key record.
///
/// ```
/// use chrono::{TimeDelta, Utc};
/// use keymint::ratelimit::{Credits, Refill};
///
/// let start = "2026-01-01T00:00:00Z".parse::<chrono::DateTime<Utc>>()?;
/// let daily = Refill::new(100, TimeDelta::days(1), 100);
/// let credits = Credits { remaining: 1, refill: daily, last_refill: start };
///
/// let (credits, first) = credits.charge(1, start);
/// assert!(first.allowed && first.remaining == 0);
/// let (credits, second) = credits.charge(1, start);
/// assert!(!second.allowed);
/// assert_eq!(second.retry_after_secs(), Some(86_400));
///
/// // A day later the balance is back to 100 and the charge goes through.
/// let (_, third) = credits.charge(1, start + TimeDelta::days(1));
/// assert_eq!((third.allowed, third.remaining), (true, 99));
/// # Ok::<(), chrono::ParseError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Credits {
    /// Uses left.
    pub remaining: u64,
    /// The refill rule, if any.
    pub refill: Option<Refill>,
    /// When the last refill happened (or the balance was set): the phase of the schedule.
    pub last_refill: DateTime<Utc>,
}

impl Credits {
    /// The balance at `now` after the refills due since `last_refill`; `last_refill`
    /// advances by whole periods so the schedule keeps its phase.
    #[must_use]
    pub fn refilled(&self, now: DateTime<Utc>) -> Self {
        let Some(refill) = self.refill else {
            return *self;
        };
        let elapsed = now - self.last_refill;
        if elapsed < refill.period {
            return *self;
        }
        let periods = periods_in(elapsed, refill.period);
        let added = refill.amount.saturating_mul(periods);
        let topped = self.remaining.saturating_add(added).min(refill.max);
        Self {
            remaining: self.remaining.max(topped),
            refill: self.refill,
            last_refill: advance(self.last_refill, refill.period, periods),
        }
    }

    /// Refills, then charges `cost` uses if the balance covers them (cost 0 = peek).
    /// Returns the state to store (unchanged but refilled when denied) and the decision.
    /// `reset_after` is the time to the next refill (`Duration::MAX` without refill);
    /// a denial's `retry_after` is when enough will have been refilled, `None` if never.
    #[must_use]
    pub fn charge(&self, cost: u32, now: DateTime<Utc>) -> (Self, Decision) {
        let current = self.refilled(now);
        let cost = u64::from(cost);
        let (limit, reset) = match current.refill {
            Some(r) => (
                r.max.max(current.remaining),
                to_std(
                    current
                        .last_refill
                        .checked_add_signed(r.period)
                        .unwrap_or(DateTime::<Utc>::MAX_UTC)
                        - now,
                ),
            ),
            None => (current.remaining, Duration::MAX),
        };
        let wanted = cost.max(1);
        if cost == 0 && current.remaining >= 1 {
            return (current, Decision::allow(limit, current.remaining, reset));
        }
        if cost >= 1 && current.remaining >= cost {
            let next = Self {
                remaining: current.remaining - cost,
                ..current
            };
            return (next, Decision::allow(limit, next.remaining, reset));
        }
        let retry = current.refill.and_then(|r| {
            if wanted > r.max {
                return None;
            }
            let missing = wanted - current.remaining;
            let periods = missing.div_ceil(r.amount);
            let at = advance(current.last_refill, r.period, periods);
            Some(to_std(at - now).max(Duration::from_nanos(1)))
        });
        (
            current,
            Decision::deny(limit, current.remaining, reset, retry),
        )
    }
}

fn periods_in(elapsed: TimeDelta, period: TimeDelta) -> u64 {
    match (elapsed.num_nanoseconds(), period.num_nanoseconds()) {
        (Some(e), Some(p)) => u64::try_from(e / p).unwrap_or(0),
        _ => u64::try_from(elapsed.num_seconds() / period.num_seconds().max(1)).unwrap_or(0),
    }
}

fn advance(from: DateTime<Utc>, period: TimeDelta, periods: u64) -> DateTime<Utc> {
    let n = i32::try_from(periods).unwrap_or(i32::MAX);
    period
        .checked_mul(n)
        .and_then(|d| from.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn to_std(d: TimeDelta) -> Duration {
    d.to_std().unwrap_or(Duration::ZERO)
}
