//! Rate limits and quotas as the keyring applies them.

use std::num::NonZeroU32;

use keymint::ratelimit::{CalendarQuota, MemoryLimiter, Policy};
use keymint::{
    IssueRequest, KeyFormat, Keyring, ManualClock, MemoryStore, TimeDelta, Utc, VerifyError,
};

use crate::support::{ctx, fast_hashes};

#[tokio::test]
async fn rotation_hands_the_rate_limit_budget_on_instead_of_resetting_it() {
    let clock = ManualClock::new(
        "2026-03-10T12:00:00Z"
            .parse::<keymint::DateTime<Utc>>()
            .unwrap(),
    );
    let monthly = Policy::single("monthly", CalendarQuota::per_utc_month(NonZeroU32::MIN)).unwrap();
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
        .hashes(fast_hashes())
        .clock(clock.clone())
        .rate_limiter(MemoryLimiter::with_clock(clock.clone()))
        .policy(monthly)
        .default_policy("monthly")
        .build()
        .unwrap();
    let issued = keyring.issue(IssueRequest::new("a", "n")).await.unwrap();
    keyring
        .verify(issued.key.expose_secret(), &ctx())
        .await
        .unwrap();

    let successor = keyring.rotate(&issued.record.id, None).await.unwrap();
    // The month's one request is spent: neither the new key nor the old one (in its grace
    // period) gets a fresh budget.
    for key in [&successor.key, &issued.key] {
        let err = keyring
            .verify(key.expose_secret(), &ctx())
            .await
            .unwrap_err();
        assert!(matches!(err, VerifyError::RateLimited(_)), "{err:?}");
    }
    assert_eq!(successor.record.lineage(), &issued.record.id);

    clock.advance(TimeDelta::days(25)); // into April
    keyring
        .verify(successor.key.expose_secret(), &ctx())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_default_limiter_follows_the_keyrings_clock() {
    let clock = ManualClock::default();
    let policy = Policy::single(
        "minute",
        keymint::Quota::per_minute(NonZeroU32::new(1).unwrap()),
    )
    .unwrap();
    // No `rate_limiter(..)`: the in-memory default must run on the manual clock too.
    let keyring = Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
        .hashes(fast_hashes())
        .clock(clock.clone())
        .policy(policy)
        .default_policy("minute")
        .build()
        .unwrap();
    let key = keyring
        .issue(IssueRequest::new("a", "n"))
        .await
        .unwrap()
        .key;
    keyring.verify(key.expose_secret(), &ctx()).await.unwrap();
    assert!(matches!(
        keyring.verify(key.expose_secret(), &ctx()).await,
        Err(VerifyError::RateLimited(_))
    ));
    clock.advance(TimeDelta::minutes(1));
    keyring.verify(key.expose_secret(), &ctx()).await.unwrap();
}

#[test]
fn configuration_errors_name_the_setting() {
    use keymint::KeyringError;
    use keymint::keyring::ConfigError;
    type Builder = keymint::KeyringBuilder<MemoryStore>;
    type Case = (fn(Builder) -> Builder, ConfigError);
    let build = |configure: fn(Builder) -> Builder| {
        configure(
            Keyring::builder(KeyFormat::new("sk_test").unwrap(), MemoryStore::new())
                .hashes(fast_hashes()),
        )
        .build()
        .map(|_| ())
    };
    let cases: [Case; 5] = [
        (
            |b| b.default_policy("nope"),
            ConfigError::UndefinedDefaultPolicy("nope".into()),
        ),
        (|b| b.cache(TimeDelta::zero(), 10), ConfigError::CacheTtl),
        (
            |b| b.cache(TimeDelta::seconds(1), 0),
            ConfigError::CacheCapacity,
        ),
        (
            |b| b.rotation_grace(TimeDelta::days(400)),
            ConfigError::RotationGrace,
        ),
        (
            |b| b.uncached_concurrency(0, 1),
            ConfigError::UncachedConcurrency,
        ),
    ];
    for (configure, expected) in cases {
        match build(configure) {
            Err(KeyringError::Config(found)) => assert_eq!(found, expected),
            other => panic!("expected {expected:?}, got {other:?}"),
        }
    }
}
