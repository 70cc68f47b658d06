//! Properties of the in-memory GCRA over arbitrary arrival patterns.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;

use chrono::TimeDelta;
use keymint::ManualClock;
use keymint::ratelimit::{CalendarQuota, MemoryLimiter, Policy, Quota};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Over any window starting at the first request, admitted cost never exceeds
    /// burst + elapsed * rate, and a fresh key always admits its full burst.
    #[test]
    fn admitted_never_exceeds_burst_plus_rate(
        per_sec in 1u32..50,
        burst in 1u32..20,
        events in proptest::collection::vec((0u64..400_000_000, 1u32..4), 1..300),
    ) {
        let clock = ManualClock::default();
        let l = MemoryLimiter::with_clock(clock.clone());
        let quota = Quota::per_second(NonZeroU32::new(per_sec).unwrap())
            .with_burst(NonZeroU32::new(burst).unwrap());
        let p = Policy::single("p", quota).unwrap();
        let t = quota.replenish_interval().as_nanos();
        let mut elapsed: u128 = 0;
        let mut admitted: u128 = 0;
        for (gap, cost) in events {
            clock.advance(TimeDelta::nanoseconds(i64::try_from(gap).unwrap()));
            elapsed += u128::from(gap);
            let cost = cost.min(burst);
            let d = l.check_now("k", &p, cost).unwrap();
            if d.allowed {
                admitted += u128::from(cost);
            }
            prop_assert!(admitted <= u128::from(burst) + elapsed / t,
                "admitted {} > burst {} + {} / {}", admitted, burst, elapsed, t);
            prop_assert!(d.remaining <= u64::from(burst));
        }
    }

    /// A denial's retry_after is exact: one nanosecond earlier is still denied, at
    /// retry_after the same request is admitted.
    #[test]
    fn retry_after_is_exact(
        per_sec in 1u32..1000,
        burst in 1u32..10,
        events in proptest::collection::vec((0u64..50_000_000, 1u32..4), 1..100),
    ) {
        let clock = ManualClock::default();
        let l = MemoryLimiter::with_clock(clock.clone());
        let quota = Quota::per_second(NonZeroU32::new(per_sec).unwrap())
            .with_burst(NonZeroU32::new(burst).unwrap());
        let p = Policy::single("p", quota).unwrap();
        for (gap, cost) in events {
            clock.advance(TimeDelta::nanoseconds(i64::try_from(gap).unwrap()));
            let cost = cost.min(burst);
            let d = l.check_now("k", &p, cost).unwrap();
            if !d.allowed {
                let wait = i64::try_from(d.retry_after.unwrap().as_nanos()).unwrap();
                clock.advance(TimeDelta::nanoseconds(wait - 1));
                prop_assert!(!l.check_now("k", &p, 0).unwrap().allowed || cost > 1);
                prop_assert!(!l.check_now("k", &p, cost).unwrap().allowed);
                clock.advance(TimeDelta::nanoseconds(1));
                prop_assert!(l.check_now("k", &p, cost).unwrap().allowed);
            }
        }
    }

    /// Multi-limit: whatever the pattern, each limit holds on its own, and a peek of cost
    /// 0 never changes what follows.
    #[test]
    fn multi_limit_respects_each_limit(
        per_sec in 1u32..20,
        daily in 1u32..60,
        events in proptest::collection::vec((0u64..300_000_000, 0u32..3), 1..200),
    ) {
        let clock = ManualClock::default();
        let l = MemoryLimiter::with_clock(clock.clone());
        let quota = Quota::per_second(NonZeroU32::new(per_sec).unwrap());
        let p = Policy::new("p", [
            quota.into(),
            CalendarQuota::per_utc_day(NonZeroU32::new(daily).unwrap()).into(),
        ]).unwrap();
        let t = quota.replenish_interval().as_nanos();
        let (mut elapsed, mut admitted): (u128, u128) = (0, 0);
        for (gap, cost) in events {
            clock.advance(TimeDelta::nanoseconds(i64::try_from(gap).unwrap()));
            elapsed += u128::from(gap);
            let cost = cost.min(per_sec).min(daily);
            let d = l.check_now("k", &p, cost).unwrap();
            if d.allowed {
                admitted += u128::from(cost);
            }
            prop_assert!(admitted <= u128::from(daily)); // all within day 1 (< 60 s)
            prop_assert!(admitted <= u128::from(per_sec) + elapsed / t);
        }
    }
}
