//! The arithmetic of each limit kind on one `u64` of state, shared by the in-memory
//! limiter (which keeps that word in an `AtomicU64`) and mirrored by the Redis script.
//!
//! Times are nanoseconds since the Unix epoch. State 0 means "never used" for every kind.
//!
//! * GCRA: the state is the theoretical arrival time (TAT). A request of cost `n` moves it
//!   to `max(tat, now) + n * T` and is admitted when that lies at most `tau = burst * T`
//!   ahead of now.
//! * Calendar: the state packs the window number (high 32 bits: days or months since
//!   1970-01) and the count in that window (low 32 bits).

use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate};

use super::decision::Decision;
use super::error::RateLimitError;
use super::quota::{CalendarQuota, CalendarWindow, Limit, Quota};

const NANOS_PER_DAY: u64 = 86_400 * 1_000_000_000;

/// One limit's verdict and, if it consumes, the state to store.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Step {
    pub(crate) decision: Decision,
    /// `Some` only when admitted with cost >= 1.
    pub(crate) next: Option<u64>,
}

/// Rejects costs that a limit can never admit.
pub(crate) fn check_cost(limit: &Limit, index: usize, cost: u32) -> Result<(), RateLimitError> {
    let max = limit.max();
    if cost > max {
        return Err(RateLimitError::CostTooHigh {
            cost,
            max,
            limit_index: index,
        });
    }
    Ok(())
}

/// Applies `cost` (0 = peek) to `state` at `now`.
#[inline]
pub(crate) fn step(limit: &Limit, state: u64, now: u64, cost: u32) -> Step {
    match limit {
        Limit::Rate(q) => gcra(q, state, now, cost),
        Limit::Calendar(c) => calendar(c, state, now, cost),
    }
}

/// The state an admitted request of `cost >= 1` would store, or `None` if it is denied:
/// [`step`]'s `next` without building a decision, so the window between the load and the
/// compare-and-swap stays a few instructions wide.
#[inline]
pub(crate) fn next_state(limit: &Limit, state: u64, now: u64, cost: u32) -> Option<u64> {
    match limit {
        Limit::Rate(q) => {
            let debt = state.max(now) - now;
            let new_debt = debt.saturating_add(q.interval_ns().saturating_mul(u64::from(cost)));
            (new_debt <= q.tau_ns()).then(|| now.saturating_add(new_debt))
        }
        Limit::Calendar(_) => step(limit, state, now, cost).next,
    }
}

/// Gives back `cost` taken by an admitted [`step`] (rollback of a multi-limit commit).
pub(crate) fn refund(limit: &Limit, state: u64, now: u64, cost: u32) -> u64 {
    match limit {
        Limit::Rate(q) => state.saturating_sub(q.interval_ns().saturating_mul(u64::from(cost))),
        Limit::Calendar(c) => {
            let (window, _) = calendar_window(c.window(), now);
            if state >> 32 == u64::from(window) {
                state.saturating_sub(u64::from(cost)) // count is the low word and >= cost
            } else {
                state
            }
        }
    }
}

/// True when `state` carries no information any more: a fresh state would behave the same.
pub(crate) fn is_idle(kind: Kind, state: u64, now: u64) -> bool {
    match kind {
        Kind::Rate => state <= now,
        Kind::Day => state >> 32 < u64::from(calendar_window(CalendarWindow::UtcDay, now).0),
        Kind::Month => state >> 32 < u64::from(calendar_window(CalendarWindow::UtcMonth, now).0),
    }
}

/// The kind of a limit, as recorded in the in-memory table key so that sweeps can judge
/// idleness without the policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Rate = 0,
    Day = 1,
    Month = 2,
}

impl Kind {
    pub(crate) fn of(limit: &Limit) -> Self {
        match limit {
            Limit::Rate(_) => Self::Rate,
            Limit::Calendar(c) => match c.window() {
                CalendarWindow::UtcDay => Self::Day,
                CalendarWindow::UtcMonth => Self::Month,
            },
        }
    }

    pub(crate) fn from_bits(bits: u64) -> Self {
        match bits & 3 {
            1 => Self::Day,
            2 => Self::Month,
            _ => Self::Rate,
        }
    }
}

#[inline]
fn gcra(q: &Quota, tat: u64, now: u64, cost: u32) -> Step {
    let t = q.interval_ns();
    let tau = q.tau_ns();
    let limit = u64::from(q.burst().get());
    let base = tat.max(now);
    let debt = base - now; // <= tau: every stored TAT was admitted within tau
    let free = |debt: u64| q.div_interval(tau.saturating_sub(debt));
    if cost == 0 {
        let remaining = free(debt);
        let decision = if remaining >= 1 {
            Decision::allow(limit, remaining, Duration::from_nanos(debt))
        } else {
            let wait = debt.saturating_add(t).saturating_sub(tau);
            Decision::deny(limit, 0, Duration::from_nanos(debt), Some(nanos(wait)))
        };
        return Step {
            decision,
            next: None,
        };
    }
    let new_debt = debt.saturating_add(t.saturating_mul(u64::from(cost)));
    if new_debt <= tau {
        Step {
            decision: Decision::allow(limit, free(new_debt), Duration::from_nanos(new_debt)),
            next: Some(now.saturating_add(new_debt)),
        }
    } else {
        Step {
            decision: Decision::deny(
                limit,
                free(debt),
                Duration::from_nanos(debt),
                Some(nanos(new_debt - tau)),
            ),
            next: None,
        }
    }
}

fn calendar(c: &CalendarQuota, state: u64, now: u64, cost: u32) -> Step {
    let (window, end) = calendar_window(c.window(), now);
    let limit = c.limit().get();
    let used = if state >> 32 == u64::from(window) {
        u32::try_from(state & 0xffff_ffff).unwrap_or(u32::MAX)
    } else {
        0
    };
    let reset = Duration::from_nanos(end.saturating_sub(now));
    let left = limit.saturating_sub(used);
    if cost == 0 {
        let decision = if left >= 1 {
            Decision::allow(u64::from(limit), u64::from(left), reset)
        } else {
            Decision::deny(u64::from(limit), 0, reset, Some(reset))
        };
        return Step {
            decision,
            next: None,
        };
    }
    if cost <= left {
        let count = used + cost;
        Step {
            decision: Decision::allow(u64::from(limit), u64::from(left - cost), reset),
            next: Some((u64::from(window) << 32) | u64::from(count)),
        }
    } else {
        Step {
            decision: Decision::deny(u64::from(limit), u64::from(left), reset, Some(reset)),
            next: None,
        }
    }
}

/// A wait of at least one nanosecond (a zero wait would read as "retry now").
fn nanos(n: u64) -> Duration {
    Duration::from_nanos(n.max(1))
}

/// The window number (days or months since 1970-01) holding `now` and the instant it ends.
pub(crate) fn calendar_window(window: CalendarWindow, now: u64) -> (u32, u64) {
    let days = now / NANOS_PER_DAY;
    match window {
        CalendarWindow::UtcDay => (
            u32::try_from(days).unwrap_or(u32::MAX),
            (days + 1).saturating_mul(NANOS_PER_DAY),
        ),
        CalendarWindow::UtcMonth => {
            let date =
                DateTime::from_timestamp_nanos(i64::try_from(now).unwrap_or(i64::MAX)).date_naive();
            let (y, m) = (date.year(), date.month());
            let index = (y - 1970) * 12 + i32::try_from(m).unwrap_or(1) - 1;
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let end = NaiveDate::from_ymd_opt(ny, nm, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .and_then(|d| d.and_utc().timestamp_nanos_opt())
                .map_or(u64::MAX, |n| u64::try_from(n).unwrap_or(u64::MAX));
            (u32::try_from(index).unwrap_or(0), end)
        }
    }
}
