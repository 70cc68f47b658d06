//! Redis backend against a real server. The server tests are `#[ignore]`d so a plain
//! `cargo test` passes without services; CI runs them with `--include-ignored` and
//! `KEYMINT_TEST_REDIS_URL` set, and a missing URL fails them.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keymint::ratelimit::{
    CalendarQuota, FailurePolicy, Policy, Quota, RateLimitError, RateLimiter, RedisLimiter,
};

const URL_VAR: &str = "KEYMINT_TEST_REDIS_URL";
const CHILD_VAR: &str = "KEYMINT_FLEET_CHILD_NAMESPACE";

fn n(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap()
}

fn url() -> String {
    std::env::var(URL_VAR).unwrap_or_else(|_| {
        panic!("{URL_VAR} is not set: start a Redis server and export its URL (redis://127.0.0.1:PORT/)")
    })
}

/// A namespace no other test (or earlier run) uses.
fn namespace(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("kmtest:{test}:{}:{nanos}:", std::process::id())
}

fn limiter(ns: &str) -> RedisLimiter {
    RedisLimiter::builder(&url()).namespace(ns).build().unwrap()
}

/// The public rate-limiter kit, one test per guarantee, against the real server.
mod kit {
    keymint::limiter_conformance!(
        async { super::limiter(&super::namespace("kit")) },
        #[ignore = "needs KEYMINT_TEST_REDIS_URL"]
    );
}

async fn admitted(l: &RedisLimiter, key: &str, p: &Policy, tries: usize) -> usize {
    let mut count = 0;
    for _ in 0..tries {
        count += usize::from(l.check(key, p, 1).await.unwrap().allowed);
    }
    count
}

async fn raw_connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
#[ignore = "needs KEYMINT_TEST_REDIS_URL"]
async fn admits_exactly_the_burst() {
    let l = limiter(&namespace("burst"));
    let p = Policy::single("p", Quota::per_hour(n(5))).unwrap();
    let first = l.check("k", &p, 1).await.unwrap();
    assert_eq!((first.allowed, first.limit, first.remaining), (true, 5, 4));
    assert_eq!(admitted(&l, "k", &p, 20).await, 4);
    let denied = l.check("k", &p, 1).await.unwrap();
    assert!(!denied.allowed);
    let wait = denied.retry_after.unwrap();
    assert!(
        wait > Duration::from_secs(710) && wait <= Duration::from_secs(720),
        "{wait:?}"
    );
    assert_eq!(
        admitted(&l, "other", &p, 20).await,
        5,
        "keys are independent"
    );
}

#[tokio::test]
#[ignore = "needs KEYMINT_TEST_REDIS_URL"]
async fn weighted_cost_peek_and_invalid_cost() {
    let l = limiter(&namespace("cost"));
    let p = Policy::single("p", Quota::per_hour(n(10))).unwrap();
    assert_eq!(l.check("k", &p, 4).await.unwrap().remaining, 6);
    for _ in 0..10 {
        let peek = l.check("k", &p, 0).await.unwrap();
        assert_eq!((peek.allowed, peek.remaining), (true, 6));
    }
    assert!(l.check("k", &p, 6).await.unwrap().allowed);
    assert!(!l.check("k", &p, 1).await.unwrap().allowed);
    assert!(!l.check("k", &p, 0).await.unwrap().allowed);
    let err = l.check("k", &p, 11).await.unwrap_err();
    assert!(matches!(
        err,
        RateLimitError::CostTooHigh {
            cost: 11,
            max: 10,
            ..
        }
    ));
}

#[tokio::test]
#[ignore = "needs KEYMINT_TEST_REDIS_URL"]
async fn multi_limit_denial_charges_nothing() {
    let l = limiter(&namespace("multi"));
    let day = CalendarQuota::per_utc_day(n(8));
    let p = Policy::new("p", [day.into(), Quota::per_hour(n(6)).into()]).unwrap();
    let day_only = Policy::single("p", day).unwrap(); // same (name, index 0, limit)
    assert_eq!(admitted(&l, "k", &p, 6).await, 6);
    for _ in 0..5 {
        let d = l.check("k", &p, 1).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.limit_index, 1, "the hourly rate denies");
    }
    let peek = l.check("k", &day_only, 0).await.unwrap();
    assert_eq!(peek.remaining, 2, "denials were not charged to the day");
    assert!(peek.reset_after <= Duration::from_secs(86_400));
}

#[tokio::test]
#[ignore = "needs KEYMINT_TEST_REDIS_URL"]
async fn keys_expire_and_are_hashed() {
    use redis::AsyncCommands;
    let ns = namespace("expiry");
    let l = limiter(&ns);
    let p = Policy::new(
        "p",
        [
            Quota::per_second(n(10)).into(),
            CalendarQuota::per_utc_month(n(100)).into(),
        ],
    )
    .unwrap();
    let hostile = [
        "a:b",
        "a",
        "*",
        "\r\nFLUSHALL\r\n",
        "é",
        &"x".repeat(10_000),
    ];
    for key in hostile {
        assert!(l.check(key, &p, 1).await.unwrap().allowed);
    }
    let mut con = raw_connection().await;
    for key in hostile {
        let rate_key = l.redis_key(&p, 0, key).unwrap();
        assert!(rate_key.starts_with(&ns));
        // namespace, `{` 8 hex digits `}` (the hash tag, shared by the key's limits), 32 hex
        assert_eq!(rate_key.len(), ns.len() + 42);
        let month_key = l.redis_key(&p, 1, key).unwrap();
        assert_eq!(rate_key[..ns.len() + 10], month_key[..ns.len() + 10]);
        assert_ne!(rate_key, month_key);
        let ttl: i64 = con.pttl(&rate_key).await.unwrap();
        assert!(ttl > 0 && ttl <= 102, "rate key ttl {ttl} ms");
        let month_ttl: i64 = con.pttl(l.redis_key(&p, 1, key).unwrap()).await.unwrap();
        assert!(
            month_ttl > 1000 && month_ttl <= 32 * 86_400_000,
            "month ttl {month_ttl}"
        );
        // each hostile key has its own state: exactly one request charged
        assert_eq!(l.check(key, &p, 0).await.unwrap().remaining, 9);
    }
    assert_eq!(l.redis_key(&p, 2, "a"), None);
    let keys: Vec<String> = con.keys(format!("{ns}*")).await.unwrap();
    assert_eq!(keys.len(), hostile.len() * 2);
}

#[tokio::test]
#[ignore = "needs KEYMINT_TEST_REDIS_URL"]
async fn reloads_script_after_flush() {
    let l = limiter(&namespace("noscript"));
    let p = Policy::single("p", Quota::per_hour(n(3))).unwrap();
    assert!(l.check("k", &p, 1).await.unwrap().allowed);
    let mut con = raw_connection().await;
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    let d = l.check("k", &p, 1).await.unwrap();
    assert_eq!(
        (d.allowed, d.remaining),
        (true, 1),
        "NOSCRIPT -> SCRIPT LOAD -> retry"
    );
}

#[tokio::test]
#[ignore = "needs KEYMINT_TEST_REDIS_URL"]
async fn calendar_day_counts_on_server_time() {
    let l = limiter(&namespace("day"));
    let p = Policy::single("d", CalendarQuota::per_utc_day(n(3))).unwrap();
    assert_eq!(admitted(&l, "k", &p, 10).await, 3);
    let d = l.check("k", &p, 1).await.unwrap();
    assert!(!d.allowed);
    assert_eq!(d.retry_after, Some(d.reset_after));
    assert!(d.reset_after <= Duration::from_secs(86_400));
}

/// Several limiter instances, each with its own connection, hammer one key concurrently:
/// together they admit exactly the quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_REDIS_URL"]
async fn fleet_of_instances_admits_exactly_the_quota() {
    let ns = namespace("fleet");
    let p = Policy::new(
        "fleet",
        [
            Quota::per_hour(n(100)).into(),
            CalendarQuota::per_utc_month(n(1_000)).into(),
        ],
    )
    .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let l = Arc::new(limiter(&ns));
        for _ in 0..16 {
            let (l, p) = (Arc::clone(&l), p.clone());
            tasks.spawn(async move { admitted(&l, "shared", &p, 10).await });
        }
    }
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        total += r.unwrap();
    }
    assert_eq!(total, 100, "640 attempts on a burst of 100");
}

/// The same across processes: this test re-runs its own binary as workers (selected by
/// an environment variable) and adds up what each admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_REDIS_URL"]
async fn fleet_of_processes_admits_exactly_the_quota() {
    let p = Policy::single("procs", Quota::per_hour(n(50))).unwrap();
    if let Ok(ns) = std::env::var(CHILD_VAR) {
        let l = limiter(&ns);
        println!("FLEET_ADMITTED={}", admitted(&l, "shared", &p, 40).await);
        return;
    }
    let ns = namespace("procs");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "fleet_of_processes_admits_exactly_the_quota",
                    "--exact",
                    "--include-ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_VAR, &ns)
                .env(URL_VAR, url())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mine = admitted(&limiter(&ns), "shared", &p, 40).await;
    let mut total = mine;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "worker failed: {:?}", out.status);
        let text = String::from_utf8(out.stdout).unwrap();
        let count = text
            .split("FLEET_ADMITTED=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no count in worker output: {text}"));
        total += count.parse::<usize>().unwrap();
    }
    assert_eq!(total, 50, "4 processes x 40 attempts on a burst of 50");
}

fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("redis://127.0.0.1:{port}/")
}

fn unreachable(policy: FailurePolicy) -> RedisLimiter {
    RedisLimiter::builder(&closed_port_url())
        .failure_policy(policy)
        .connect_timeout(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(200))
        .reconnect_retries(0)
        .build()
        .unwrap()
}

#[tokio::test]
async fn unreachable_server_fails_closed_by_default() {
    let l = unreachable(FailurePolicy::default());
    assert_eq!(l.failure_policy(), FailurePolicy::Closed);
    let p = Policy::single("p", Quota::per_second(n(1))).unwrap();
    for _ in 0..2 {
        let err = l.check("k", &p, 1).await.unwrap_err();
        assert!(matches!(err, RateLimitError::Unavailable(_)), "{err:?}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "the redis error is kept"
        );
    }
}

#[tokio::test]
async fn unreachable_server_fails_open_when_configured() {
    let l = unreachable(FailurePolicy::Open);
    let p = Policy::single("p", Quota::per_second(n(1))).unwrap();
    for _ in 0..3 {
        let d = l.check("k", &p, 1).await.unwrap();
        assert!(d.allowed, "fail open admits even beyond the burst");
    }
    // Invalid costs are still errors: they are bugs, not outages.
    assert!(matches!(
        l.check("k", &p, 2).await.unwrap_err(),
        RateLimitError::CostTooHigh { .. }
    ));
}

#[tokio::test]
#[ignore = "needs KEYMINT_TEST_REDIS_URL"]
async fn calendar_month_window_matches_chrono() {
    use chrono::{Datelike, NaiveDate, Utc};
    let l = limiter(&namespace("month"));
    let p = Policy::single("m", CalendarQuota::per_utc_month(n(5))).unwrap();
    let d = l.check("k", &p, 1).await.unwrap();
    let now = Utc::now();
    let (y, m) = (now.year(), now.month());
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let next = NaiveDate::from_ymd_opt(ny, nm, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let expected = (next - now).to_std().unwrap();
    let diff = expected.abs_diff(d.reset_after);
    assert!(
        diff < Duration::from_secs(5),
        "server says {:?}, chrono {expected:?}",
        d.reset_after
    );
    assert_eq!((d.limit, d.remaining), (5, 4));
}
