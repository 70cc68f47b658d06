//! Value types, credits and HTTP header values.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use keymint::ManualClock;
use keymint::ratelimit::{
    CalendarQuota, Credits, Decision, MemoryLimiter, Policy, PolicyError, Quota, RateLimitHeaders,
    Refill, headers,
};

fn n(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[test]
fn quota_constructors() {
    assert_eq!(
        Quota::per_second(n(4)).replenish_interval(),
        Duration::from_millis(250)
    );
    assert_eq!(
        Quota::per_minute(n(60)).replenish_interval(),
        Duration::from_secs(1)
    );
    assert_eq!(
        Quota::per_hour(n(2)).replenish_interval(),
        Duration::from_secs(1800)
    );
    assert_eq!(
        Quota::per_day(n(24)).replenish_interval(),
        Duration::from_secs(3600)
    );
    assert_eq!(Quota::per_day(n(24)).window(), Duration::from_secs(86_400));
    let custom = Quota::new(n(3), Duration::from_secs(30)).unwrap();
    assert_eq!(custom.replenish_interval(), Duration::from_secs(10));
    assert_eq!(custom.burst().get(), 3);
    assert_eq!(Quota::new(n(3), Duration::ZERO), None);
    assert_eq!(Quota::with_period(Duration::ZERO), None);
    let burst = Quota::per_second(n(10)).with_burst(n(50));
    assert_eq!(burst.replenish_interval(), Duration::from_millis(100));
    assert_eq!(burst.window(), Duration::from_secs(5));
}

#[test]
fn policy_validation() {
    let q = Quota::per_second(n(1));
    assert_eq!(Policy::single("", q).unwrap_err(), PolicyError::InvalidName);
    assert_eq!(
        Policy::single("a b", q).unwrap_err(),
        PolicyError::InvalidName
    );
    assert_eq!(
        Policy::single("x\"y", q).unwrap_err(),
        PolicyError::InvalidName
    );
    assert_eq!(
        Policy::single(&"a".repeat(65), q).unwrap_err(),
        PolicyError::InvalidName
    );
    assert!(Policy::single(&"a".repeat(64), q).is_ok());
    assert_eq!(
        Policy::new("p", []).unwrap_err(),
        PolicyError::LimitCount { found: 0, max: 4 }
    );
    assert_eq!(
        Policy::new("p", [q.into(); 5]).unwrap_err(),
        PolicyError::LimitCount { found: 5, max: 4 }
    );
    assert_eq!(
        Policy::new("p.v2-x_y", [q.into(); 4])
            .unwrap()
            .limits()
            .len(),
        4
    );
}

#[test]
fn header_values_for_multi_limit_policy() {
    let clock = ManualClock::new(at("2026-03-10T12:00:00Z"));
    let l = MemoryLimiter::with_clock(clock.clone());
    let p = Policy::new(
        "api",
        [
            Quota::per_second(n(10)).into(),
            CalendarQuota::per_utc_day(n(1000)).into(),
            CalendarQuota::per_utc_month(n(20_000)).into(),
        ],
    )
    .unwrap();
    assert_eq!(
        headers::policy_field(&p),
        r#""api";q=10;w=1, "api.1";q=1000;w=86400, "api.2";q=20000"#
    );
    let d = l.check_now("k", &p, 1).unwrap();
    let h = RateLimitHeaders::new(&p, &d);
    assert_eq!(h.ratelimit, r#""api";r=9;t=1"#);
    assert_eq!(h.retry_after, None);
    for _ in 0..9 {
        l.check_now("k", &p, 1).unwrap();
    }
    clock.advance(TimeDelta::milliseconds(10));
    let denied = l.check_now("k", &p, 1).unwrap();
    let h = RateLimitHeaders::new(&p, &denied);
    assert_eq!(h.ratelimit, r#""api";r=0;t=1"#);
    assert_eq!(h.retry_after.as_deref(), Some("1"));
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let d = |ms| Decision::deny(1, 0, Duration::ZERO, Some(Duration::from_millis(ms)));
    assert_eq!(headers::retry_after_field(&d(1)).as_deref(), Some("1"));
    assert_eq!(headers::retry_after_field(&d(1000)).as_deref(), Some("1"));
    assert_eq!(headers::retry_after_field(&d(1001)).as_deref(), Some("2"));
    assert_eq!(
        headers::retry_after_field(&Decision::deny(1, 0, Duration::ZERO, None)),
        None
    );
    assert_eq!(
        headers::retry_after_field(&Decision::allow(1, 1, Duration::ZERO)),
        None
    );
    let p = Policy::single("p", Quota::per_second(n(1))).unwrap();
    let never = Decision::deny(5, 0, Duration::MAX, None);
    assert_eq!(headers::ratelimit_field(&p, &never), r#""p";r=0"#);
}

#[test]
fn credits_without_refill_run_out_for_good() {
    let now = at("2026-01-01T00:00:00Z");
    let c = Credits {
        remaining: 3,
        refill: None,
        last_refill: now,
    };
    let (c, d) = c.charge(2, now);
    assert_eq!((d.allowed, d.remaining, c.remaining), (true, 1, 1));
    let (c2, d) = c.charge(2, now + TimeDelta::days(400));
    assert!(!d.allowed);
    assert_eq!((d.remaining, d.retry_after), (1, None));
    assert_eq!(c2, c, "a denial charges nothing");
    let (c, peek) = c.charge(0, now);
    assert_eq!((peek.allowed, c.remaining), (true, 1));
    let (c, d) = c.charge(1, now);
    assert_eq!((d.allowed, c.remaining), (true, 0));
    let (_, peek) = c.charge(0, now);
    assert!(!peek.allowed);
    assert_eq!(peek.reset_after, Duration::MAX);
}

#[test]
fn credits_refill_keeps_phase_and_caps() {
    let start = at("2026-01-01T00:00:00Z");
    let refill = Refill::new(10, TimeDelta::hours(1), 25).unwrap();
    let c = Credits {
        remaining: 0,
        refill: Some(refill),
        last_refill: start,
    };
    // 59 minutes: nothing yet; retry at the hour.
    let (c, d) = c.charge(5, start + TimeDelta::minutes(59));
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Some(Duration::from_secs(60)));
    // A cost of 15 needs two refills: retry at 2 h.
    let (_, d) = c.charge(15, start + TimeDelta::minutes(59));
    assert_eq!(d.retry_after, Some(Duration::from_secs(3660)));
    // A cost above the cap can never be met by refills.
    let (_, d) = c.charge(26, start + TimeDelta::minutes(59));
    assert_eq!(d.retry_after, None);
    // 2.5 h later: two refills (20), phase kept at 02:00.
    let (c, d) = c.charge(5, start + TimeDelta::minutes(150));
    assert_eq!((d.allowed, c.remaining), (true, 15));
    assert_eq!(c.last_refill, start + TimeDelta::hours(2));
    assert_eq!(d.reset_after, Duration::from_secs(30 * 60));
    assert_eq!(d.limit, 25);
    // Ten hours later: capped at 25.
    let (c, _) = c.charge(0, start + TimeDelta::hours(12));
    assert_eq!(c.remaining, 25);
    // A balance above the cap (bought credits) is not cut down by a refill.
    let rich = Credits {
        remaining: 100,
        ..c
    };
    assert_eq!(rich.refilled(start + TimeDelta::days(3)).remaining, 100);
    assert_eq!(Refill::new(0, TimeDelta::hours(1), 5), None);
    assert_eq!(Refill::new(1, TimeDelta::zero(), 5), None);
}

#[test]
fn refill_periods_are_whole_milliseconds_and_survive_serde() {
    use chrono::TimeDelta;
    use keymint::ratelimit::Refill;
    // Stored with millisecond resolution: anything finer would be rounded to another
    // period (500 µs to zero, which could never be read back), so it is refused.
    assert_eq!(Refill::new(1, TimeDelta::microseconds(500), 1), None);
    assert_eq!(Refill::new(1, TimeDelta::nanoseconds(1_000_001), 1), None);
    for period in [
        TimeDelta::milliseconds(1),
        TimeDelta::milliseconds(1500),
        TimeDelta::days(30),
    ] {
        let refill = Refill::new(10, period, 100).unwrap();
        let json = serde_json::to_string(&refill).unwrap();
        assert_eq!(
            serde_json::from_str::<Refill>(&json).unwrap(),
            refill,
            "{json}"
        );
    }
    // A stored zero period (written by a hand-edited row) is refused when read.
    assert!(serde_json::from_str::<Refill>(r#"{"amount":1,"period_ms":0,"max":1}"#).is_err());
}

/// draft-ietf-httpapi-ratelimit-headers-10: `t` is the time until *additional* quota is
/// available, not until the quota is full again.
#[test]
fn t_counts_seconds_until_more_quota_not_a_full_refill() {
    use keymint::ManualClock;
    use keymint::ratelimit::MemoryLimiter;
    // 3 a minute: one request earned back every 20 s.
    let p = Policy::single("p", Quota::per_minute(n(3))).unwrap();
    let limiter = MemoryLimiter::with_clock(ManualClock::default());
    let fresh = limiter.check_now("k", &p, 0).unwrap();
    assert_eq!(
        headers::ratelimit_field(&p, &fresh),
        r#""p";r=3"#,
        "full: nothing more is coming"
    );
    for remaining in [2, 1, 0] {
        let d = limiter.check_now("k", &p, 1).unwrap();
        assert_eq!(
            headers::ratelimit_field(&p, &d),
            format!(r#""p";r={remaining};t=20"#),
            "a full refill would take {}",
            (3 - remaining) * 20
        );
    }
    let denied = limiter.check_now("k", &p, 1).unwrap();
    let h = RateLimitHeaders::new(&p, &denied);
    assert_eq!(h.ratelimit, r#""p";r=0;t=20"#);
    assert_eq!(
        h.retry_after.as_deref(),
        Some("20"),
        "Retry-After is not earlier than t"
    );
    // Calendar windows: more quota comes when the window ends.
    let day = Policy::single("d", CalendarQuota::per_utc_day(n(5))).unwrap();
    let limiter = MemoryLimiter::with_clock(ManualClock::new(at("2026-01-01T23:00:00Z")));
    assert_eq!(
        headers::ratelimit_field(&day, &limiter.check_now("k", &day, 0).unwrap()),
        r#""d";r=5"#
    );
    let d = limiter.check_now("k", &day, 1).unwrap();
    assert_eq!(headers::ratelimit_field(&day, &d), r#""d";r=4;t=3600"#);
}
