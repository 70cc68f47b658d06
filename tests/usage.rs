//! Per-key usage analytics: one contract run against the memory, SQLite and PostgreSQL
//! usage stores, and the keyring counting without a write per request.
#![cfg(all(feature = "sqlite", feature = "testing"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroU32;

use chrono::{NaiveDate, TimeDelta};
use keymint::ratelimit::{Policy, Quota};
use keymint::store::SqliteStore;
use keymint::usage::{MemoryUsage, UsageDelta, UsageStore};
use keymint::{
    Argon2idHasher, HashPolicy, IssueRequest, KeyFormat, KeyId, Keyring, ManualClock, MemoryStore,
    Requirement, VerifyContext,
};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn delta(key: &KeyId, owner: &str, d: u32, outcome: &'static str, count: u64) -> UsageDelta {
    UsageDelta::new(key.clone(), owner, day(d), outcome, count)
}

/// The contract every usage store keeps.
async fn contract<U: UsageStore + Clone>(usage: U) {
    let a = KeyId::new(&format!("usagea{:06}", rand_suffix())).unwrap();
    let b = KeyId::new(&format!("usageb{:06}", rand_suffix())).unwrap();
    let owner = format!("owner_{}", rand_suffix());
    usage
        .add(&[
            delta(&a, &owner, 1, "verified", 5),
            delta(&a, &owner, 1, "verified", 2), // a repeated row within one batch sums
            delta(&a, &owner, 1, "rate_limited", 1),
            delta(&a, &owner, 2, "revoked", 3),
            delta(&b, &owner, 2, "verified", 40),
            delta(&b, "someone_else", 3, "verified", 1),
        ])
        .await
        .unwrap();
    usage
        .add(&[delta(&a, &owner, 2, "verified", 1)])
        .await
        .unwrap();

    let days = usage.key_usage(&a, day(1), day(2)).await.unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(
        (days[0].day, days[0].verified, days[0].rate_limited),
        (day(1), 7, 1)
    );
    assert_eq!(days[1].verified, 1);
    assert_eq!(days[1].denied.get("revoked"), Some(&3));
    assert!(
        usage
            .key_usage(&a, day(3), day(9))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(usage.key_usage(&a, day(2), day(2)).await.unwrap().len(), 1);

    let keys = usage.owner_usage(&owner, day(1), day(30)).await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let ka = keys.iter().find(|k| k.key_id == a).unwrap();
    assert_eq!((ka.verified, ka.rate_limited, ka.denied), (8, 1, 3));
    let busiest = usage
        .busiest_keys(&owner, day(1), day(30), 1)
        .await
        .unwrap();
    assert_eq!(busiest[0].key_id, b);
    assert_eq!(
        busiest[0].verified, 40,
        "b's row of another owner is not b's owner's"
    );

    // Concurrent batches from many tasks sum up exactly.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (usage, a, owner) = (usage.clone(), a.clone(), owner.clone());
        tasks.spawn(async move {
            for _ in 0..10 {
                usage
                    .add(&[delta(&a, &owner, 5, "verified", 1)])
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(
        usage.key_usage(&a, day(5), day(5)).await.unwrap()[0].verified,
        80
    );
}

fn rand_suffix() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    nanos % 1_000_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_usage_keeps_the_contract() {
    contract(MemoryUsage::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_usage_keeps_the_contract() {
    contract(SqliteStore::in_memory().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs KEYMINT_TEST_DATABASE_URL"]
async fn postgres_usage_keeps_the_contract() {
    let url = std::env::var("KEYMINT_TEST_DATABASE_URL")
        .expect("KEYMINT_TEST_DATABASE_URL must point at a PostgreSQL database");
    let table = format!("keymint_usage_test_{}", rand_suffix());
    let store = keymint::store::PgStore::connect(&url)
        .await
        .unwrap()
        .table(&table)
        .unwrap();
    store.migrate().await.unwrap();
    contract(store).await;
}

#[tokio::test]
async fn the_keyring_counts_per_day_and_outcome_and_writes_in_batches() {
    let clock = ManualClock::default();
    let usage = MemoryUsage::new();
    let keyring = Keyring::builder(KeyFormat::new("sk_live").unwrap(), MemoryStore::new())
        .hashes(HashPolicy::new(
            Argon2idHasher::builder()
                .m_cost(64)
                .t_cost(1)
                .build()
                .unwrap(),
        ))
        .clock(clock.clone())
        .usage(usage.clone(), TimeDelta::seconds(60))
        .policy(Policy::single("three", Quota::per_hour(NonZeroU32::new(3).unwrap())).unwrap())
        .default_policy("three")
        .build()
        .unwrap();
    let issued = keyring
        .issue(IssueRequest::new("acct", "k").scopes(["a"]))
        .await
        .unwrap();
    let key = issued.key.expose_secret().to_owned();
    let ctx = VerifyContext::new();
    let needs_b = Requirement::parse("b").unwrap();
    for _ in 0..3 {
        keyring.verify(&key, &ctx).await.unwrap();
    }
    assert!(keyring.verify(&key, &ctx).await.is_err()); // rate limited
    assert!(
        keyring
            .verify(&key, &VerifyContext::new().require(&needs_b))
            .await
            .is_err()
    );
    // Unknown ids are not counted (they would be unbounded).
    let unknown = keymint::KeyFormat::new("sk_live")
        .unwrap()
        .generate()
        .unwrap();
    assert!(keyring.verify(unknown.expose_secret(), &ctx).await.is_err());

    let today = keymint::Clock::now(&clock).date_naive();
    assert!(
        usage
            .key_usage(&issued.record.id, today, today)
            .await
            .unwrap()
            .is_empty(),
        "nothing written before the interval"
    );
    keyring.flush_usage().await.unwrap();
    let days = usage
        .key_usage(&issued.record.id, today, today)
        .await
        .unwrap();
    assert_eq!(days[0].verified, 3);
    assert_eq!(days[0].rate_limited, 1);
    assert_eq!(days[0].denied.get("insufficient_scope"), Some(&1));
    let all = usage.owner_usage("acct", today, today).await.unwrap();
    assert_eq!(all.len(), 1, "the unknown id was not counted");

    // Next day: a new row; the interval elapsed, so the verification starts a flush itself.
    clock.advance(TimeDelta::days(1));
    let _ = keyring.verify(&key, &ctx).await;
    tokio::task::yield_now().await;
    keyring.flush_usage().await.unwrap();
    let tomorrow = keymint::Clock::now(&clock).date_naive();
    assert_eq!(
        usage
            .key_usage(&issued.record.id, today, tomorrow)
            .await
            .unwrap()
            .len(),
        2
    );
}

/// A usage store whose writes wait at a gate before reaching the memory store.
#[derive(Clone)]
struct GatedUsage {
    inner: MemoryUsage,
    entered: std::sync::Arc<tokio::sync::Notify>,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
}

impl UsageStore for GatedUsage {
    async fn add(&self, batch: &[UsageDelta]) -> Result<(), keymint::store::StoreError> {
        self.entered.notify_one();
        self.gate.acquire().await.unwrap().forget();
        self.inner.add(batch).await
    }
    async fn key_usage(
        &self,
        key_id: &KeyId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<keymint::usage::DailyUsage>, keymint::store::StoreError> {
        self.inner.key_usage(key_id, from, to).await
    }
    async fn owner_usage(
        &self,
        owner: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<keymint::usage::KeyUsage>, keymint::store::StoreError> {
        self.inner.owner_usage(owner, from, to).await
    }
}

/// On shutdown `flush_usage` must not return while a flush the keyring started in the
/// background still has the counts on their way to the store.
#[tokio::test(flavor = "current_thread")]
async fn flush_usage_waits_for_a_background_flush_already_writing() {
    let clock = ManualClock::default();
    let usage = GatedUsage {
        inner: MemoryUsage::new(),
        entered: Default::default(),
        gate: std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
    };
    let keyring = Keyring::builder(KeyFormat::new("sk_live").unwrap(), MemoryStore::new())
        .hashes(HashPolicy::new(
            Argon2idHasher::builder()
                .m_cost(64)
                .t_cost(1)
                .build()
                .unwrap(),
        ))
        .clock(clock.clone())
        .usage(usage.clone(), TimeDelta::seconds(60))
        .build()
        .unwrap();
    let issued = keyring.issue(IssueRequest::new("acct", "k")).await.unwrap();
    let key = issued.key.expose_secret().to_owned();
    clock.advance(TimeDelta::seconds(61));
    // The interval has passed: this verification starts a background flush, which stops at
    // the gate with the count taken.
    keyring.verify(&key, &VerifyContext::new()).await.unwrap();
    usage.entered.notified().await;

    let shutdown = {
        let keyring = keyring.clone();
        tokio::spawn(async move { keyring.flush_usage().await })
    };
    for _ in 0..32 {
        tokio::task::yield_now().await;
    }
    assert!(
        !shutdown.is_finished(),
        "flush_usage returned while the background flush was still writing"
    );
    usage.gate.add_permits(8);
    shutdown.await.unwrap().unwrap();
    let today = keymint::Clock::now(&clock).date_naive();
    let days = usage
        .key_usage(&issued.record.id, today, today)
        .await
        .unwrap();
    assert_eq!(
        days[0].verified, 1,
        "written by the time flush_usage returned"
    );
}
