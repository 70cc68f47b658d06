//! In-memory limiter behaviour on a manual clock: exact counts, no sleeps.
#![allow(clippy::unwrap_used)]

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use keymint::ManualClock;
use keymint::ratelimit::{
    CalendarQuota, Limit, MemoryLimiter, Policy, Quota, RateLimitError, RateLimiter,
};

fn n(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn limiter() -> (ManualClock, MemoryLimiter<ManualClock>) {
    let clock = ManualClock::default();
    (clock.clone(), MemoryLimiter::with_clock(clock))
}

fn admitted(l: &MemoryLimiter<ManualClock>, key: &str, p: &Policy, tries: usize) -> usize {
    (0..tries)
        .filter(|_| l.check_now(key, p, 1).unwrap().allowed)
        .count()
}

#[test]
fn exact_counts_per_window() {
    let (clock, l) = limiter();
    let p = Policy::single("p", Quota::per_second(n(5))).unwrap();
    assert_eq!(admitted(&l, "k", &p, 20), 5);
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(admitted(&l, "k", &p, 20), 5);
    clock.advance(TimeDelta::milliseconds(200));
    assert_eq!(admitted(&l, "k", &p, 20), 1);
    clock.advance(TimeDelta::milliseconds(399));
    assert_eq!(admitted(&l, "k", &p, 20), 1);
    clock.advance(TimeDelta::seconds(3600));
    assert_eq!(admitted(&l, "k", &p, 20), 5, "refill stops at the burst");
}

#[test]
fn burst_then_steady_rate() {
    let (clock, l) = limiter();
    let p = Policy::single("p", Quota::per_minute(n(60)).with_burst(n(10))).unwrap();
    assert_eq!(admitted(&l, "k", &p, 50), 10);
    for _ in 0..30 {
        clock.advance(TimeDelta::seconds(1));
        assert_eq!(admitted(&l, "k", &p, 5), 1);
    }
}

#[test]
fn retry_after_and_reset_are_exact() {
    let (clock, l) = limiter();
    let p = Policy::single("p", Quota::per_second(n(1))).unwrap();
    let first = l.check_now("k", &p, 1).unwrap();
    assert_eq!((first.allowed, first.limit, first.remaining), (true, 1, 0));
    assert_eq!(first.reset_after, Duration::from_secs(1));
    clock.advance(TimeDelta::milliseconds(250));
    let denied = l.check_now("k", &p, 1).unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.retry_after, Some(Duration::from_millis(750)));
    assert_eq!(denied.retry_after_secs(), Some(1));
    clock.advance(TimeDelta::nanoseconds(749_999_999));
    assert!(!l.check_now("k", &p, 1).unwrap().allowed);
    clock.advance(TimeDelta::nanoseconds(1));
    assert!(l.check_now("k", &p, 1).unwrap().allowed);
}

#[test]
fn weighted_costs() {
    let (_clock, l) = limiter();
    let p = Policy::single("p", Quota::per_second(n(10))).unwrap();
    assert_eq!(l.check_now("k", &p, 4).unwrap().remaining, 6);
    assert_eq!(l.check_now("k", &p, 4).unwrap().remaining, 2);
    let denied = l.check_now("k", &p, 4).unwrap();
    assert!(!denied.allowed);
    assert_eq!(denied.remaining, 2);
    assert_eq!(denied.retry_after, Some(Duration::from_millis(200)));
    assert!(l.check_now("k", &p, 2).unwrap().allowed);
    assert!(!l.check_now("k", &p, 1).unwrap().allowed);
}

#[test]
fn cost_above_burst_is_an_error() {
    let (_clock, l) = limiter();
    let p = Policy::new(
        "p",
        [
            Quota::per_second(n(10)).into(),
            CalendarQuota::per_utc_day(n(3)).into(),
        ],
    )
    .unwrap();
    let err = l.check_now("k", &p, 4).unwrap_err();
    assert!(matches!(
        err,
        RateLimitError::CostTooHigh {
            cost: 4,
            max: 3,
            limit_index: 1
        }
    ));
    assert!(l.is_empty(), "an invalid cost touches no state");
}

#[test]
fn peek_reports_and_consumes_nothing() {
    let (_clock, l) = limiter();
    let p = Policy::single("p", Quota::per_second(n(3))).unwrap();
    let fresh = l.check_now("k", &p, 0).unwrap();
    assert_eq!((fresh.allowed, fresh.remaining), (true, 3));
    assert!(l.is_empty(), "a peek does not create state");
    l.check_now("k", &p, 1).unwrap();
    for _ in 0..100 {
        let d = l.check_now("k", &p, 0).unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 2));
    }
    assert_eq!(admitted(&l, "k", &p, 10), 2);
    let empty = l.check_now("k", &p, 0).unwrap();
    assert!(!empty.allowed);
    assert_eq!(empty.remaining, 0);
    assert!(empty.retry_after.is_some());
}

#[test]
fn keys_and_policies_are_independent() {
    let (_clock, l) = limiter();
    let p = Policy::single("p", Quota::per_second(n(2))).unwrap();
    let q = Policy::single("q", Quota::per_second(n(2))).unwrap();
    assert_eq!(admitted(&l, "a", &p, 5), 2);
    assert_eq!(admitted(&l, "b", &p, 5), 2);
    assert_eq!(admitted(&l, "a", &q, 5), 2);
    // Same name, different limit: separate state.
    let p3 = Policy::single("p", Quota::per_second(n(3))).unwrap();
    assert_eq!(admitted(&l, "a", &p3, 5), 3);
}

#[test]
fn multi_limit_denial_charges_no_limit() {
    let (clock, l) = limiter();
    let rate = Quota::per_minute(n(6)); // burst 6, one back every 10 s
    let day = CalendarQuota::per_utc_day(n(8));
    let p = Policy::new("p", [rate.into(), day.into()]).unwrap();
    let rate_only = Policy::single("p", rate).unwrap(); // same (name, index 0, limit): same state

    assert_eq!(admitted(&l, "k", &p, 6), 6);
    for _ in 0..5 {
        let d = l.check_now("k", &p, 1).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.limit_index, 0, "the rate limit denies");
    }
    clock.advance(TimeDelta::seconds(60));
    // The 5 denials were not charged to the day: exactly 2 of its 8 remain.
    assert_eq!(admitted(&l, "k", &p, 10), 2);
    assert_eq!(l.check_now("k", &rate_only, 0).unwrap().remaining, 4);
    for _ in 0..5 {
        let d = l.check_now("k", &p, 1).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.limit_index, 1, "the day limit denies");
    }
    // ... and the day's denials were not charged to the rate limit.
    assert_eq!(l.check_now("k", &rate_only, 0).unwrap().remaining, 4);
}

#[test]
fn multi_limit_reports_most_restrictive() {
    let (_clock, l) = limiter();
    let p = Policy::new(
        "p",
        [
            Limit::Rate(Quota::per_second(n(10))),
            Limit::Calendar(CalendarQuota::per_utc_month(n(3))),
        ],
    )
    .unwrap();
    let d = l.check_now("k", &p, 1).unwrap();
    assert_eq!((d.limit_index, d.limit, d.remaining), (1, 3, 2));
}

#[test]
fn calendar_day_rolls_over_at_utc_midnight() {
    let clock = ManualClock::new(at("2026-01-31T23:59:59.5Z"));
    let l = MemoryLimiter::with_clock(clock.clone());
    let p = Policy::single("d", CalendarQuota::per_utc_day(n(3))).unwrap();
    assert_eq!(admitted(&l, "k", &p, 10), 3);
    let d = l.check_now("k", &p, 1).unwrap();
    assert_eq!(d.retry_after, Some(Duration::from_millis(500)));
    assert_eq!(d.reset_after, Duration::from_millis(500));
    clock.advance(TimeDelta::nanoseconds(499_999_999));
    assert_eq!(admitted(&l, "k", &p, 10), 0);
    clock.advance(TimeDelta::nanoseconds(1));
    assert_eq!(admitted(&l, "k", &p, 10), 3);
}

#[test]
fn calendar_month_rolls_over_at_month_end() {
    let p = Policy::single("m", CalendarQuota::per_utc_month(n(2))).unwrap();
    for (last, next) in [
        ("2026-01-31T23:59:59Z", "2026-02-01T00:00:00Z"),
        ("2026-02-28T23:59:59Z", "2026-03-01T00:00:00Z"),
        ("2028-02-29T23:59:59Z", "2028-03-01T00:00:00Z"),
        ("2026-04-30T23:59:59Z", "2026-05-01T00:00:00Z"),
        ("2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"),
    ] {
        let clock = ManualClock::new(at(last));
        let l = MemoryLimiter::with_clock(clock.clone());
        assert_eq!(admitted(&l, "k", &p, 5), 2, "{last}");
        let d = l.check_now("k", &p, 1).unwrap();
        assert_eq!(d.retry_after, Some(Duration::from_secs(1)), "{last}");
        clock.set(at(next));
        assert_eq!(admitted(&l, "k", &p, 5), 2, "{next}");
        // Mid-month the count stays.
        clock.advance(TimeDelta::days(20));
        assert_eq!(admitted(&l, "k", &p, 5), 0, "{next} + 20 days");
    }
}

#[test]
fn sweep_evicts_only_idle_keys() {
    let (clock, l) = limiter();
    let rate = Policy::single("r", Quota::per_second(n(1))).unwrap();
    let day = Policy::single("d", CalendarQuota::per_utc_day(n(5))).unwrap();
    for i in 0..1000 {
        l.check_now(&format!("key-{i}"), &rate, 1).unwrap();
        l.check_now(&format!("key-{i}"), &day, 1).unwrap();
    }
    assert_eq!(l.len(), 2000);
    assert_eq!(l.sweep(), 0);
    clock.advance(TimeDelta::milliseconds(999));
    assert_eq!(l.sweep(), 0);
    clock.advance(TimeDelta::milliseconds(1));
    assert_eq!(l.sweep(), 1000, "rate limits back to full burst are idle");
    assert_eq!(l.len(), 1000);
    // Day counts survive until the day ends (2026-01-01 00:00:01 now).
    assert_eq!(l.check_now("key-7", &day, 0).unwrap().remaining, 4);
    clock.advance(TimeDelta::hours(24));
    assert_eq!(l.sweep(), 1000);
    assert!(l.is_empty());
    // Evicted keys start fresh.
    assert_eq!(admitted(&l, "key-1", &rate, 3), 1);
}

#[test]
fn automatic_sweep_bounds_the_table() {
    let (clock, l) = limiter();
    let p = Policy::single("r", Quota::per_second(n(1))).unwrap();
    for round in 0..10 {
        for i in 0..5000 {
            l.check_now(&format!("{round}-{i}"), &p, 1).unwrap();
        }
        clock.advance(TimeDelta::seconds(1));
    }
    // 50 000 distinct keys seen, but idle ones were evicted along the way.
    assert!(l.len() <= 15_000, "tracked {}", l.len());
    assert!(l.len() >= 5_000);
}

#[test]
fn max_keys_cap_rejects_then_recovers() {
    let (clock, l) = limiter();
    let l = l.max_keys(NonZeroUsize::new(10).unwrap());
    let p = Policy::single("r", Quota::per_second(n(1))).unwrap();
    for i in 0..10 {
        assert!(l.check_now(&format!("k{i}"), &p, 1).unwrap().allowed);
    }
    for i in 10..30 {
        let err = l.check_now(&format!("k{i}"), &p, 1).unwrap_err();
        assert!(matches!(err, RateLimitError::TableFull { max_keys: 10 }));
        assert_eq!(l.len(), 10);
    }
    // Known keys still work at the cap.
    assert!(!l.check_now("k0", &p, 1).unwrap().allowed);
    clock.advance(TimeDelta::seconds(1));
    let attempts = (0..10)
        .position(|i| l.check_now(&format!("new{i}"), &p, 1).is_ok())
        .unwrap();
    assert!(
        attempts <= 5,
        "recovered after {attempts} rejected new keys"
    );
    assert!(l.len() <= 10);
}

#[test]
fn threads_on_one_key_admit_exactly_the_quota() {
    let (clock, l) = limiter();
    let l = Arc::new(l);
    let p = Policy::single("p", Quota::per_minute(n(100))).unwrap();
    let run = |p: &Policy| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (l, p) = (Arc::clone(&l), p.clone());
                std::thread::spawn(move || {
                    (0..1000)
                        .filter(|_| l.check_now("hot", &p, 1).unwrap().allowed)
                        .count()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
    };
    assert_eq!(run(&p), 100);
    clock.advance(TimeDelta::seconds(6)); // 10 earned back
    assert_eq!(run(&p), 10);

    let multi = Policy::new(
        "m",
        [
            Quota::per_second(n(50)).into(),
            CalendarQuota::per_utc_day(n(70)).into(),
        ],
    )
    .unwrap();
    assert_eq!(run(&multi), 50);
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(run(&multi), 20, "the day limit caps the second second");
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(run(&multi), 0);
}

#[tokio::test]
async fn async_trait_matches_sync() {
    let (_clock, l) = limiter();
    let p = Policy::single("p", Quota::per_second(n(2))).unwrap();
    assert!(RateLimiter::check(&l, "k", &p, 1).await.unwrap().allowed);
    assert!(RateLimiter::check(&l, "k", &p, 1).await.unwrap().allowed);
    assert!(!RateLimiter::check(&l, "k", &p, 1).await.unwrap().allowed);
}

/// Inserts racing on the same new keys, shard growth and concurrent sweeps: every key still
/// admits exactly its quota, and nothing is lost or duplicated.
#[test]
fn threads_inserting_and_sweeping_lose_no_state() {
    let (clock, l) = limiter();
    let p = Policy::single("p", Quota::per_minute(n(2))).unwrap();
    let keys: Vec<String> = (0..3000).map(|i| format!("shared-{i}")).collect();
    let admitted = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let (l, p, keys) = (&l, &p, &keys);
                s.spawn(move || {
                    let mut ok = 0;
                    // Each thread walks the keys from a different start, 3 tries each.
                    for i in 0..keys.len() {
                        let key = &keys[(i + t * 750) % keys.len()];
                        for _ in 0..3 {
                            ok += usize::from(l.check_now(key, p, 1).unwrap().allowed);
                        }
                    }
                    ok
                })
            })
            .collect();
        // Sweeps run meanwhile; the clock is stopped, so nothing is idle yet.
        let swept: usize = (0..20).map(|_| l.sweep()).sum();
        assert_eq!(swept, 0);
        workers
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(admitted, 3000 * 2, "each key admits exactly its burst");
    assert_eq!(l.len(), 3000);
    clock.advance(TimeDelta::seconds(60));
    assert_eq!(l.sweep(), 3000);
    assert!(l.is_empty());
}

/// Sweeps rebuild and shrink the table; the surviving entries keep their exact state.
#[test]
fn sweep_keeps_survivors_state_exactly() {
    let (clock, l) = limiter();
    let short = Policy::single("s", Quota::per_second(n(1))).unwrap();
    let long = Policy::single("l", Quota::per_hour(n(2))).unwrap();
    for i in 0..10_000 {
        assert!(l.check_now(&format!("k{i}"), &short, 1).unwrap().allowed);
        assert!(l.check_now(&format!("k{i}"), &long, 1).unwrap().allowed);
    }
    clock.advance(TimeDelta::seconds(1));
    assert_eq!(l.sweep(), 10_000);
    assert_eq!(l.len(), 10_000);
    for i in 0..10_000 {
        let key = format!("k{i}");
        let d = l.check_now(&key, &long, 0).unwrap();
        assert_eq!(d.remaining, 1, "{key}");
        assert!(l.check_now(&key, &long, 1).unwrap().allowed);
        assert!(!l.check_now(&key, &long, 1).unwrap().allowed);
    }
    assert_eq!(l.len(), 10_000);
}

/// A clock that implements only `now` gets `now_unix_nanos` by conversion: same counts.
#[derive(Debug)]
struct OnlyNow(ManualClock);

impl keymint::Clock for OnlyNow {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
}

#[test]
fn clocks_with_only_now_and_shared_clocks_work() {
    let clock = ManualClock::default();
    let p = Policy::single("p", Quota::per_second(n(3))).unwrap();
    let plain = MemoryLimiter::with_clock(OnlyNow(clock.clone()));
    let shared = MemoryLimiter::with_clock(Arc::new(clock.clone()));
    for _ in 0..3 {
        let count = |ok: bool| usize::from(ok);
        let a: usize = (0..10)
            .map(|_| count(plain.check_now("k", &p, 1).unwrap().allowed))
            .sum();
        let b: usize = (0..10)
            .map(|_| count(shared.check_now("k", &p, 1).unwrap().allowed))
            .sum();
        assert_eq!((a, b), (3, 3));
        let d = plain.check_now("k", &p, 1).unwrap();
        assert_eq!(d.retry_after, Some(Duration::from_nanos(333_333_333)));
        clock.advance(TimeDelta::seconds(1));
    }
}

#[test]
fn system_clock_limiter_counts_exactly_within_its_window() {
    let l = MemoryLimiter::new();
    let p = Policy::single("p", Quota::per_hour(n(3))).unwrap();
    let admitted = (0..10)
        .filter(|_| l.check_now("k", &p, 1).unwrap().allowed)
        .count();
    assert_eq!(admitted, 3);
    let d = l.check_now("k", &p, 1).unwrap();
    let wait = d.retry_after.unwrap();
    // Next token in 20 minutes minus the few microseconds since the first check.
    assert!(wait <= Duration::from_secs(1200) && wait > Duration::from_secs(1199));
}
